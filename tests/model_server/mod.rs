//! A stand-in model server for the real-runtime tests: a small HTTP/1.1
//! server on `127.0.0.1` (std only, one thread per connection) that answers
//! the four vendor APIs the runtimes speak, so claude, codex, pi and opencode
//! hold a real conversation with nothing leaving the machine.
//!
//! * `POST /v1/messages` (Anthropic Messages; SSE when `"stream": true`),
//!   `POST /v1/messages/count_tokens` — claude.
//! * `POST /v1/responses` (OpenAI Responses, SSE) — codex.
//! * `POST /v1/chat/completions` (OpenAI chat, SSE or JSON) — pi, opencode.
//! * `GET /v1/models` — a one-model list; anything else is a logged 404.
//!
//! Every request is logged ([`Logged`]): the API, the model, the last user
//! message's text, how many messages/items the history holds and whether
//! tools were offered, so a test can assert that a delivered message reached
//! the model byte for byte. On demand ([`ModelServer::tool_call_when`]) the
//! reply to a matching request is a tool call (a shell command), which makes
//! claude raise its permission prompt; [`ModelServer::delay_when`] holds a
//! matching reply back so the runtime stays busy.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The model id the server lists and echoes.
pub const MODEL: &str = "mock-model";

/// The shell command of the tool call [`ModelServer::tool_call_when`] answers with.
pub const TOOL_COMMAND: &str = "touch /tmp/mosaic-permission-probe";

/// Which wire API a request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `POST /v1/messages`.
    Anthropic,
    /// `POST /v1/messages/count_tokens`.
    CountTokens,
    /// `POST /v1/chat/completions`.
    Chat,
    /// `POST /v1/responses`.
    Responses,
    /// `GET /v1/models`.
    Models,
    /// Anything else (answered 404).
    Other,
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Logged {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, query included.
    pub path: String,
    /// The API the path belongs to.
    pub api: Api,
    /// The `model` field, when the body had one.
    pub model: Option<String>,
    /// `"stream": true`.
    pub stream: bool,
    /// The text of the last user message (its last text part that is not a
    /// runtime-added `<system-reminder>`), when there is one.
    pub last_user_text: Option<String>,
    /// Every text part of the last user message, in order.
    pub last_user_parts: Vec<String>,
    /// How many messages (chat, Anthropic) or input items (Responses) the
    /// request carried.
    pub history_len: usize,
    /// The request offered tools.
    pub has_tools: bool,
    /// The server answered this request with a tool call.
    pub answered_tool_call: bool,
    /// The body, when it was not JSON (or a decode problem), for diagnosis.
    pub note: Option<String>,
}

#[derive(Default)]
struct Rules {
    tool_call: Vec<String>,
    delay: Vec<(String, Duration)>,
}

struct Shared {
    log: Mutex<Vec<Logged>>,
    rules: Mutex<Rules>,
    stop: AtomicBool,
    ids: AtomicUsize,
}

