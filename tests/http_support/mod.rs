//! A minimal HTTP/1.1 client over a tokio TCP stream for the HTTP tests: it
//! shows status, headers and body exactly as the server sent them, and
//! reads Server-Sent Events incrementally.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// How long any single read may take before a test fails.
pub const STEP: Duration = Duration::from_secs(10);

/// A response, read to its end.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {} body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts a problem details answer with this status, and returns it.
    pub fn problem(&self, status: u16) -> serde_json::Value {
        assert_eq!(self.status, status, "body: {}", self.text());
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "problem content type"
        );
        let p = self.json();
        assert_eq!(p["status"], status);
        assert!(p["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("urn:cronactor:problem:")));
        assert!(p["title"].is_string() && p["detail"].is_string());
        p
    }
}

fn head(
    method: &str,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    len: usize,
) -> String {
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    if len > 0 || matches!(method, "POST" | "PUT") {
        req.push_str(&format!("Content-Length: {len}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req
}

fn parse_head(text: &str) -> (u16, Vec<(String, String)>) {
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers)
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(pos) = body.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&body[..pos]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            return out;
        }
        let start = pos + 2;
        out.extend_from_slice(&body[start..(start + size).min(body.len())]);
        body = &body[(start + size + 2).min(body.len())..];
    }
}

/// Sends one request and reads the whole response.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    tokio::time::timeout(STEP, async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let head = head(method, addr, path, headers, body.len());
        stream.write_all(head.as_bytes()).await.expect("write head");
        // The server may answer (413) and close before reading all of it.
        let _ = stream.write_all(body).await;
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw).await;
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(&raw)));
        let (status, headers) = parse_head(&String::from_utf8_lossy(&raw[..split]));
        let mut body = raw[split + 4..].to_vec();
        let chunked = headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
        if chunked {
            body = dechunk(&body);
        }
        Resp {
            status,
            headers,
            body,
        }
    })
    .await
    .expect("the request timed out")
}

pub async fn get(addr: SocketAddr, path: &str) -> Resp {
    request(addr, "GET", path, &[], b"").await
}

pub async fn post_json(addr: SocketAddr, path: &str, body: &serde_json::Value) -> Resp {
    let bytes = serde_json::to_vec(body).expect("json");
    request(
        addr,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        &bytes,
    )
    .await
}

pub async fn put_json(addr: SocketAddr, path: &str, body: &serde_json::Value) -> Resp {
    let bytes = serde_json::to_vec(body).expect("json");
    request(
        addr,
        "PUT",
        path,
        &[("Content-Type", "application/json")],
        &bytes,
    )
    .await
}

pub async fn post(addr: SocketAddr, path: &str) -> Resp {
    request(addr, "POST", path, &[], b"").await
}

/// One Server-Sent Events message.
#[derive(Debug, Clone, Default)]
pub struct SseMsg {
    pub id: Option<u64>,
    pub event: String,
    pub data: String,
}

impl SseMsg {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).expect("SSE data is JSON")
    }
}

/// An open `GET /events` stream.
pub struct Sse {
    pub status: u16,
    reader: BufReader<TcpStream>,
    chunked: bool,
    pending: String,
    ended: bool,
}

impl Sse {
    pub async fn open(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Self {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let head = head("GET", addr, path, headers, 0);
        stream.write_all(head.as_bytes()).await.expect("write");
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(STEP, reader.read_line(&mut line))
                .await
                .expect("SSE head timed out")
                .expect("read");
            if n == 0 || line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let (status, headers) = parse_head(head.trim_end());
        let chunked = headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
        if status == 200 {
            assert!(headers
                .iter()
                .any(|(k, v)| k == "content-type" && v.starts_with("text/event-stream")));
        }
        Self {
            status,
            reader,
            chunked,
            pending: String::new(),
            ended: false,
        }
    }

    async fn fill(&mut self) -> bool {
        if self.ended {
            return false;
        }
        if self.chunked {
            let mut size_line = String::new();
            if self.reader.read_line(&mut size_line).await.unwrap_or(0) == 0 {
                self.ended = true;
                return false;
            }
            let size = usize::from_str_radix(size_line.trim(), 16).unwrap_or(0);
            if size == 0 {
                self.ended = true;
                return false;
            }
            let mut chunk = vec![0; size + 2];
            if self.reader.read_exact(&mut chunk).await.is_err() {
                self.ended = true;
                return false;
            }
            self.pending
                .push_str(&String::from_utf8_lossy(&chunk[..size]));
        } else {
            let mut buf = [0u8; 4096];
            let n = self.reader.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                self.ended = true;
                return false;
            }
            self.pending.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        true
    }

    /// The next message (comments and keep-alives skipped), `None` when the
    /// stream ended; panics after `wait` without one.
    pub async fn next_within(&mut self, wait: Duration) -> Option<SseMsg> {
        tokio::time::timeout(wait, async {
            loop {
                while let Some(pos) = self.pending.find("\n\n") {
                    let block: String = self.pending.drain(..pos + 2).collect();
                    let mut msg = SseMsg::default();
                    let mut has_field = false;
                    for line in block.lines() {
                        if let Some(v) = line.strip_prefix("id:") {
                            msg.id = v.trim().parse().ok();
                            has_field = true;
                        } else if let Some(v) = line.strip_prefix("event:") {
                            msg.event = v.trim().to_owned();
                            has_field = true;
                        } else if let Some(v) = line.strip_prefix("data:") {
                            if !msg.data.is_empty() {
                                msg.data.push('\n');
                            }
                            msg.data.push_str(v.strip_prefix(' ').unwrap_or(v));
                            has_field = true;
                        }
                    }
                    if has_field {
                        return Some(msg);
                    }
                }
                if !self.fill().await {
                    return None;
                }
            }
        })
        .await
        .expect("no SSE message in time")
    }

    pub async fn next(&mut self) -> Option<SseMsg> {
        self.next_within(STEP).await
    }

    /// Reads messages until one matches, returning every message read.
    pub async fn until(&mut self, mut pred: impl FnMut(&SseMsg) -> bool) -> Vec<SseMsg> {
        let mut seen = Vec::new();
        loop {
            let msg = self.next().await.expect("the stream ended early");
            let done = pred(&msg);
            seen.push(msg);
            if done {
                return seen;
            }
        }
    }
}
