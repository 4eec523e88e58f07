//! One test per row of SPEC §4.2, on in-memory inputs.

use super::*;
use crate::source::Content;

const FP: Fingerprint = Fingerprint {
    size: 1,
    mtime_ns: 1,
    ctime_ns: 1,
    ino: 1,
};

fn src(files: &[(&str, &str)]) -> crate::sorted::SortedMap<crate::Rel, SourceFile> {
    files
        .iter()
        .map(|(p, h)| {
            let mode = if p.starts_with("tools/") {
                0o755
            } else {
                0o644
            };
            (
                crate::Rel::from(*p),
                SourceFile {
                    sha256: crate::Sha256::of(h.as_bytes()),
                    mode,
                    content: Content::Static(b""),
                },
            )
        })
        .collect()
}

fn manifest(files: &[(&str, &str)]) -> Manifest {
    let mut m = Manifest::new(semver::Version::new(0, 1, 0));
    for (p, h) in files {
        let mode = if p.starts_with("tools/") {
            0o755
        } else {
            0o644
        };
        m.files.insert(
            crate::Rel::from(*p),
            Entry {
                sha256: crate::Sha256::of(h.as_bytes()),
                mode,
                observed: None,
            },
        );
    }
    m
}

fn file(h: &str) -> Disk {
    Disk::File {
        sha256: crate::Sha256::of(h.as_bytes()),
        mode: 0o644,
        fp: FP,
    }
}

fn view(paths: &[(&str, Disk)]) -> DiskView {
    let mut v = DiskView::default();
    for (p, d) in paths {
        v.paths.insert(crate::Rel::from(*p), d.clone());
        let mut cur = *p;
        while let Some(i) = cur.rfind('/') {
            cur = &cur[..i];
            v.ancestors.entry(cur.to_string()).or_insert(Disk::Dir);
        }
    }
    v
}

fn decide_one(
    source: &[(&str, &str)],
    m: Option<&Manifest>,
    disk: &DiskView,
    mode: ConflictMode,
    path: &str,
) -> Action {
    let p = plan(&src(source), m, disk, &Preserve::built_in(), mode);
    p.items
        .into_iter()
        .find(|i| &*i.path == path)
        .expect("path planned")
        .action
}

#[test]
fn preserved_shipped_absent_is_seeded() {
    let a = decide_one(
        &[("fleet/roster.yaml", "s")],
        None,
        &view(&[]),
        ConflictMode::Keep,
        "fleet/roster.yaml",
    );
    assert_eq!(a, Action::Seed);
}

#[test]
fn preserved_present_is_left_even_when_it_differs_and_manifest_says_ours() {
    let m = manifest(&[("fleet/roster.yaml", "m")]);
    let disk = view(&[("fleet/roster.yaml", file("m"))]);
    let a = decide_one(
        &[("fleet/roster.yaml", "s")],
        Some(&m),
        &disk,
        ConflictMode::Replace,
        "fleet/roster.yaml",
    );
    assert_eq!(a, Action::Preserved);
}

#[test]
fn preserved_dropped_by_release_is_never_deleted() {
    let m = manifest(&[("fleet/agents/a.env", "m")]);
    let disk = view(&[("fleet/agents/a.env", file("m"))]);
    let a = decide_one(
        &[],
        Some(&m),
        &disk,
        ConflictMode::Keep,
        "fleet/agents/a.env",
    );
    assert_eq!(a, Action::Preserved);
}

#[test]
fn shipped_absent_is_created() {
    let m = manifest(&[("a.md", "m")]);
    let a = decide_one(
        &[("a.md", "s")],
        Some(&m),
        &view(&[]),
        ConflictMode::Keep,
        "a.md",
    );
    assert_eq!(a, Action::Create);
}

#[test]
fn identical_is_unchanged_and_a_mode_only_difference_is_fixed() {
    let disk = view(&[("a.md", file("s"))]);
    assert_eq!(
        decide_one(&[("a.md", "s")], None, &disk, ConflictMode::Keep, "a.md"),
        Action::Unchanged
    );
    let disk = view(&[("tools/x", file("s"))]);
    assert_eq!(
        decide_one(
            &[("tools/x", "s")],
            None,
            &disk,
            ConflictMode::Keep,
            "tools/x"
        ),
        Action::FixMode { from: 0o644 }
    );
}

#[test]
fn untouched_since_written_is_replaced() {
    let m = manifest(&[("a.md", "m")]);
    let disk = view(&[("a.md", file("m"))]);
    assert_eq!(
        decide_one(
            &[("a.md", "s")],
            Some(&m),
            &disk,
            ConflictMode::Keep,
            "a.md"
        ),
        Action::Update
    );
}

