//! Writes the whole-of-Tuscany configuration (273 comuni, N services each) that the scale tests,
//! the catalog benchmark and the browser tests load.
//!
//! `tuscany-config DIR [SERVICES] [UPSTREAM] [LISTEN] [ADMIN]`: prints the main file's path. The
//! portal is `http://LISTEN`; services are on `<cadastral code>.toscana.test`.

#[allow(clippy::print_stdout)] // the path is this tool's output
fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().ok_or_else(|| {
        anyhow::anyhow!("usage: tuscany-config DIR [SERVICES] [UPSTREAM] [LISTEN] [ADMIN]")
    })?);
    let services: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(40);
    let upstream = args.next().unwrap_or_else(|| "http://127.0.0.1:9".into());
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:8080".into());
    let admin = args.next().unwrap_or_else(|| "127.0.0.1:9090".into());
    let public_url = format!("http://{listen}");
    std::fs::create_dir_all(&dir)?;
    let main = benches::write_tuscany(&dir, services, &upstream, &listen, &admin, &public_url)?;
    println!("{}", main.display());
    Ok(())
}