/// A running server; stopped on drop.
pub struct ModelServer {
    port: u16,
    shared: Arc<Shared>,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl ModelServer {
    /// Bind `127.0.0.1:0` and serve in background threads.
    pub fn start() -> std::io::Result<ModelServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            log: Mutex::new(Vec::new()),
            rules: Mutex::new(Rules::default()),
            stop: AtomicBool::new(false),
            ids: AtomicUsize::new(1),
        });
        let s = shared.clone();
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, &s);
                });
            }
        });
        Ok(ModelServer {
            port,
            shared,
            accept: Some(accept),
        })
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT` (no path).
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<Logged> {
        lock(&self.shared.log).clone()
    }

    /// The next request offering tools whose last user text contains
    /// `trigger` is answered with a tool call running [`TOOL_COMMAND`] (once).
    pub fn tool_call_when(&self, trigger: &str) {
        lock(&self.shared.rules).tool_call.push(trigger.to_string());
    }

    /// Replies to requests whose last user text contains `trigger` are held
    /// back `delay` after the response headers (every time).
    pub fn delay_when(&self, trigger: &str, delay: Duration) {
        lock(&self.shared.rules)
            .delay
            .push((trigger.to_string(), delay));
    }

    /// Wait until a model request (not a token count) carries `text` as its
    /// last user text, exactly.
    pub fn wait_for_user_text(&self, text: &str, timeout: Duration) -> Option<Logged> {
        self.wait_for(timeout, |t| t == text)
    }

    /// Wait until a model request's last user text satisfies `f`.
    pub fn wait_for(&self, timeout: Duration, f: impl Fn(&str) -> bool) -> Option<Logged> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(r) = self
                .requests()
                .into_iter()
                .find(|r| r.api != Api::CountTokens && r.last_user_text.as_deref().is_some_and(&f))
            {
                return Some(r);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One line per request, for failure messages.
    pub fn summary(&self) -> String {
        self.requests()
            .iter()
            .map(|r| {
                let text = r.last_user_text.as_deref().unwrap_or("-");
                let short: String = text.chars().take(80).collect();
                format!(
                    "{} {} api={:?} model={:?} stream={} history={} tools={} tool_call={} last_user={:?}{}{}",
                    r.method,
                    r.path,
                    r.api,
                    r.model,
                    r.stream,
                    r.history_len,
                    r.has_tools,
                    r.answered_tool_call,
                    short,
                    if text.chars().count() > 80 { "…" } else { "" },
                    r.note.as_deref().map(|n| format!(" note={n}")).unwrap_or_default(),
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
    encoding: Option<String>,
}

fn read_request(reader: &mut BufReader<TcpStream>) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut words = line.split_whitespace();
    let method = words.next().unwrap_or("").to_string();
    let path = words.next().unwrap_or("").to_string();
    let mut length = 0usize;
    let mut chunked = false;
    let mut encoding = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 {
            return Ok(None);
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let Some((k, v)) = h.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        match k.as_str() {
            "content-length" => length = v.parse().unwrap_or(0),
            "transfer-encoding" => chunked = v.to_ascii_lowercase().contains("chunked"),
            "content-encoding" => encoding = Some(v.to_string()),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            if n == 0 {
                // Trailers up to the empty line.
                loop {
                    let mut t = String::new();
                    if reader.read_line(&mut t)? == 0 || t.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let mut chunk = vec![0; n];
            reader.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk);
            let mut crlf = [0u8; 2];
            reader.read_exact(&mut crlf)?;
        }
    } else {
        body.resize(length, 0);
        reader.read_exact(&mut body)?;
    }
    Ok(Some(Request {
        method,
        path,
        body,
        encoding,
    }))
}

fn serve(conn: TcpStream, shared: &Shared) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut writer = conn.try_clone()?;
    let mut reader = BufReader::new(conn);
    // Keep-alive: answer requests on this connection until the client closes.
    while let Some(req) = read_request(&mut reader)? {
        handle(&req, &mut writer, shared)?;
    }
    Ok(())
}

fn text_parts(content: &Value, kinds: &[&str]) -> Vec<String> {
    match content {
        Value::String(s) => vec![s.clone()],
        Value::Array(parts) => parts
            .iter()
            .filter(|p| {
                p.get("type")
                    .and_then(Value::as_str)
                    .is_none_or(|t| kinds.contains(&t))
            })
            .filter_map(|p| p.get("text").and_then(Value::as_str).map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// The text parts of the last user message of `items` (chat messages,
/// Anthropic messages or Responses input items).
fn last_user_parts(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .rev()
        .find(|m| {
            m.get("role").and_then(Value::as_str) == Some("user")
                && m.get("type")
                    .and_then(Value::as_str)
                    .is_none_or(|t| t == "message")
        })
        .and_then(|m| m.get("content"))
        .map(|c| text_parts(c, &["text", "input_text"]))
        .unwrap_or_default()
}

fn classify(method: &str, path: &str) -> Api {
    let p = path.split('?').next().unwrap_or("");
    match (method, p) {
        ("POST", "/v1/messages") => Api::Anthropic,
        ("POST", "/v1/messages/count_tokens") => Api::CountTokens,
        ("POST", "/v1/chat/completions") => Api::Chat,
        ("POST", "/v1/responses") => Api::Responses,
        ("GET", "/v1/models") => Api::Models,
        _ => Api::Other,
    }
}

fn handle(req: &Request, w: &mut TcpStream, shared: &Shared) -> std::io::Result<()> {
    let api = classify(&req.method, &req.path);
    let mut note = None;
    let body: Value = if req.body.is_empty() {
        Value::Null
    } else if let Some(enc) = req.encoding.as_deref().filter(|e| *e != "identity") {
        note = Some(format!("content-encoding {enc} not decoded"));
        Value::Null
    } else {
        serde_json::from_slice(&req.body).unwrap_or_else(|e| {
            note = Some(format!(
                "not JSON ({e}): {}",
                String::from_utf8_lossy(&req.body[..req.body.len().min(200)])
            ));
            Value::Null
        })
    };
    let items: Vec<Value> = body
        .get("messages")
        .or_else(|| body.get("input"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let parts = last_user_parts(&items);
    let last_user_text = parts
        .iter()
        .rev()
        .find(|t| !t.trim_start().starts_with("<system-reminder>"))
        .cloned();
    let has_tools = body
        .get("tools")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty());
    let stream = body.get("stream").and_then(Value::as_bool) == Some(true);
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .map(str::to_string);

    let (tool_call, delay) = {
        let mut rules = lock(&shared.rules);
        let text = last_user_text.as_deref().unwrap_or("");
        let tool = if has_tools && !text.is_empty() {
            rules
                .tool_call
                .iter()
                .position(|t| text.contains(t.as_str()))
                .map(|i| rules.tool_call.remove(i))
                .is_some()
        } else {
            false
        };
        let delay = rules
            .delay
            .iter()
            .find(|(t, _)| !text.is_empty() && text.contains(t.as_str()))
            .map(|(_, d)| *d);
        (tool, delay)
    };
    lock(&shared.log).push(Logged {
        method: req.method.clone(),
        path: req.path.clone(),
        api,
        model: model.clone(),
        stream,
        last_user_text: last_user_text.clone(),
        last_user_parts: parts,
        history_len: items.len(),
        has_tools,
        answered_tool_call: tool_call && matches!(api, Api::Anthropic | Api::Chat | Api::Responses),
        note,
    });

    let id = shared.ids.fetch_add(1, Ordering::SeqCst);
    let model = model.unwrap_or_else(|| MODEL.to_string());
    let reply = format!(
        "Received {} characters.",
        last_user_text
            .as_deref()
            .map(|t| t.chars().count())
            .unwrap_or(0)
    );
    match api {
        Api::Models => json_response(
            w,
            200,
            &json!({
                "object": "list",
                "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "mosaic-test"}],
                "models": []
            }),
        ),
        Api::CountTokens => json_response(w, 200, &json!({"input_tokens": 12})),
        Api::Anthropic => anthropic(w, id, &model, stream, &reply, tool_call, delay),
        Api::Chat => chat(w, id, &model, stream, &reply, tool_call, delay),
        Api::Responses => responses(w, id, &model, &reply, tool_call, delay),
        Api::Other => json_response(
            w,
            404,
            &json!({"error": {"type": "not_found_error", "message": "not served by the mosaic test model server"}}),
        ),
    }
}

fn json_response(w: &mut TcpStream, code: u16, v: &Value) -> std::io::Result<()> {
    let body = v.to_string();
    let reason = if code == 200 { "OK" } else { "Not Found" };
    write!(
        w,
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    w.flush()
}

/// A chunked `text/event-stream` response.
struct Sse<'a> {
    w: &'a mut TcpStream,
}

impl<'a> Sse<'a> {
    fn start(w: &'a mut TcpStream) -> std::io::Result<Sse<'a>> {
        write!(
            w,
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"
        )?;
        w.flush()?;
        Ok(Sse { w })
    }

    fn raw(&mut self, s: &str) -> std::io::Result<()> {
        write!(self.w, "{:x}\r\n{s}\r\n", s.len())?;
        self.w.flush()
    }

    /// `event: NAME` (when given) and `data: JSON`.
    fn event(&mut self, name: Option<&str>, data: &Value) -> std::io::Result<()> {
        let mut s = String::new();
        if let Some(n) = name {
            s.push_str(&format!("event: {n}\n"));
        }
        s.push_str(&format!("data: {data}\n\n"));
        self.raw(&s)
    }

    fn end(self) -> std::io::Result<()> {
        write!(self.w, "0\r\n\r\n")?;
        self.w.flush()
    }
}

fn hold(delay: Option<Duration>) {
    if let Some(d) = delay {
        std::thread::sleep(d);
    }
}

fn tool_input() -> Value {
    json!({"command": TOOL_COMMAND, "description": "Create the permission probe file"})
}

fn anthropic(
    w: &mut TcpStream,
    id: usize,
    model: &str,
    stream: bool,
    reply: &str,
    tool_call: bool,
    delay: Option<Duration>,
) -> std::io::Result<()> {
    let usage = json!({"input_tokens": 12, "output_tokens": 6, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0});
    let (block, stop) = if tool_call {
        (
            json!({"type": "tool_use", "id": format!("toolu_{id:04}"), "name": "Bash", "input": tool_input()}),
            "tool_use",
        )
    } else {
        (json!({"type": "text", "text": reply}), "end_turn")
    };
    if !stream {
        hold(delay);
        return json_response(
            w,
            200,
            &json!({
                "id": format!("msg_{id:04}"), "type": "message", "role": "assistant", "model": model,
                "content": [block], "stop_reason": stop, "stop_sequence": null, "usage": usage
            }),
        );
    }
    let mut sse = Sse::start(w)?;
    sse.event(
        Some("message_start"),
        &json!({"type": "message_start", "message": {
            "id": format!("msg_{id:04}"), "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 12, "output_tokens": 1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        }}),
    )?;
    hold(delay);
    if tool_call {
        sse.event(
            Some("content_block_start"),
            &json!({"type": "content_block_start", "index": 0, "content_block":
                {"type": "tool_use", "id": format!("toolu_{id:04}"), "name": "Bash", "input": {}}}),
        )?;
        sse.event(
            Some("content_block_delta"),
            &json!({"type": "content_block_delta", "index": 0, "delta":
                {"type": "input_json_delta", "partial_json": tool_input().to_string()}}),
        )?;
    } else {
        sse.event(
            Some("content_block_start"),
            &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        )?;
        sse.event(
            Some("content_block_delta"),
            &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": reply}}),
        )?;
    }
    sse.event(
        Some("content_block_stop"),
        &json!({"type": "content_block_stop", "index": 0}),
    )?;
    sse.event(
        Some("message_delta"),
        &json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": 6}}),
    )?;
    sse.event(Some("message_stop"), &json!({"type": "message_stop"}))?;
    sse.end()
}

fn chat(
    w: &mut TcpStream,
    id: usize,
    model: &str,
    stream: bool,
    reply: &str,
    tool_call: bool,
    delay: Option<Duration>,
) -> std::io::Result<()> {
    let cid = format!("chatcmpl-{id:04}");
    let call = json!([{"index": 0, "id": format!("call_{id:04}"), "type": "function",
        "function": {"name": "bash", "arguments": tool_input().to_string()}}]);
    let finish = if tool_call { "tool_calls" } else { "stop" };
    let usage = json!({"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18});
    if !stream {
        hold(delay);
        let message = if tool_call {
            json!({"role": "assistant", "content": null, "tool_calls": call})
        } else {
            json!({"role": "assistant", "content": reply})
        };
        return json_response(
            w,
            200,
            &json!({"id": cid, "object": "chat.completion", "created": 0, "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish}], "usage": usage}),
        );
    }
    let mut sse = Sse::start(w)?;
    let chunk = |delta: Value, finish: Value| {
        json!({"id": cid, "object": "chat.completion.chunk", "created": 0, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    sse.event(
        None,
        &chunk(json!({"role": "assistant", "content": ""}), Value::Null),
    )?;
    hold(delay);
    if tool_call {
        sse.event(None, &chunk(json!({"tool_calls": call}), Value::Null))?;
    } else {
        sse.event(None, &chunk(json!({"content": reply}), Value::Null))?;
    }
    sse.event(None, &chunk(json!({}), json!(finish)))?;
    sse.event(
        None,
        &json!({"id": cid, "object": "chat.completion.chunk", "created": 0, "model": model,
            "choices": [], "usage": usage}),
    )?;
    sse.raw("data: [DONE]\n\n")?;
    sse.end()
}

fn responses(
    w: &mut TcpStream,
    id: usize,
    model: &str,
    reply: &str,
    tool_call: bool,
    delay: Option<Duration>,
) -> std::io::Result<()> {
    let rid = format!("resp_{id:04}");
    let mut sse = Sse::start(w)?;
    let response = |status: &str| {
        json!({"id": rid, "object": "response", "created_at": 0, "status": status, "model": model,
            "output": [], "usage": null})
    };
    sse.event(
        Some("response.created"),
        &json!({"type": "response.created", "response": response("in_progress")}),
    )?;
    hold(delay);
    let item = if tool_call {
        json!({"type": "function_call", "id": format!("fc_{id:04}"), "call_id": format!("call_{id:04}"),
            "name": "shell", "arguments": json!({"command": ["bash", "-lc", TOOL_COMMAND]}).to_string(),
            "status": "completed"})
    } else {
        let mid = format!("msg_{id:04}");
        sse.event(
            Some("response.output_item.added"),
            &json!({"type": "response.output_item.added", "output_index": 0,
                "item": {"type": "message", "id": mid, "role": "assistant", "status": "in_progress", "content": []}}),
        )?;
        sse.event(
            Some("response.output_text.delta"),
            &json!({"type": "response.output_text.delta", "item_id": mid, "output_index": 0,
                "content_index": 0, "delta": reply}),
        )?;
        json!({"type": "message", "id": mid, "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": reply, "annotations": []}]})
    };
    sse.event(
        Some("response.output_item.done"),
        &json!({"type": "response.output_item.done", "output_index": 0, "item": item}),
    )?;
    let mut done = response("completed");
    done["usage"] = json!({"input_tokens": 12, "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 6, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 18});
    sse.event(
        Some("response.completed"),
        &json!({"type": "response.completed", "response": done}),
    )?;
    sse.end()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(port: u16, path: &str, body: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn logs_the_last_user_text_of_each_api() {
        let server = ModelServer::start().unwrap();
        let port = server.port();
        let out = post(
            port,
            "/v1/messages?beta=true",
            r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":[{"type":"text","text":"<system-reminder>x</system-reminder>"},{"type":"text","text":"héllo\nworld"}]}]}"#,
        );
        assert!(out.contains("event: message_stop"), "{out}");
        post(
            port,
            "/v1/chat/completions",
            r#"{"model":"m","stream":true,"messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"text","text":"chat text"}]}]}"#,
        );
        let out = post(
            port,
            "/v1/responses",
            r#"{"model":"m","stream":true,"input":[{"type":"message","role":"user","content":[{"type":"input_text","text":"<environment_context/>"}]},{"type":"message","role":"user","content":[{"type":"input_text","text":"resp text"}]}]}"#,
        );
        assert!(out.contains("response.completed"), "{out}");
        let log = server.requests();
        assert_eq!(log[0].api, Api::Anthropic);
        assert_eq!(log[0].last_user_text.as_deref(), Some("héllo\nworld"));
        assert_eq!(log[0].history_len, 3);
        assert_eq!(log[1].last_user_text.as_deref(), Some("chat text"));
        assert_eq!(log[2].last_user_text.as_deref(), Some("resp text"));
        assert_eq!(log[2].history_len, 2);
        assert!(server
            .wait_for_user_text("resp text", Duration::from_secs(1))
            .is_some());
    }

    #[test]
    fn answers_a_tool_call_once_when_asked() {
        let server = ModelServer::start().unwrap();
        server.tool_call_when("probe");
        let body = r#"{"model":"m","stream":true,"tools":[{"name":"Bash"}],"messages":[{"role":"user","content":"run the probe"}]}"#;
        let first = post(server.port(), "/v1/messages", body);
        assert!(
            first.contains("tool_use") && first.contains(TOOL_COMMAND),
            "{first}"
        );
        let second = post(server.port(), "/v1/messages", body);
        assert!(!second.contains("tool_use"), "{second}");
        assert!(server.requests()[0].answered_tool_call);
    }
}
