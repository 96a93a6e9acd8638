//! Arguments and wiring: what each sub-command starts, nothing more.

use std::io::{IsTerminal as _, Read as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::admin::Admin;
use crate::auth::oauth2::TokenClientSettings;
use crate::config::{self, LoadOptions};
use crate::metrics::Exporter;
use crate::proxy::{ClientSettings, Proxy, UpstreamClient};
use crate::secret::{MasterKey, MasterKeys};
use crate::server::{self, ListenerTls, ServerSettings};
use crate::store::Store;
use crate::telemetry::{self, LogFormat};
use crate::watch::{self, Reloader, Trigger};

#[derive(Debug, Parser)]
#[command(
    name = "credproxy",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// `credproxy --config F` is `credproxy serve --config F`.
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy (the default).
    Serve(Box<ServeArgs>),
    /// Validate a sources.yaml and list its sources; exits non-zero on any problem.
    Check(ConfigArgs),
    /// Encrypt a secret read from stdin into an `{ encrypted: "v1:…" }` value.
    Encrypt(KeyArgs),
    /// Print the token_sha256 of a caller token read from stdin; with empty stdin, make a
    /// fresh random token and print it with its hash.
    HashToken,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// The sources file [default: $SOURCE_SECRETS_PATH, else secrets/sources.yaml]
    #[arg(long = "config", env = "SOURCE_SECRETS_PATH", default_value = config::DEFAULT_PATH, hide_default_value = true, hide_env = true)]
    pub path: PathBuf,
    #[command(flatten)]
    pub keys: KeyArgs,
}

#[derive(Debug, Args)]
pub struct KeyArgs {
    /// File holding the master key (base64 of 32 bytes) for encrypted values
    /// [default: the key in $CREDPROXY_MASTER_KEY]
    #[arg(long)]
    pub master_key_file: Option<PathBuf>,
    /// The previous master key, still accepted for decryption during a rotation
    /// [default: the key in $CREDPROXY_PREVIOUS_MASTER_KEY]
    #[arg(long)]
    pub previous_master_key_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Proxy listener address.
    #[arg(long, env = "CREDPROXY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Admin listener address (/healthz, /readyz).
    #[arg(long, env = "CREDPROXY_ADMIN_LISTEN", default_value = "127.0.0.1:9090")]
    pub admin_listen: SocketAddr,
    /// Log format; the level comes from RUST_LOG (default info).
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Upstream TCP connect timeout.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    pub connect_timeout: Duration,
    /// Time to wait for an upstream's response headers before answering 504.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    pub upstream_timeout: Duration,
    /// Time limit for one OAuth2 token request (→ 502 token_endpoint_error).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub token_timeout: Duration,
    /// Lifetime assumed for an OAuth2 token whose response has no expires_in.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5m")]
    pub token_default_lifetime: Duration,
    /// Serve the proxy listener over TLS with this PEM certificate chain (re-read on SIGHUP).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Time a client gets to send request headers, also the idle limit of a kept-alive
    /// HTTP/1 connection.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub header_read_timeout: Duration,
    /// Open client connections at most, per listener.
    #[arg(long, default_value_t = 10_000)]
    pub max_connections: usize,
    /// How long in-flight requests may finish after SIGTERM/SIGINT.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "25s")]
    pub shutdown_grace: Duration,
    /// Threads serving requests; 0 = one per CPU this process may use (its affinity and
    /// cgroup quota). With one, credproxy runs a single-threaded runtime, which costs
    /// less per request than a one-worker pool.
    #[arg(long, env = "CREDPROXY_WORKERS", default_value_t = 0)]
    pub workers: usize,
    /// Do not watch the config file for changes (SIGHUP still reloads).
    #[arg(long)]
    pub no_watch: bool,
    /// Allow a non-loopback --listen without caller authentication.
    #[arg(long)]
    pub allow_unauthenticated: bool,
}

pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Some(Command::Check(args)) => check(&args),
        Some(Command::Encrypt(args)) => encrypt(&args),
        Some(Command::HashToken) => hash_token(),
        Some(Command::Serve(args)) => serve(*args),
        None => serve(cli.serve),
    }
}

impl ServeArgs {
    /// Secure by default: beyond loopback, every request must come from a known caller
    /// unless the operator says a network policy already restricts who connects.
    fn requires_callers(&self) -> bool {
        !self.listen.ip().is_loopback() && !self.allow_unauthenticated
    }
}

