//! The `--json` contract, for every integration test that reads a `--json`
//! document: [`parse`] is `serde_json::from_slice` that also validates the
//! document against `docs/schemas/KIND.schema.json` (KIND is the document's
//! own `"kind"`), so each test that produces real output checks the schema
//! too. A document without a `kind`, of an unknown kind, or that breaks its
//! schema fails the test that printed it.
#![allow(dead_code)]

use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

/// `docs/schemas/` of this checkout.
pub fn schema_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/schemas")
}

/// The schema of `kind`, parsed.
pub fn schema(kind: &str) -> Value {
    let path = schema_dir().join(format!("{kind}.schema.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "no schema for --json kind {kind:?} ({}): {e}",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Panics unless `doc` is valid against the schema its `kind` names.
pub fn check(doc: &Value) {
    static VALIDATORS: OnceLock<Mutex<HashMap<String, jsonschema::Validator>>> = OnceLock::new();
    let kind = doc["kind"]
        .as_str()
        .unwrap_or_else(|| panic!("a --json document without \"kind\": {doc:#}"));
    assert!(
        doc["version"].is_u64(),
        "a --json document without \"version\": {doc:#}"
    );
    let mut cache = VALIDATORS
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let v = cache.entry(kind.to_string()).or_insert_with(|| {
        jsonschema::draft202012::new(&schema(kind))
            .unwrap_or_else(|e| panic!("{kind}.schema.json does not compile: {e}"))
    });
    let errors: Vec<String> = v
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "--json document of kind {kind:?} breaks docs/schemas/{kind}.schema.json:\n  {}\n{doc:#}",
        errors.join("\n  ")
    );
}

/// `serde_json::from_slice`, then [`check`].
pub fn parse(bytes: &[u8]) -> serde_json::Result<Value> {
    let doc: Value = serde_json::from_slice(bytes)?;
    check(&doc);
    Ok(doc)
}
