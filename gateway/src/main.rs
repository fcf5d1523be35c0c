//! `varco`: the command line of the gateway (CONTRACT.md "Command line").
//!
//! Exit codes: 0 success; 1 invalid configuration (one `path:line:col: message` line per problem
//! on stderr); 2 usage error; 3 the gateway could not start (address in use, unresolvable
//! upstream...); 4 `explain`: the URL is not routed to any service.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gateway::error::Error;
use gateway::server::Stop;
use policies::Level;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::EnvFilter;

// glibc malloc is visible in pingora's profile (STACK.md §12); mimalloc is measurably faster.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "varco",
    version,
    about = "One SPID/CIE login for every comune service"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve with this configuration.
    Run {
        /// The main configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Take over from the varco running this configuration, without dropping a connection:
        /// its listening sockets pass to this process, then it drains and exits.
        #[arg(long)]
        upgrade: bool,
    },
    /// Validate the configuration and every policy file.
    Check {
        /// The main configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Dry run: which comune/service, level and headers apply to a URL.
    Explain {
        /// The main configuration file.
        #[arg(long)]
        config: PathBuf,
        /// The URL a citizen would open.
        #[arg(long)]
        url: String,
        /// The level of the session to assume (SpidL1, SpidL2, SpidL3); none: anonymous.
        #[arg(long)]
        level: Option<String>,
    },
    /// Print the signed SAML SP metadata (SPID profile, or CIE with --cie): the SP's, or an
    /// aggregated comune's with --comune; or write every entity's to a folder with --export.
    Metadata {
        /// The main configuration file.
        #[arg(long)]
        config: PathBuf,
        /// The CIE federation's profile instead of SPID's.
        #[arg(long)]
        cie: bool,
        /// The comune (IPA code) whose metadata to print (sp.mode = "aggregator").
        #[arg(long, conflicts_with = "export")]
        comune: Option<String>,
        /// Write every entity's signed SPID and CIE metadata, the services list (services.csv)
        /// and a signed SHA256SUMS into this folder, for the registration with AgID.
        #[arg(long, value_name = "DIR")]
        export: Option<PathBuf>,
    },
    /// The SAML audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// The whole flow on this computer: the example comuni, a DEMO identity provider, back-ends
    /// that show what they receive. Loopback only; keys are generated in the state folder.
    Demo {
        /// State folder (keys, generated configuration, audit trail).
        #[arg(long, default_value = ".state/demo")]
        state: PathBuf,
        /// The gateway (open http://<this>/).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// The admin listener (metrics, health).
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin: std::net::SocketAddr,
        /// The DEMO identity provider.
        #[arg(long, default_value = "127.0.0.1:8081")]
        idp: std::net::SocketAddr,
        /// The back-ends of Capannori, Lucca and Porcari.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "127.0.0.1:9101,127.0.0.1:9102,127.0.0.1:9103"
        )]
        backends: Vec<std::net::SocketAddr>,
    },
    /// Run a test echo back-end (for the examples and benchmarks).
    Echo {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9101")]
        listen: std::net::SocketAddr,
        /// Name reported in every answer.
        #[arg(long, default_value = "echo")]
        name: String,
    },
}

#[derive(Subcommand, Debug)]
enum AuditCommand {
    /// Check the audit trail's chain (the file and the rotated files beside it); prints the first
    /// broken record, or the number of records and the last one's seq and MAC.
    Verify {
        /// The current audit file (`[sp] audit_log`).
        file: PathBuf,
        /// The audit key (`[sp] audit_key`); without it, only a file written before audit keys
        /// existed (a plain SHA-256 chain) can be checked.
        #[arg(long)]
        key: Option<PathBuf>,
    },
}