impl KeyArgs {
    /// The configured master keys: each from its file, else from its variable.
    pub fn master_keys(&self) -> Result<MasterKeys, String> {
        let current = key_from(self.master_key_file.as_ref(), "CREDPROXY_MASTER_KEY")?;
        let previous = key_from(
            self.previous_master_key_file.as_ref(),
            "CREDPROXY_PREVIOUS_MASTER_KEY",
        )?;
        Ok(MasterKeys::new(current.into_iter().chain(previous)))
    }
}

fn key_from(file: Option<&PathBuf>, variable: &str) -> Result<Option<MasterKey>, String> {
    let text = match file {
        Some(path) => zeroize::Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the master key file {}: {e}", path.display()))?,
        ),
        None => match std::env::var(variable) {
            Ok(value) => zeroize::Zeroizing::new(value),
            Err(_) => return Ok(None),
        },
    };
    let source = file.map_or_else(|| variable.to_owned(), |p| p.display().to_string());
    MasterKey::from_base64(&text)
        .map(Some)
        .map_err(|e| format!("{source}: {e}"))
}

fn check(args: &ConfigArgs) -> ExitCode {
    let keys = match args.keys.master_keys() {
        Ok(keys) => keys,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let options = LoadOptions {
        keys: Some(&keys),
        ..LoadOptions::default()
    };
    match config::load(&args.path, options) {
        Ok(snapshot) => {
            for source in snapshot.sources() {
                println!("{}\t{}\t{}", source.id, source.auth_type, source.upstream);
            }
            eprintln!(
                "{}: OK, {} source{}",
                args.path.display(),
                snapshot.sources().len(),
                if snapshot.sources().len() == 1 {
                    ""
                } else {
                    "s"
                }
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}

fn encrypt(args: &KeyArgs) -> ExitCode {
    let key = match args.master_keys() {
        Ok(keys) => keys.current().cloned(),
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let Some(key) = key else {
        eprintln!("No master key: set CREDPROXY_MASTER_KEY or pass --master-key-file (make one with: head -c 32 /dev/urandom | base64)");
        return ExitCode::FAILURE;
    };
    let secret = match read_secret() {
        Ok(secret) => secret,
        Err(error) => {
            eprintln!("Cannot read the secret from stdin: {error}");
            return ExitCode::FAILURE;
        }
    };
    if secret.is_empty() {
        eprintln!("The secret is empty");
        return ExitCode::FAILURE;
    }
    match key.encrypt(&secret) {
        Ok(value) => {
            println!("{{ encrypted: \"{value}\" }}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("Cannot encrypt: {error}");
            ExitCode::FAILURE
        }
    }
}

fn hash_token() -> ExitCode {
    let token = match read_secret() {
        Ok(token) => token,
        Err(error) => {
            eprintln!("Cannot read the token from stdin: {error}");
            return ExitCode::FAILURE;
        }
    };
    if !token.is_empty() {
        println!("token_sha256: {}", crate::caller::token_sha256_hex(&token));
        return ExitCode::SUCCESS;
    }
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    if getrandom::fill(&mut *bytes).is_err() {
        eprintln!("Cannot get random bytes for a token");
        return ExitCode::FAILURE;
    }
    use base64::Engine as _;
    let token = zeroize::Zeroizing::new(format!(
        "cpt_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(*bytes)
    ));
    println!("token: {}", *token);
    println!("token_sha256: {}", crate::caller::token_sha256_hex(&token));
    ExitCode::SUCCESS
}

/// The secret from stdin, without echo when stdin is a terminal; one trailing newline
/// is trimmed.
fn read_secret() -> std::io::Result<zeroize::Zeroizing<String>> {
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password("Secret (not echoed): ").map(zeroize::Zeroizing::new);
    }
    let mut text = zeroize::Zeroizing::new(String::new());
    std::io::stdin().read_to_string(&mut text)?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

fn serve(args: ServeArgs) -> ExitCode {
    telemetry::init(args.log_format);
    let keys = match args.config.keys.master_keys() {
        Ok(keys) => keys,
        Err(error) => {
            tracing::error!(%error, "Cannot start: bad master key");
            return ExitCode::FAILURE;
        }
    };
    let options = LoadOptions {
        keys: Some(&keys),
        previous: None,
        require_callers: args.requires_callers(),
    };
    let snapshot = match config::load(&args.config.path, options) {
        Ok(snapshot) => snapshot,
        Err(error) => {
            tracing::error!(problems = %error, "Cannot start: the config was rejected");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match runtime(args.workers) {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "Cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run_servers(args, snapshot, keys))
}

/// The async runtime: single-threaded for one worker (no work stealing to pay for),
/// a work-stealing pool otherwise.
fn runtime(workers: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let workers = match workers {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    let mut builder = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(workers);
        builder
    };
    builder.enable_all().build()
}

async fn run_servers(args: ServeArgs, snapshot: config::Snapshot, keys: MasterKeys) -> ExitCode {
    tracing::info!(
        path = %args.config.path.display(),
        sources = snapshot.sources().len(),
        "Config loaded"
    );
    let store = Arc::new(Store::new(snapshot));
    let reloader = Arc::new(Reloader::new(
        Arc::clone(&store),
        args.config.path.clone(),
        keys,
        args.requires_callers(),
    ));
    let reload = match watch::spawn(Arc::clone(&reloader), !args.no_watch) {
        Ok(handle) => handle,
        Err(error) => {
            tracing::error!(%error, "Cannot watch the config directory (pass --no-watch to rely on SIGHUP)");
            return ExitCode::FAILURE;
        }
    };
    let client = match UpstreamClient::new(ClientSettings {
        connect_timeout: args.connect_timeout,
        response_timeout: args.upstream_timeout,
        ..ClientSettings::default()
    }) {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "Cannot set up TLS for upstreams");
            return ExitCode::FAILURE;
        }
    };
    let listener_tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => match ListenerTls::from_files(cert, key) {
            Ok(tls) => Some(Arc::new(tls)),
            Err(error) => {
                tracing::error!(%error, "Cannot start: bad TLS certificate or key");
                return ExitCode::FAILURE;
            }
        },
        _ => None,
    };
    let proxy_listener = match bind(args.listen, "proxy").await {
        Some(listener) => listener,
        None => return ExitCode::FAILURE,
    };
    let admin_listener = match bind(args.admin_listen, "admin").await {
        Some(listener) => listener,
        None => return ExitCode::FAILURE,
    };

    let settings = ServerSettings {
        shutdown_grace: args.shutdown_grace,
        header_read_timeout: args.header_read_timeout,
        max_connections: args.max_connections,
        ..ServerSettings::default()
    };
    let token_settings = TokenClientSettings {
        timeout: args.token_timeout,
        default_lifetime: args.token_default_lifetime,
    };
    let shutdown = CancellationToken::new();
    let proxy = Arc::new(Proxy::new(Arc::clone(&store), client, token_settings));
    let exporter = Exporter::new(Arc::clone(&store), proxy.metrics(), Some(reloader));
    let proxy = tokio::spawn(server::serve(
        proxy_listener,
        proxy,
        settings,
        shutdown.clone(),
        listener_tls.clone(),
    ));
    let admin = tokio::spawn(server::serve(
        admin_listener,
        Arc::new(Admin::new(store, exporter)),
        settings,
        shutdown.clone(),
        None,
    ));

    let on_hangup = || {
        reload.trigger(Trigger::Signal);
        if let Some(tls) = &listener_tls {
            match tls.reload() {
                Ok(()) => tracing::info!("TLS certificate reloaded"),
                Err(error) => {
                    tracing::error!(%error, "TLS certificate reload failed; keeping the current one")
                }
            }
        }
    };
    if let Err(error) = wait_for_stop_signal(on_hangup).await {
        tracing::error!(%error, "Cannot listen for signals");
        return ExitCode::FAILURE;
    }
    tracing::info!(
        grace_s = args.shutdown_grace.as_secs_f64(),
        "Shutting down: finishing in-flight requests"
    );
    shutdown.cancel();
    let _ = tokio::join!(proxy, admin);
    tracing::info!("Stopped");
    ExitCode::SUCCESS
}

async fn bind(addr: SocketAddr, name: &'static str) -> Option<TcpListener> {
    match TcpListener::bind(addr).await {
        Ok(listener) => {
            let local = listener.local_addr().unwrap_or(addr);
            tracing::info!(listener = name, listen = %local, "Listening");
            Some(listener)
        }
        Err(error) => {
            tracing::error!(listener = name, listen = %addr, %error, "Cannot bind");
            None
        }
    }
}

/// Returns on SIGTERM or SIGINT; calls `on_hangup` for each SIGHUP meanwhile.
async fn wait_for_stop_signal(on_hangup: impl Fn()) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut hangup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = terminate.recv() => return Ok(()),
            _ = interrupt.recv() => return Ok(()),
            _ = hangup.recv() => {
                tracing::info!("SIGHUP: reloading the config");
                on_hangup();
            }
        }
    }
}
