//! Arguments and wiring: what each sub-command starts, nothing more. `serve`'s wiring is
//! in [`serve`].

mod serve;
mod workers;

use std::io::{IsTerminal as _, Read as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::{self, LoadOptions};
use crate::secret::{MasterKey, MasterKeys};
use crate::telemetry::LogFormat;
use crate::transport::BufferedBodies;

/// `0.1.0 (<git revision>)`: which build answered, for a bug report.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("CREDPROXY_GIT_REVISION"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "credproxy",
    version = VERSION,
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
    /// Print a completion script for `shell` (bash: `source <(credproxy completions bash)`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff: `credproxy man > credproxy.1; man -l credproxy.1`).
    Man,
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
    /// Time a connection gets to send a complete request head, counted from the accept
    /// (TLS handshake included); also the idle limit of a kept-alive HTTP/1 connection.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub header_read_timeout: Duration,
    /// An HTTP/2 connection with no open stream for this long is closed (GOAWAY).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    pub idle_timeout: Duration,
    /// Open client connections at most, per listener; the proxy listener's are shared out
    /// among the workers (a worker at its share leaves the clients that the kernel hands
    /// its socket in the backlog, as nginx's `reuseport` does).
    #[arg(long, default_value_t = 10_000)]
    pub max_connections: usize,
    /// Bytes of request bodies held in memory at once, over all requests: bodies read
    /// whole to be signed (SigV4) or sent again (the retry after a 401) wait for their
    /// share. Keep it well under the memory limit.
    #[arg(long, env = "CREDPROXY_BODY_BUFFER_BYTES", default_value_t = BufferedBodies::DEFAULT_BYTES)]
    pub body_buffer_bytes: u64,
    /// Give each caller's HTTP/1 connection an upstream connection of its own (to the
    /// first plain-http upstream it uses), driven in the caller's connection task: less
    /// CPU per request than the shared pool, one upstream connection per caller
    /// connection. For sidecars and other set-ups with few caller connections.
    #[arg(long, env = "CREDPROXY_UPSTREAM_PER_CALLER")]
    pub upstream_per_caller: bool,
    /// Export traces over OTLP/HTTP (protobuf) to this collector base URL (spans go to
    /// `{URL}/v1/traces`): one span per proxied request in the caller's W3C trace, with
    /// children for a token fetch and the upstream call. Off when unset.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// How long in-flight requests may finish after SIGTERM/SIGINT.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "25s")]
    pub shutdown_grace: Duration,
    /// Threads serving requests, each with its own runtime, its own listener on the
    /// proxy address (`SO_REUSEPORT` when there are several) and its own upstream pool;
    /// 0 = one per CPU this process may use (its affinity and cgroup quota).
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
        Some(Command::Completions { shell }) => completions(shell),
        Some(Command::Man) => man_page(),
        Some(Command::Serve(args)) => serve::serve(*args),
        None => serve::serve(cli.serve),
    }
}

fn completions(shell: clap_complete::Shell) -> ExitCode {
    use clap::CommandFactory as _;
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "credproxy", &mut std::io::stdout());
    ExitCode::SUCCESS
}

fn man_page() -> ExitCode {
    use clap::CommandFactory as _;
    let page = clap_mangen::Man::new(Cli::command());
    match page.render(&mut std::io::stdout()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Cannot write the man page: {error}");
            ExitCode::FAILURE
        }
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
            crate::files::read_text_capped(path, crate::files::MAX_SECRET_FILE_BYTES)
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
        Ok(spec) => {
            for source in &spec.sources {
                println!("{}\t{}\t{}", source.id, source.auth_type, source.upstream);
            }
            let count = spec.sources.len();
            eprintln!(
                "{}: OK, {count} source{}",
                args.path.display(),
                if count == 1 { "" } else { "s" }
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
