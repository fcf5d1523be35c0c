//! A small echo back-end, for the examples, the tests and the benchmarks: it answers every request
//! with JSON describing what it received (method, path, query, every header in order, body size
//! and SHA-256, and the peer address, which shows whether connections are reused), so that tests
//! can check exactly what varco forwarded.
//!
//! Query parameters make it misbehave on purpose: `echo_delay_ms=N` waits before answering,
//! `echo_chunks=N` streams N chunks of 1 KiB 20 ms apart, `echo_status=N` sets the status,
//! `echo_set_cookie=NAME` (repeatable) answers with `Set-Cookie: NAME=planted; Path=/`.
//! `Upgrade: websocket` is accepted and the connection then echoes raw bytes.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures_util::StreamExt as _;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use sha2::Digest as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

type Body = BoxBody<Bytes, Infallible>;

/// Serves echo requests on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, name: Arc<str>) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let name = name.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(req, name.clone(), peer));
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

/// Binds `addr` and serves on the current tokio runtime (spawned); returns the bound address.
pub async fn spawn(addr: SocketAddr, name: &str) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(serve(listener, Arc::from(name)));
    Ok(bound)
}

fn param(query: &str, key: &str) -> Option<u64> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.parse().ok())
}

async fn handle(
    mut req: Request<Incoming>,
    name: Arc<str>,
    peer: SocketAddr,
) -> Result<Response<Body>, Infallible> {
    let query = req.uri().query().unwrap_or("").to_string();
    if let Some(ms) = param(&query, "echo_delay_ms") {
        tokio::time::sleep(Duration::from_millis(ms.min(60_000))).await;
    }
    let is_ws = req
        .headers()
        .get(http::header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    if is_ws {
        return Ok(websocket(&mut req));
    }
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let mut body = req.into_body();
    let mut hasher = sha2::Sha256::new();
    let mut len = 0u64;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Some(d) = f.data_ref() {
                    hasher.update(d);
                    len += d.len() as u64;
                }
            }
            Err(_) => break,
        }
    }
    let digest = idp_bridge::to_hex(&hasher.finalize());
    let json = serde_json::json!({
        "backend": &*name,
        "peer": peer.to_string(),
        "method": method,
        "path": path,
        "query": query,
        "headers": headers,
        "body_bytes": len,
        "body_sha256": digest,
    });
    let status = param(&query, "echo_status")
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    if let Some(chunks) = param(&query, "echo_chunks") {
        let stream = futures_util::stream::iter(0..chunks.min(10_000)).then(|i| async move {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b'a' + (i % 26) as u8; 1024])))
        });
        let resp = Response::builder()
            .status(status)
            .header("content-type", "application/octet-stream")
            .body(BodyExt::boxed(StreamBody::new(stream)));
        return Ok(resp.unwrap_or_else(|_| Response::new(empty())));
    }
    let bytes = Bytes::from(serde_json::to_vec_pretty(&json).unwrap_or_default());
    let mut resp = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        if k == "echo_set_cookie" {
            resp = resp.header("set-cookie", format!("{v}=planted; Path=/"));
        }
    }
    let resp = resp.body(Full::new(bytes).boxed());
    Ok(resp.unwrap_or_else(|_| Response::new(empty())))
}

fn empty() -> Body {
    Full::new(Bytes::new()).boxed()
}

fn websocket(req: &mut Request<Incoming>) -> Response<Body> {
    let key = req
        .headers()
        .get("sec-websocket-key")
        .map(|k| k.as_bytes().to_vec())
        .unwrap_or_default();
    let mut sha = sha1::Sha1::new();
    sha1::Digest::update(&mut sha, &key);
    sha1::Digest::update(&mut sha, b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    let accept = base64::engine::general_purpose::STANDARD.encode(sha1::Digest::finalize(sha));
    let upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let mut io = TokioIo::new(upgraded);
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if io.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", accept)
        .body(empty())
        .unwrap_or_else(|_| Response::new(empty()))
}
