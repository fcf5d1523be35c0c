//! The soak driver: hundreds of keep-alive clients against a running varco for a bounded time,
//! with a mix of public, authenticated, catalog and login traffic, counting every answer that is
//! not the expected one, and sampling the gateway's resident memory (RSS) after a warm-up and at
//! the end. `benches/soak.sh` starts varco and a back-end and runs this.
//!
//! `soak ADDR HOST COOKIE PID SECONDS CLIENTS`: requests go to `ADDR` with `Host: HOST`; the
//! authenticated ones carry `COOKIE`; `PID` is varco's process. Login starts come at a steady
//! 10 a second, each from its own client address (`X-Forwarded-For`, varco trusting loopback as
//! its load balancer), as citizens' do. Prints one summary line, and exits 1 on any error or if
//! RSS grew by more than 10 % (plus 8 MiB for allocator slack) from the warm-up to the end.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};

#[derive(Default)]
struct Counts {
    public: AtomicU64,
    authenticated: AtomicU64,
    catalog: AtomicU64,
    login: AtomicU64,
    errors: AtomicU64,
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("no VmRSS for {pid}"))
}

#[allow(clippy::print_stdout, clippy::print_stderr)] // the summary is this tool's output
fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, addr, host, cookie, pid, seconds, clients] = &args[..] else {
        return Err(anyhow!("usage: soak ADDR HOST COOKIE PID SECONDS CLIENTS"));
    };
    let addr: std::net::SocketAddr = addr.parse().context("ADDR")?;
    let pid: u32 = pid.parse().context("PID")?;
    let duration = Duration::from_secs(seconds.parse().context("SECONDS")?);
    let clients: usize = clients.parse().context("CLIENTS")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let counts = Arc::new(Counts::default());
    let base = format!("http://{host}:{}", addr.port());
    let start = Instant::now();
    let deadline = start + duration;
    let warmup = start
        + (duration / 10)
            .max(Duration::from_secs(3))
            .min(duration / 2);
    let (rss_start, rss_end) = rt.block_on(async {
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .resolve(host, addr)
            .pool_max_idle_per_host(clients)
            .timeout(Duration::from_secs(10))
            .build()?;
        let mut tasks = Vec::new();
        for i in 0..clients {
            let (client, counts, base, cookie) =
                (client.clone(), counts.clone(), base.clone(), cookie.clone());
            tasks.push(tokio::spawn(async move {
                let mut n: u64 = i as u64;
                while Instant::now() < deadline {
                    n = n
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let pick = (n >> 33) % 20;
                    let (req, expect, counter) = match pick {
                        0..=9 => (client.get(format!("{base}/pub/x")), 200, &counts.public),
                        10..=15 => (
                            client
                                .get(format!("{base}/auth/x"))
                                .header("cookie", &cookie),
                            200,
                            &counts.authenticated,
                        ),
                        16..=17 => (
                            client.get(format!("{base}/catalog.json?comune=c_bench")),
                            200,
                            &counts.catalog,
                        ),
                        _ => (
                            client.get(format!("{base}/catalog?q=servizio")),
                            200,
                            &counts.catalog,
                        ),
                    };
                    match req.send().await {
                        Ok(r) if r.status().as_u16() == expect => {
                            // Read the body: a connection is reused only once it is drained.
                            if r.bytes().await.is_ok() {
                                counter.fetch_add(1, Ordering::Relaxed);
                            } else {
                                counts.errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Ok(r) => {
                            eprintln!("soak: {} for request kind {pick}", r.status());
                            counts.errors.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            eprintln!("soak: {e}");
                            counts.errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }));
        }
        // Login starts: 10 a second, each from its own citizen.
        let logins = {
            let (client, counts, base) = (client.clone(), counts.clone(), base.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                let mut n: u32 = 0;
                while Instant::now() < deadline {
                    tick.tick().await;
                    n += 1;
                    let citizen = format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255);
                    let url = format!(
                        "{base}/.sso/login?idp=https%3A%2F%2Flocalhost%3A8443&return_to={}",
                        url::form_urlencoded::byte_serialize(format!("{base}/auth/x").as_bytes())
                            .collect::<String>()
                    );
                    match client
                        .get(url)
                        .header("x-forwarded-for", citizen)
                        .send()
                        .await
                    {
                        Ok(r) if r.status() == 302 => {
                            counts.login.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) => {
                            eprintln!("soak: login start answered {}", r.status());
                            counts.errors.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            eprintln!("soak: login start: {e}");
                            counts.errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        };
        tokio::time::sleep_until(warmup.into()).await;
        let rss_start = rss_kib(pid)?;
        for t in tasks {
            t.await?;
        }
        logins.await?;
        let rss_end = rss_kib(pid)?;
        anyhow::Ok((rss_start, rss_end))
    })?;
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let total = get(&counts.public)
        + get(&counts.authenticated)
        + get(&counts.catalog)
        + get(&counts.login);
    let errors = get(&counts.errors);
    let secs = start.elapsed().as_secs_f64();
    println!(
        "soak: {total} requests in {secs:.0} s ({:.0}/s) over {clients} keep-alive clients: {} public, {} authenticated, {} catalog, {} login starts; {errors} errors; RSS {:.1} MiB after warm-up, {:.1} MiB at the end",
        total as f64 / secs,
        get(&counts.public),
        get(&counts.authenticated),
        get(&counts.catalog),
        get(&counts.login),
        rss_start as f64 / 1024.0,
        rss_end as f64 / 1024.0,
    );
    let flat = rss_end <= rss_start + rss_start / 10 + 8 * 1024;
    let ok = errors == 0 && flat && total > 0;
    println!("soak: {} passed, {} failed", u8::from(ok), u8::from(!ok));
    if !flat {
        eprintln!("soak: RSS grew from {rss_start} KiB to {rss_end} KiB");
    }
    if ok {
        Ok(())
    } else {
        std::process::exit(1)
    }
}
