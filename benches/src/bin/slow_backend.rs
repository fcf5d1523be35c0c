//! The load test's slow back-end: answers every keep-alive GET with "ok" after a fixed delay, like
//! an application that takes 2 ms, so that a proxy's connection reuse and pool behaviour show
//! (with a back-end that answers at once, one connection per client suffices). `GET /accepts`
//! answers the number of connections accepted so far (what nginx's stub_status gives for the fast
//! back-end): the upstream connections a proxy opened.
//!
//!     slow-backend LISTEN DELAY_MS     e.g. slow-backend 127.0.0.1:18191 2

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: slow-backend LISTEN DELAY_MS";
    let listen: std::net::SocketAddr =
        args.next().ok_or_else(|| anyhow::anyhow!(usage))?.parse()?;
    let delay = Duration::from_millis(args.next().ok_or_else(|| anyhow::anyhow!(usage))?.parse()?);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let accepted = Arc::new(AtomicU64::new(0));
        loop {
            let (mut stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            let n = accepted.fetch_add(1, Ordering::Relaxed) + 1;
            let accepted = accepted.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let mut filled = 0;
                loop {
                    let Ok(read) = stream.read(&mut buf[filled..]).await else { return };
                    if read == 0 {
                        return;
                    }
                    filled += read;
                    // Every complete request head in the buffer (GETs: no bodies).
                    while let Some(end) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = &buf[..end];
                        let body = if head.starts_with(b"GET /accepts ") {
                            format!("{}\n", accepted.load(Ordering::Relaxed).max(n))
                        } else {
                            tokio::time::sleep(delay).await;
                            "ok\n".to_string()
                        };
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n{body}",
                            body.len()
                        );
                        if stream.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                        buf.copy_within(end + 4..filled, 0);
                        filled -= end + 4;
                    }
                    if filled == buf.len() {
                        return; // a head larger than 16 KiB: not from the load test
                    }
                }
            });
        }
    })
}