#[test]
fn operator_edit_with_unchanged_release_is_kept_silently() {
    let m = manifest(&[("a.md", "s")]);
    let disk = view(&[("a.md", file("op"))]);
    assert_eq!(
        decide_one(
            &[("a.md", "s")],
            Some(&m),
            &disk,
            ConflictMode::Keep,
            "a.md"
        ),
        Action::KeptYours
    );
    // even with --conflict replace: nothing to settle
    assert_eq!(
        decide_one(
            &[("a.md", "s")],
            Some(&m),
            &disk,
            ConflictMode::Replace,
            "a.md"
        ),
        Action::KeptYours
    );
}

#[test]
fn both_changed_is_a_conflict_kept_by_default_and_replaced_on_request() {
    let m = manifest(&[("a.md", "m")]);
    let disk = view(&[("a.md", file("op"))]);
    assert_eq!(
        decide_one(
            &[("a.md", "s")],
            Some(&m),
            &disk,
            ConflictMode::Keep,
            "a.md"
        ),
        Action::Conflict
    );
    assert_eq!(
        decide_one(
            &[("a.md", "s")],
            Some(&m),
            &disk,
            ConflictMode::Replace,
            "a.md"
        ),
        Action::ConflictReplaced
    );
}

#[test]
fn operator_file_at_a_newly_shipped_path_is_a_conflict_not_an_overwrite() {
    let m = manifest(&[("other", "x")]);
    let disk = view(&[("new.md", file("op"))]);
    assert_eq!(
        decide_one(
            &[("new.md", "s")],
            Some(&m),
            &disk,
            ConflictMode::Keep,
            "new.md"
        ),
        Action::Conflict
    );
}

#[test]
fn legacy_install_without_manifest_differing_is_replaced_after_backup() {
    let disk = view(&[("a.md", file("old"))]);
    assert_eq!(
        decide_one(&[("a.md", "s")], None, &disk, ConflictMode::Keep, "a.md"),
        Action::UpdateLegacy
    );
}

#[test]
fn dropped_by_release_unedited_is_deleted_and_its_created_dirs_go() {
    let mut m = manifest(&[("old/x.md", "m"), ("keep/y.md", "k")]);
    m.dirs.insert("old".into());
    m.dirs.insert("keep".into());
    let disk = view(&[("old/x.md", file("m")), ("keep/y.md", file("k"))]);
    let p = plan(
        &src(&[("keep/y.md", "k")]),
        Some(&m),
        &disk,
        &Preserve::built_in(),
        ConflictMode::Keep,
    );
    assert_eq!(&*p.items[1].path, "old/x.md");
    assert_eq!(p.items[1].action, Action::Delete);
    assert_eq!(p.rmdirs, vec!["old".to_string()]);
}

#[test]
fn dropped_by_release_edited_is_orphaned_and_kept() {
    let m = manifest(&[("x.md", "m")]);
    let disk = view(&[("x.md", file("op"))]);
    assert_eq!(
        decide_one(&[], Some(&m), &disk, ConflictMode::Replace, "x.md"),
        Action::Orphaned
    );
}

#[test]
fn dropped_and_already_gone_is_forgotten() {
    let m = manifest(&[("x.md", "m")]);
    assert_eq!(
        decide_one(&[], Some(&m), &view(&[]), ConflictMode::Keep, "x.md"),
        Action::Forget
    );
}

#[test]
fn operators_own_file_is_never_considered() {
    let m = manifest(&[("a.md", "s")]);
    let disk = view(&[("a.md", file("s")), ("mine.txt", file("z"))]);
    let p = plan(
        &src(&[("a.md", "s")]),
        Some(&m),
        &disk,
        &Preserve::built_in(),
        ConflictMode::Replace,
    );
    assert!(p.items.iter().all(|i| &*i.path != "mine.txt"));
    assert!(!p.changes_tree());
}

#[test]
fn directory_or_symlink_where_a_file_ships_is_a_blocker() {
    for d in [Disk::Dir, Disk::Symlink, Disk::Other] {
        let disk = view(&[("a.md", d.clone())]);
        let a = decide_one(&[("a.md", "s")], None, &disk, ConflictMode::Keep, "a.md");
        assert!(
            matches!(a, Action::Blocked { ref obstacle, .. } if obstacle == "a.md"),
            "{a:?}"
        );
        let a = decide_one(&[("a.md", "s")], None, &disk, ConflictMode::Replace, "a.md");
        assert!(
            matches!(a, Action::ObstacleReplaced { ref obstacle, .. } if obstacle == "a.md"),
            "{a:?}"
        );
    }
}

