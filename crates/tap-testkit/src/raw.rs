//! A hand-written HTTP/1.1 upstream on 127.0.0.1 for answers no well-behaved
//! server library writes: `Transfer-Encoding: gzip, chunked`, header names in
//! any case, chunk boundaries placed byte by byte.
//!
//! Each connection serves one request: the head is read (bounded in size and
//! time), the test's answer function is called with it, and the answer's
//! parts are written one by one, flushed, with a short pause between them so
//! that they tend to reach the proxy in separate reads. The connection is then
//! closed. Nothing a test asserts depends on that pacing.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// Largest request head read.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Largest request body read (and discarded).
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Bound on reading a request and on writing each part of the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between two parts of an answer.
const PART_PAUSE: Duration = Duration::from_millis(20);

/// The head of one request as the raw upstream read it.
#[derive(Clone, Debug)]
pub struct RawRequest {
    /// Method.
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Headers (names lower-cased) in order.
    pub headers: Vec<(String, String)>,
}

impl RawRequest {
    /// First value of a header (name lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The secret the proxy injected: the `Authorization` value after its
    /// scheme word, else `X-Api-Key`, else empty.
    pub fn token(&self) -> String {
        match self.header("authorization") {
            Some(a) => a.split_once(' ').map_or(a, |(_, t)| t.trim()).to_owned(),
            None => self.header("x-api-key").unwrap_or_default().to_owned(),
        }
    }
}

/// What the upstream writes: the bytes of each part, in order.
pub type RawAnswer = Vec<Vec<u8>>;

type Answer = dyn Fn(&RawRequest) -> RawAnswer + Send + Sync;

/// The running raw upstream.
pub struct RawUpstream {
    /// Address bound.
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<RawRequest>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RawUpstream {
    /// Starts on 127.0.0.1 with a free port; `answer` writes every reply.
    pub async fn start(answer: impl Fn(&RawRequest) -> RawAnswer + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answer: Arc<Answer> = Arc::new(answer);
        let s2 = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let seen = Arc::clone(&s2);
                let answer = Arc::clone(&answer);
                tokio::spawn(async move {
                    let _ = serve(tcp, seen, answer).await;
                });
            }
        });
        Self { addr, seen, task }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received so far.
    pub fn requests(&self) -> Vec<RawRequest> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    mut tcp: TcpStream,
    seen: Arc<Mutex<Vec<RawRequest>>>,
    answer: Arc<Answer>,
) -> std::io::Result<()> {
    let Ok(Ok(Some((req, body_len, already)))) =
        tokio::time::timeout(IO_TIMEOUT, read_head(&mut tcp)).await
    else {
        return Ok(());
    };
    // Read (and drop) the body, so closing does not reset the connection.
    let mut left = body_len.min(MAX_BODY_BYTES).saturating_sub(already);
    let mut buf = [0u8; 8192];
    while left > 0 {
        let n = match tokio::time::timeout(IO_TIMEOUT, tcp.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => break,
        };
        left = left.saturating_sub(n);
    }
    seen.lock().unwrap().push(req.clone());
    let parts = answer(&req);
    let count = parts.len();
    for (i, part) in parts.into_iter().enumerate() {
        tokio::time::timeout(IO_TIMEOUT, async {
            tcp.write_all(&part).await?;
            tcp.flush().await
        })
        .await
        .map_err(|_| std::io::Error::other("write timed out"))??;
        if i + 1 < count {
            tokio::time::sleep(PART_PAUSE).await;
        }
    }
    let _ = tokio::time::timeout(IO_TIMEOUT, tcp.shutdown()).await;
    Ok(())
}

/// Reads a request head; returns it, its `Content-Length` and how many body
/// bytes were read along with the head.
async fn read_head(tcp: &mut TcpStream) -> std::io::Result<Option<(RawRequest, usize, usize)>> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if data.len() > MAX_HEAD_BYTES {
            return Ok(None);
        }
        let n = tcp.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let mut words = first.split(' ');
    let method = words.next().unwrap_or_default().to_owned();
    let target = words.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let body_len = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let already = data.len() - (end + 4);
    Ok(Some((
        RawRequest {
            method,
            target,
            headers,
        },
        body_len,
        already,
    )))
}

/// One chunk of the `chunked` transfer coding (a non-empty `data`).
pub fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

/// The last chunk of the `chunked` transfer coding, with no trailers.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Compresses `plain` with gzip.
pub async fn gzip(plain: &[u8]) -> Vec<u8> {
    crate::upstream::encode("gzip", plain).await
}
