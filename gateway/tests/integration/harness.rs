//! Starting gateways and back-ends for the tests.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use gateway::server::{serve, Stop};
use gateway::state::Shared;

/// The runtime that runs back-ends and test clients (pingora runs its own).
pub(crate) fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    })
}

/// An echo back-end (started once per name).
pub(crate) fn echo(name: &'static str) -> SocketAddr {
    rt().block_on(gateway::echo::spawn(
        "127.0.0.1:0".parse().expect("addr"),
        name,
    ))
    .expect("echo")
}

/// Waits for `cond` for at most `limit`, failing the test with `what`.
pub(crate) fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The body of `GET http://host:port/path` on `gw`.
pub(crate) fn get_text(gw: &Gateway, host: &str, path: &str) -> String {
    rt().block_on(async {
        gw.client()
            .get(gw.url(host, path))
            .send()
            .await
            .expect("send")
            .text()
            .await
            .expect("body")
    })
}

/// Runs the `varco` binary: its exit code, stdout and stderr.
pub(crate) fn varco(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_varco"))
        .args(args)
        .output()
        .expect("run varco");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A port that was free a moment ago.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A port where nothing listens (connections are refused).
pub(crate) fn closed_port() -> u16 {
    free_port()
}

/// One service line-up for a test configuration.
pub(crate) struct Svc {
    pub(crate) id: &'static str,
    pub(crate) host: &'static str,
    pub(crate) prefix: &'static str,
    pub(crate) upstream: String,
    pub(crate) level: &'static str,
    pub(crate) extra: &'static str,
}

impl Svc {
    pub(crate) fn public(
        id: &'static str,
        host: &'static str,
        prefix: &'static str,
        upstream: SocketAddr,
    ) -> Self {
        Self {
            id,
            host,
            prefix,
            upstream: format!("http://{upstream}"),
            level: "public",
            extra: "",
        }
    }
}

impl Svc {
    /// A service that needs `level` and releases `attributes` (a TOML array's items, e.g.
    /// `"\"fiscalNumber\""`).
    pub(crate) fn at_level(
        id: &'static str,
        host: &'static str,
        prefix: &'static str,
        upstream: SocketAddr,
        level: &'static str,
        extra: &'static str,
    ) -> Self {
        Self {
            level,
            extra,
            ..Self::public(id, host, prefix, upstream)
        }
    }
}

/// The policy files of one comune (`c_a001`) with these services.
pub(crate) fn one_comune(services: &[Svc]) -> Vec<(&'static str, String)> {
    vec![("a.toml", policy_toml("c_a001", "046001", services))]
}

/// A gateway for one comune on a.test: a public service at `/pub/` and TARI at level 2 at
/// `/tari/` (releasing the fiscal number), both on the back-end `be`.
pub(crate) fn pub_and_tari(server_extra: &str, be: SocketAddr) -> Gateway {
    Gateway::start(server_extra, &pub_and_tari_policies(be))
}

/// The policy files of [`pub_and_tari`].
pub(crate) fn pub_and_tari_policies(be: SocketAddr) -> Vec<(&'static str, String)> {
    one_comune(&[
        Svc::public("pub", "a.test", "/pub/", be),
        Svc::at_level(
            "tari",
            "a.test",
            "/tari/",
            be,
            "SpidL2",
            "attributes = [\"fiscalNumber\"]",
        ),
    ])
}

pub(crate) fn policy_toml(ipa: &str, istat: &str, services: &[Svc]) -> String {
    let mut s = format!("[comune]\nname = \"Comune di Prova {ipa}\"\nipa_code = \"{ipa}\"\nistat_code = \"{istat}\"\n");
    for svc in services {
        s.push_str(&format!(
            "\n[[service]]\nid = \"{}\"\nname = \"Servizio {}\"\ndescription = \"Descrizione\"\ncategory = \"ambiente\"\nroute = {{ host = \"{}\", path_prefix = \"{}\" }}\nupstream = \"{}\"\nlevel = \"{}\"\n{}\n",
            svc.id, svc.id, svc.host, svc.prefix, svc.upstream, svc.level, svc.extra
        ));
    }
    s
}

/// Writes a configuration directory (main file, keys, policies) with fresh ports.
pub(crate) fn write_config(
    server_extra: &str,
    policies: &[(&str, String)],
) -> (tempfile::TempDir, u16, u16) {
    write_config_with(server_extra, policies, |_| {})
}

/// As [`write_config`]; `prepare` puts files in the directory before the policies are written
/// (files they name must exist when they are read).
pub(crate) fn write_config_with(
    server_extra: &str,
    policies: &[(&str, String)],
    prepare: impl FnOnce(&Path),
) -> (tempfile::TempDir, u16, u16) {
    let dir = tempfile::tempdir().expect("tempdir");
    prepare(dir.path());
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/keys");
    std::fs::copy(examples.join("sp.key"), dir.path().join("sp.key")).expect("key");
    std::fs::copy(examples.join("sp.crt"), dir.path().join("sp.crt")).expect("crt");
    std::fs::copy(examples.join("audit.key"), dir.path().join("audit.key")).expect("audit key");
    std::fs::create_dir(dir.path().join("keys")).expect("mkdir");
    std::fs::copy(examples.join("jwt.pem"), dir.path().join("keys/jwt.pem")).expect("jwt key");
    std::fs::create_dir(dir.path().join("policies")).expect("mkdir");
    for (name, text) in policies {
        std::fs::write(dir.path().join("policies").join(name), text).expect("write");
    }
    let (port, admin) = (free_port(), free_port());
    let main = format!(
        r#"[server]
listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:{admin}"
public_url = "http://portal.localhost:{port}"
threads = 2
{server_extra}

[sp]
entity_id = "http://portal.localhost/.sso/metadata"
key = "sp.key"
cert = "sp.crt"
audit_key = "audit.key"
organization = {{ name = "Provincia di Prova", display_name = "Prova", url = "https://prova.example" }}
contact = {{ ipa_code = "p_pr", email = "spid@prova.example", municipality = "046007" }}

[[sp.attribute_set]]
index = 0
name = "Identità di base"
attributes = ["fiscalNumber", "name", "familyName"]

[[idp]]
metadata = "{idp}"
"#,
        idp = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../idp-bridge/test_vectors/spid-sp-test-idp.xml")
            .display()
    );
    std::fs::write(dir.path().join("varco.toml"), main).expect("write");
    (dir, port, admin)
}

/// A gateway running on its own ports with its own configuration directory.
pub(crate) struct Gateway {
    pub(crate) port: u16,
    pub(crate) admin: u16,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) shared: Arc<Shared>,
    stop: Arc<tokio::sync::Notify>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Gateway {
    /// Writes the configuration and starts serving it.
    pub(crate) fn start(server_extra: &str, policies: &[(&str, String)]) -> Self {
        let (dir, port, admin) = write_config(server_extra, policies);
        Self::serve(dir, port, admin)
    }

    /// Writes the configuration, lets `edit` change the main file's text, and starts serving.
    pub(crate) fn start_edited(
        server_extra: &str,
        policies: &[(&str, String)],
        edit: impl FnOnce(String, u16) -> String,
    ) -> Self {
        let (dir, port, admin) = write_config(server_extra, policies);
        let main = dir.path().join("varco.toml");
        let text = std::fs::read_to_string(&main).expect("read");
        std::fs::write(&main, edit(text, port)).expect("write");
        Self::serve(dir, port, admin)
    }

    /// Serves the configuration in `dir` on the ports written there.
    pub(crate) fn serve(dir: tempfile::TempDir, port: u16, admin: u16) -> Self {
        let shared = Arc::new(
            Shared::load(&dir.path().join("varco.toml")).unwrap_or_else(|e| panic!("{e}")),
        );
        Self::serve_loaded(dir, port, admin, shared)
    }

    /// Serves what was already loaded from `dir` (its files may have changed since).
    pub(crate) fn serve_loaded(
        dir: tempfile::TempDir,
        port: u16,
        admin: u16,
        shared: Arc<Shared>,
    ) -> Self {
        let stop = Arc::new(tokio::sync::Notify::new());
        let (s2, n2) = (shared.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            serve(s2, Stop::Notify(n2)).expect("serve");
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err()
            || TcpStream::connect(("127.0.0.1", admin)).is_err()
        {
            assert!(Instant::now() < deadline, "gateway did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            port,
            admin,
            dir,
            shared,
            stop,
            thread: Some(thread),
        }
    }

    pub(crate) fn policy_path(&self, name: &str) -> PathBuf {
        self.dir.path().join("policies").join(name)
    }

    pub(crate) fn config_path(&self) -> PathBuf {
        self.dir.path().join("varco.toml")
    }

    /// A client that resolves every test host to this gateway.
    pub(crate) fn client(&self) -> reqwest::Client {
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        let mut b = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20));
        for h in [
            "portal.localhost",
            "a.test",
            "b.test",
            "c.test",
            "nowhere.test",
        ] {
            b = b.resolve(h, addr);
        }
        b.build().expect("client")
    }

    pub(crate) fn url(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.port)
    }

    pub(crate) fn metrics(&self) -> String {
        rt().block_on(async {
            reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client")
                .get(format!("http://127.0.0.1:{}/metrics", self.admin))
                .send()
                .await
                .expect("metrics")
                .text()
                .await
                .expect("body")
        })
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sends raw bytes and reads the whole response (the server closes or the timeout passes).
pub(crate) fn raw(port: u16, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(request).expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if complete(&out) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether a buffered HTTP/1.1 response with Content-Length is complete.
fn complete(buf: &[u8]) -> bool {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    match head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        Some(len) => buf.len() >= end + 4 + len,
        None => false,
    }
}

/// The JSON body of an echo response (after the head).
pub(crate) fn echo_json(response: &str) -> serde_json::Value {
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not echo JSON ({e}): {response}"))
}

/// The header names the back-end received, lower case.
pub(crate) fn received_headers(json: &serde_json::Value) -> Vec<(String, String)> {
    json["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap_or("").to_ascii_lowercase(),
                p[1].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// GET `url` and parse the echo back-end's JSON answer.
pub(crate) async fn get_json(c: &reqwest::Client, url: String) -> serde_json::Value {
    c.get(url)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json")
}

/// The `Location` of a redirect.
pub(crate) fn location_of(r: &reqwest::Response) -> String {
    r.headers()["location"].to_str().expect("ascii").to_string()
}

/// Where a browser goes on from this answer: a redirect's `Location`, or the `Refresh` of the page
/// that answers a form POST (`0; url=...`).
pub(crate) fn onward_of(r: &reqwest::Response) -> Option<String> {
    if r.status().is_redirection() {
        return r
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(String::from);
    }
    r.headers()
        .get("refresh")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once("url="))
        .map(|(_, u)| u.to_string())
}

/// `name=value` of the (first) `Set-Cookie`, as a client sends it back.
pub(crate) fn cookie_pair(r: &reqwest::Response) -> String {
    let v = r.headers()["set-cookie"].to_str().expect("ascii");
    v.split(';').next().expect("pair").to_string()
}

/// Every `Set-Cookie` of `r` as `name=value`.
pub(crate) fn cookie_pairs(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next().map(String::from))
        .collect()
}

/// A throw-away `redis-server` on a free loopback port, killed on drop.
pub(crate) struct RedisServer {
    pub(crate) port: u16,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts one (the Debian package `redis-server` must be installed: `.ci/install-deps`).
    pub(crate) fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let child = Self::spawn(port, dir.path());
        Self {
            port,
            child,
            _dir: dir,
        }
    }

    fn spawn(port: u16, dir: &Path) -> std::process::Child {
        let child = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .arg("--dir")
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server (apt-get install redis-server): {e}")
            });
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    /// Starts it again on the same port (after [`Self::kill`]), empty.
    pub(crate) fn restart(&mut self) {
        self.kill();
        self.child = Self::spawn(self.port, self._dir.path());
    }

    /// `redis://127.0.0.1:port`.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops it now (to test an unreachable store).
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A raw HTTP/1 back-end on threads of its own: each request head it reads (its body skipped by
/// `Content-Length` only, as a naive server reads it) goes to `answer`, which gives the bytes to
/// send back and whether to close the connection after them.
pub(crate) fn raw_back_end(
    answer: impl Fn(&str) -> (Vec<u8>, bool) + Send + Sync + 'static,
) -> SocketAddr {
    use std::io::{Read, Write};
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    let answer = Arc::new(answer);
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let answer = answer.clone();
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    // Every complete request in the buffer gets its answer.
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_string();
                        let len = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if buf.len() < end + 4 + len {
                            break;
                        }
                        buf.drain(..end + 4 + len);
                        let (bytes, close) = answer(&head);
                        if s.write_all(&bytes).is_err() || close {
                            return;
                        }
                    }
                    match s.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    addr
}

/// Sends `request` on a new connection and reads until the server closes (or resets), `silence`
/// passes without a byte, or 10 s pass; returns the bytes and whether the server closed.
pub(crate) fn read_until_closed(port: u16, request: &[u8], silence: Duration) -> (Vec<u8>, bool) {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(silence)).expect("timeout");
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (out, true),
            Err(_) => break,
        }
    }
    (out, false)
}
