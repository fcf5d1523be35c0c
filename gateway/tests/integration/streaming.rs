use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use sha2::Digest as _;

use crate::harness::*;

fn gateway() -> Gateway {
    let be = echo("stream");
    Gateway::start(
        "",
        &[(
            "a.toml",
            policy_toml("c_a001", "046001", &[Svc::public("pub", "a.test", "/", be)]),
        )],
    )
}

#[test]
fn responses_stream_without_buffering() {
    let gw = gateway();
    let c = gw.client();
    rt().block_on(async {
        let start = Instant::now();
        let r = c
            .get(gw.url("a.test", "/x?echo_chunks=40"))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200);
        let mut stream = r.bytes_stream();
        let mut total = 0;
        let mut first = None;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.expect("chunk");
            if first.is_none() && !chunk.is_empty() {
                first = Some(start.elapsed());
            }
            total += chunk.len();
        }
        let all = start.elapsed();
        assert_eq!(total, 40 * 1024);
        // 40 chunks 20 ms apart take ~800 ms; the first must arrive long before the last.
        let first = first.expect("data");
        assert!(
            first < all / 2,
            "first chunk after {first:?} of {all:?}: the body was buffered"
        );
    });
}

#[test]
fn large_uploads_arrive_intact() {
    let gw = gateway();
    let c = gw.client();
    let body: Vec<u8> = (0..20 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    let digest: String = sha2::Sha256::digest(&body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    rt().block_on(async {
        // Chunked (streamed) upload.
        let stream = futures_util::stream::iter(
            body.chunks(64 * 1024)
                .map(|c| Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(c)))
                .collect::<Vec<_>>(),
        );
        let r = c
            .put(gw.url("a.test", "/upload"))
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .expect("send");
        let j: serde_json::Value = r.json().await.expect("json");
        assert_eq!(j["body_bytes"].as_u64(), Some(body.len() as u64));
        assert_eq!(j["body_sha256"].as_str(), Some(digest.as_str()));
        // With Content-Length.
        let r = c
            .post(gw.url("a.test", "/upload"))
            .body(body.clone())
            .send()
            .await
            .expect("send");
        let j: serde_json::Value = r.json().await.expect("json");
        assert_eq!(j["body_sha256"].as_str(), Some(digest.as_str()));
    });
}

#[test]
fn websockets_are_tunnelled() {
    let gw = gateway();
    websocket_round_trip(&gw);
}

/// The echo back-end answers an upgrade at once, so its 101 often reaches the proxy before the
/// request's own body end does: the ordering that tore tunnels down (cloudflare/pingora#946,
/// patched in vendor/pingora-proxy). Every handshake must give a working tunnel.
#[test]
fn websocket_handshakes_race_their_back_end() {
    let gw = gateway();
    for _ in 0..40 {
        websocket_round_trip(&gw);
    }
}

/// One WebSocket handshake through varco, then two messages echoed through the tunnel.
fn websocket_round_trip(gw: &Gateway) {
    let mut s = TcpStream::connect(("127.0.0.1", gw.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).expect("read head");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    for msg in [
        &b"ciao"[..],
        &[0x81, 0x85, 1, 2, 3, 4, 0x69, 0x67, 0x6f, 0x68, 0x6e][..],
    ] {
        s.write_all(msg).expect("write");
        let mut back = vec![0u8; msg.len()];
        s.read_exact(&mut back).expect("echo");
        assert_eq!(back, msg);
    }
}

#[test]
fn upstream_connections_are_reused() {
    let gw = gateway();
    let c = gw.client();
    let peers: std::collections::HashSet<String> = rt().block_on(async {
        let mut peers = std::collections::HashSet::new();
        for _ in 0..30 {
            let j = get_json(&c, gw.url("a.test", "/k")).await;
            peers.insert(j["peer"].as_str().expect("peer").to_string());
        }
        peers
    });
    // Sequential requests: at most one connection per proxy worker thread.
    assert!(
        peers.len() <= 2,
        "{} upstream connections for 30 sequential requests",
        peers.len()
    );
}