#[allow(clippy::print_stderr, clippy::print_stdout)] // a CLI's output is its interface
fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => {
            match policies::load(&config).map_err(Error::from).and_then(|s| {
                let identity = gateway::runtime::Identity::build(&s)?;
                let tls = gateway::tls::check(&s.config, identity.cns.as_ref())?;
                let certificates = gateway::ops::expiry::certificates(
                    &s,
                    &identity.keys,
                    &identity.idps,
                    identity.cns.as_ref(),
                    tls.as_ref(),
                );
                for w in gateway::ops::expiry::warnings(&certificates, chrono::Utc::now()) {
                    eprintln!("{w}");
                }
                if let (Some(cns), Some(store)) = (&s.config.cns, &tls) {
                    if !store.covers(&cns.host) {
                        eprintln!(
                            "warning: no [server.tls] certificate names the CNS host \"{}\": browsers will refuse its certificate",
                            cns.host
                        );
                    }
                }
                Ok(s)
            }) {
                Ok(s) => {
                    println!(
                        "{}: valid ({} comuni, {} services)",
                        config.display(),
                        s.comuni.len(),
                        s.services().count()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Audit {
            command: AuditCommand::Verify { file, key },
        } => {
            let key = match key.as_deref().map(idp_bridge::AuditKey::load).transpose() {
                Ok(k) => k,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(1);
                }
            };
            match idp_bridge::verify_audit(&file, key.as_ref()) {
                Ok(v) => {
                    let pruned = if v.first_seq > 1 {
                        format!(
                            " (from seq {}: older files removed by retention)",
                            v.first_seq
                        )
                    } else {
                        String::new()
                    };
                    println!(
                        "{}: chain intact, {} records in {} files{pruned}; last seq {} mac {}",
                        file.display(),
                        v.records,
                        v.files.len(),
                        v.last_seq,
                        v.last_mac
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Metadata {
            config,
            cie,
            comune,
            export,
        } => {
            let loaded = policies::load(&config).map_err(Error::from).and_then(|s| {
                let id = gateway::runtime::Identity::build(&s)?;
                Ok((s, id))
            });
            let (snapshot, id) = match loaded {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(1);
                }
            };
            if let Some(dir) = export {
                return match gateway::cli::export::export(&snapshot, &id, &dir) {
                    Ok(done) => {
                        println!("{} files in {}", done.files.len(), dir.display());
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("{e}");
                        ExitCode::from(1)
                    }
                };
            }
            let profile = if cie {
                idp_bridge::Profile::Cie
            } else {
                idp_bridge::Profile::Spid
            };
            let xml = match comune {
                None => Ok(Some(
                    String::from_utf8_lossy(if cie {
                        &id.metadata_cie
                    } else {
                        &id.metadata_spid
                    })
                    .into_owned(),
                )),
                Some(ipa) => match snapshot.comuni.iter().find(|c| c.ipa_code.as_str() == ipa) {
                    None => {
                        eprintln!(
                            "no comune with IPA code {ipa:?} in {}",
                            snapshot.config.policies_dir.display()
                        );
                        return ExitCode::from(1);
                    }
                    Some(c) => idp_bridge::signed_metadata(
                        &snapshot.config,
                        &id.keys,
                        profile,
                        idp_bridge::MetadataOf::Comune(c),
                    ),
                },
            };
            match xml {
                Ok(Some(xml)) => {
                    print!("{xml}");
                    ExitCode::SUCCESS
                }
                Ok(None) => {
                    eprintln!(
                        "a comune has metadata of its own only with sp.mode = \"aggregator\""
                    );
                    ExitCode::from(1)
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Explain { config, url, level } => {
            let level = match level.as_deref().map(str::parse::<Level>) {
                None => None,
                Some(Ok(l)) => Some(l),
                Some(Err(())) => {
                    eprintln!("--level must be SpidL1, SpidL2 or SpidL3");
                    return ExitCode::from(2);
                }
            };
            match policies::load(&config) {
                Ok(s) => {
                    let (verdict, text) = gateway::cli::explain::explain(&s, &url, level);
                    print!("{text}");
                    if verdict == gateway::cli::explain::Verdict::NotRouted {
                        ExitCode::from(4)
                    } else {
                        ExitCode::SUCCESS
                    }
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Run { config, upgrade } => {
            let _guard = init_logging(&config);
            let start = if upgrade {
                gateway::state::Start::Upgrade
            } else {
                gateway::state::Start::Fresh
            };
            match gateway::server::run_as(&config, Stop::Signals, start) {
                Ok(()) => ExitCode::SUCCESS,
                Err(
                    e @ (Error::Policy(_)
                    | Error::Identity(_)
                    | Error::Audit(_)
                    | Error::Upgrade(_)),
                ) => {
                    eprintln!("{e}");
                    ExitCode::from(1)
                }
                Err(e) => {
                    eprintln!("varco: {e}");
                    ExitCode::from(3)
                }
            }
        }
        Command::Demo {
            state,
            listen,
            admin,
            idp,
            backends,
        } => {
            let Ok(backends) = <[std::net::SocketAddr; 3]>::try_from(backends) else {
                eprintln!("--backends needs three addresses");
                return ExitCode::from(2);
            };
            #[cfg(feature = "demo")]
            {
                let config = state.join("varco.toml");
                let options = gateway::demo::Options {
                    state,
                    listen,
                    admin,
                    idp,
                    backends,
                };
                let _guard = init_logging(&config);
                match gateway::demo::run(&options) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("varco: {e}");
                        ExitCode::from(3)
                    }
                }
            }
            #[cfg(not(feature = "demo"))]
            {
                let _ = (state, listen, admin, idp, backends);
                eprintln!(
                    "varco: this build has no demo (a production build leaves out its test identity provider); build with the default features to run `varco demo`"
                );
                ExitCode::from(2)
            }
        }
        Command::Echo { listen, name } => {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("varco echo: {e}");
                    return ExitCode::from(3);
                }
            };
            rt.block_on(async {
                match gateway::echo::spawn(listen, &name).await {
                    Ok(addr) => {
                        println!("echo back-end \"{name}\" on http://{addr}");
                        let _ = tokio::signal::ctrl_c().await;
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("varco echo: cannot listen on {listen}: {e}");
                        ExitCode::from(3)
                    }
                }
            })
        }
    }
}

/// Logs to stdout through a batching writer thread (a slow terminal or pipe never blocks a request),
/// text or JSON as configured, filtered by `RUST_LOG` (default `info`). Traces go to OTLP when
/// `[telemetry] otlp_endpoint` is set.
#[allow(clippy::print_stderr)] // logging is not set up yet when this fails
fn init_logging(config: &std::path::Path) -> Option<Guards> {
    let (format, otlp) = match policies::load(config) {
        Ok(s) => (s.config.server.log_format, s.config.telemetry.otlp_endpoint),
        Err(_) => (policies::LogFormat::Text, None),
    };
    let (writer, guard) = match gateway::ops::logsink::start(log_output()) {
        Ok(pair) => pair,
        Err(e) => {
            eprintln!("varco: cannot start the log writer: {e}");
            return None;
        }
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let fmt_text = (format == policies::LogFormat::Text).then(|| {
        tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_writer(writer.clone())
    });
    let fmt_json = (format == policies::LogFormat::Json)
        .then(|| tracing_subscriber::fmt::layer().json().with_writer(writer));
    let (otel_layer, provider) = match otlp {
        Some(endpoint) => match otlp_provider(endpoint.as_str()) {
            Ok(p) => {
                use opentelemetry::trace::TracerProvider as _;
                (
                    Some(tracing_opentelemetry::layer().with_tracer(p.tracer("varco"))),
                    Some(p),
                )
            }
            Err(e) => {
                eprintln!("varco: OTLP export disabled: {e}");
                (None, None)
            }
        },
        None => (None, None),
    };
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt_text)
        .with(fmt_json)
        .with(otel_layer)
        .try_init();
    Some(Guards {
        _log: guard,
        provider,
    })
}

/// Standard output without `Stdout`'s flush at every newline: a second descriptor of the same
/// file, opened for appending, so that the log writer decides when to write.
fn log_output() -> Box<dyn std::io::Write + Send> {
    match std::fs::OpenOptions::new().append(true).open("/dev/stdout") {
        Ok(f) => Box::new(f),
        Err(_) => Box::new(std::io::stdout()),
    }
}

fn otlp_provider(endpoint: &str) -> anyhow::Result<opentelemetry_sdk::trace::SdkTracerProvider> {
    use opentelemetry_otlp::WithExportConfig as _;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(endpoint)
        .build()?;
    Ok(opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name("varco")
                .build(),
        )
        .build())
}

struct Guards {
    _log: gateway::ops::logsink::LogGuard,
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for Guards {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            let _ = p.shutdown();
        }
    }
}