#[test]
fn symlinked_or_file_parent_is_a_blocker_naming_the_parent() {
    let mut disk = view(&[]);
    disk.ancestors.insert("tools".into(), Disk::Symlink);
    let a = decide_one(
        &[("tools/x", "s")],
        None,
        &disk,
        ConflictMode::Keep,
        "tools/x",
    );
    assert_eq!(
        a,
        Action::Blocked {
            obstacle: "tools".into(),
            found: "a symlink".into()
        }
    );
    disk.ancestors.insert("tools".into(), file("f"));
    let a = decide_one(
        &[("tools/x", "s")],
        None,
        &disk,
        ConflictMode::Keep,
        "tools/x",
    );
    assert_eq!(
        a,
        Action::Blocked {
            obstacle: "tools".into(),
            found: "a file".into()
        }
    );
}

#[test]
fn preserved_path_under_a_symlinked_dir_is_not_seeded() {
    let mut disk = view(&[]);
    disk.ancestors.insert("fleet".into(), Disk::Dir);
    disk.ancestors.insert("fleet/agents".into(), Disk::Symlink);
    let a = decide_one(
        &[("fleet/agents/README", "s")],
        None,
        &disk,
        ConflictMode::Keep,
        "fleet/agents/README",
    );
    assert_eq!(a, Action::Preserved);
}

#[test]
fn operator_preserve_patterns_protect_shipped_paths() {
    let m = manifest(&[("docs/a.md", "m")]);
    let disk = view(&[("docs/a.md", file("m"))]);
    let pres = Preserve::new(&["docs/*.md".into()], "test").unwrap();
    let p = plan(
        &src(&[("docs/a.md", "s")]),
        Some(&m),
        &disk,
        &pres,
        ConflictMode::Replace,
    );
    assert_eq!(p.items[0].action, Action::Preserved);
}

#[test]
fn missing_parents_are_created_outermost_first() {
    let p = plan(
        &src(&[("a/b/c.md", "s")]),
        None,
        &view(&[]),
        &Preserve::built_in(),
        ConflictMode::Keep,
    );
    assert_eq!(p.mkdirs, vec!["a".to_string(), "a/b".to_string()]);
}

#[test]
fn glob_rule_examples_are_not_preserved_but_roster_is() {
    let m = manifest(&[("fleet/examples/x.yaml", "m"), ("fleet/roster.yaml", "m")]);
    let disk = view(&[
        ("fleet/examples/x.yaml", file("m")),
        ("fleet/roster.yaml", file("m")),
    ]);
    let p = plan(
        &src(&[("fleet/examples/x.yaml", "s"), ("fleet/roster.yaml", "s")]),
        Some(&m),
        &disk,
        &Preserve::built_in(),
        ConflictMode::Keep,
    );
    assert_eq!(p.items[0].action, Action::Update);
    assert_eq!(p.items[1].action, Action::Preserved);
}

#[test]
fn adopting_a_legacy_install_recognises_files_earlier_releases_shipped() {
    // recognised: unedited copies of earlier releases' files
    let recognised = manifest(&[("a.md", "old"), ("gone.md", "g")]);
    let disk = view(&[
        ("a.md", file("old")),
        ("gone.md", file("g")),
        ("b.md", file("edited")),
    ]);
    let p = plan_adopting(
        &src(&[("a.md", "s"), ("b.md", "s")]),
        &recognised,
        &disk,
        &Preserve::built_in(),
        ConflictMode::Keep,
    );
    let act = |path: &str| {
        p.items
            .iter()
            .find(|i| &*i.path == path)
            .unwrap()
            .action
            .clone()
    };
    assert_eq!(act("a.md"), Action::Update);
    assert_eq!(act("gone.md"), Action::Delete);
    assert_eq!(act("b.md"), Action::UpdateLegacy);
    assert!(p.legacy);
}

#[test]
fn our_unedited_file_becoming_a_directory_is_deleted_then_created_through() {
    let m = manifest(&[("docs/x", "m")]);
    let mut disk = view(&[("docs/x", file("m"))]);
    disk.ancestors.insert("docs/x".into(), file("m"));
    let p = plan(
        &src(&[("docs/x/y.md", "s")]),
        Some(&m),
        &disk,
        &Preserve::built_in(),
        ConflictMode::Keep,
    );
    let act = |path: &str| {
        p.items
            .iter()
            .find(|i| &*i.path == path)
            .unwrap()
            .action
            .clone()
    };
    assert_eq!(act("docs/x"), Action::Delete);
    assert_eq!(act("docs/x/y.md"), Action::Create);
    assert_eq!(p.mkdirs, vec!["docs/x".to_string()]);
    // an edited one stays a blocker
    let disk = {
        let mut d = view(&[("docs/x", file("edited"))]);
        d.ancestors.insert("docs/x".into(), file("edited"));
        d
    };
    let p = plan(
        &src(&[("docs/x/y.md", "s")]),
        Some(&m),
        &disk,
        &Preserve::built_in(),
        ConflictMode::Keep,
    );
    assert!(p.blockers().count() == 1);
}
