//! `credproxy serve`: the runtime, the listeners and what they serve, the reloader, the
//! signals.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use opentelemetry_sdk::trace::SdkTracer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::workers;
use super::ServeArgs;
use crate::admin::{Admin, Exporter};
use crate::auth::token_client::TokenClientSettings;
use crate::config::{self, LoadOptions};
use crate::live;
use crate::otel::Tracing;
use crate::proxy::{Inbound, LocalUpstream, Proxy, ProxyBody, UpstreamClient};
use crate::secret::MasterKeys;
use crate::server::{self, Connection, Handler, ListenerTls, ServerSettings};
use crate::store::Store;
use crate::telemetry;
use crate::transport::ClientSettings;
use crate::watch::{self, Reloader, Trigger};

pub(super) fn serve(args: ServeArgs) -> ExitCode {
    // Held to the end of `serve`: its drop writes out the last log lines.
    let _log = telemetry::init(args.log_format);
    let keys = match args.config.keys.master_keys() {
        Ok(keys) => keys,
        Err(error) => {
            tracing::error!(%error, "Cannot start: bad master key");
            return ExitCode::FAILURE;
        }
    };
    let options = LoadOptions {
        keys: Some(&keys),
        require_callers: args.requires_callers(),
    };
    let spec = match config::load(&args.config.path, options) {
        Ok(spec) => spec,
        Err(error) => {
            tracing::error!(problems = %error, "Cannot start: the config was rejected");
            return ExitCode::FAILURE;
        }
    };
    // Made here, outside the runtime: the exporter's blocking client runs its own.
    // An empty value is unset, as the OpenTelemetry variables are.
    let endpoint = args.otlp_endpoint.as_deref().filter(|e| !e.is_empty());
    let tracing = match endpoint.map(Tracing::start) {
        None => None,
        Some(Ok(tracing)) => Some(tracing),
        Some(Err(error)) => {
            tracing::error!(%error, "Cannot start: tracing");
            return ExitCode::FAILURE;
        }
    };
    // The main thread's runtime serves the admin listener, the reloader and the signals;
    // the proxy workers have runtimes of their own (`workers`).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "Cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let grace = args.shutdown_grace;
    let tracer = tracing.as_ref().map(|t| t.tracer().clone());
    let code = runtime.block_on(run_servers(args, live::build(spec, None), keys, tracer));
    // Whatever is still running (a reload on a blocking thread, say) must not hold the
    // exit past the grace period the operator gave.
    runtime.shutdown_timeout(grace);
    if let Some(tracing) = tracing {
        tracing.shutdown();
    }
    code
}

/// Raises the open-file limit to its hard maximum (each proxied connection needs up to two
/// descriptors, the client's and the upstream's) and returns the connection limit that
/// leaves room for the admin listener, config files and token endpoints.
fn connection_limit(wanted: usize) -> usize {
    use rustix::process::{getrlimit, setrlimit, Resource};
    const RESERVED: u64 = 256;
    let mut limit = getrlimit(Resource::Nofile);
    if let (Some(current), Some(maximum)) = (limit.current, limit.maximum) {
        if current < maximum {
            limit.current = Some(maximum);
            if setrlimit(Resource::Nofile, limit).is_err() {
                limit.current = Some(current);
            }
        }
    }
    let Some(files) = limit.current else {
        return wanted;
    };
    let fits = usize::try_from(files.saturating_sub(RESERVED) / 2).unwrap_or(usize::MAX);
    if wanted > fits {
        tracing::warn!(
            max_connections = wanted,
            open_file_limit = files,
            lowered_to = fits,
            "The open-file limit does not allow --max-connections; lowering it"
        );
        return fits.max(1);
    }
    wanted
}

async fn run_servers(
    args: ServeArgs,
    snapshot: live::Snapshot,
    keys: MasterKeys,
    tracer: Option<SdkTracer>,
) -> ExitCode {
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
    let worker_count = workers::count(args.workers);
    let (Some(clients), Some(listener_tls)) = (
        (0..worker_count)
            .map(|_| upstream_client(&args))
            .collect::<Option<Vec<_>>>(),
        listener_tls(&args),
    ) else {
        return ExitCode::FAILURE;
    };
    let (Some(proxy_listeners), Some(admin_listener)) = (
        bind_proxy(args.listen, worker_count),
        bind(args.admin_listen, "admin").await,
    ) else {
        return ExitCode::FAILURE;
    };

    let settings = ServerSettings {
        shutdown_grace: args.shutdown_grace,
        header_read_timeout: args.header_read_timeout,
        idle_timeout: args.idle_timeout,
        // The limit is shared out: each worker's listener holds its part.
        max_connections: connection_limit(args.max_connections).div_ceil(worker_count),
        ..ServerSettings::default()
    };
    let token_settings = TokenClientSettings {
        timeout: args.token_timeout,
        default_lifetime: args.token_default_lifetime,
    };
    let shutdown = CancellationToken::new();
    let mut clients = clients.into_iter();
    let Some(first_client) = clients.next() else {
        return ExitCode::FAILURE;
    };
    let proxy = Arc::new(
        Proxy::new(Arc::clone(&store), first_client, token_settings)
            .with_body_buffer(args.body_buffer_bytes)
            .with_upstream_per_caller(args.upstream_per_caller)
            .with_tracer(tracer),
    );
    let exporter = Exporter::new(
        Arc::clone(&store),
        proxy.metrics(),
        Some(Arc::clone(&reloader)),
    );
    let proxies = std::iter::once(Arc::clone(&proxy))
        .chain(clients.map(|client| Arc::new(proxy.with_pool(client))));
    let shared = workers::Shared {
        settings,
        shutdown: shutdown.clone(),
        tls: listener_tls.clone(),
    };
    let proxy_addr = proxy_listeners.first().and_then(|l| l.local_addr().ok());
    let proxy = match workers::start(proxy_listeners, proxies, &shared) {
        Ok(serving) => {
            let listen = proxy_addr.unwrap_or(args.listen);
            tracing::info!(listener = "proxy", %listen, workers = worker_count, "Listening");
            tokio::spawn(serving.run())
        }
        Err(error) => {
            tracing::error!(%error, "Cannot start the worker threads");
            shutdown.cancel();
            return ExitCode::FAILURE;
        }
    };
    let admin = tokio::spawn(server::serve(
        admin_listener,
        Arc::new(Admin::new(store, exporter, Some(reloader))),
        ServerSettings::admin(&settings),
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

/// The upstream client, or `None` (logged) when its TLS cannot be set up.
fn upstream_client(args: &ServeArgs) -> Option<UpstreamClient> {
    let settings = ClientSettings {
        connect_timeout: args.connect_timeout,
        response_timeout: args.upstream_timeout,
        ..ClientSettings::default()
    };
    UpstreamClient::new(settings)
        .map_err(|error| tracing::error!(%error, "Cannot set up TLS for upstreams"))
        .ok()
}

/// The proxy listener's TLS, if configured (`Some(None)`: plain), or `None` (logged) when
/// the certificate or key is unusable.
fn listener_tls(args: &ServeArgs) -> Option<Option<Arc<ListenerTls>>> {
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        return Some(None);
    };
    match ListenerTls::from_files(cert, key) {
        Ok(tls) => Some(Some(Arc::new(tls))),
        Err(error) => {
            tracing::error!(%error, "Cannot start: bad TLS certificate or key");
            None
        }
    }
}

/// The proxy listener, one socket per worker (logged as listening once they serve).
fn bind_proxy(addr: SocketAddr, workers: usize) -> Option<Vec<std::net::TcpListener>> {
    match workers::bind(addr, workers) {
        Ok(listeners) => Some(listeners),
        Err(error) => {
            tracing::error!(listener = "proxy", listen = %addr, %error, "Cannot bind");
            None
        }
    }
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

// === The listeners' handlers ===
// The wiring between `server` and what it serves: neither the proxy nor the admin
// endpoints know the server's types, nor the server theirs.

impl Handler for Proxy {
    type Body = ProxyBody;
    /// An HTTP/1 connection's own upstream connection.
    type ConnectionState = LocalUpstream;

    fn handle(
        &self,
        request: http::Request<hyper::body::Incoming>,
        connection: &Connection,
        upstream: &Arc<LocalUpstream>,
    ) -> impl std::future::Future<Output = http::Response<ProxyBody>> + Send {
        let inbound = Inbound {
            local_addr: connection.local_addr,
            framing_conflict: connection.framing_conflict(),
            // Taken only when it will be used: no reference count to bump otherwise.
            upstream: (connection.http1 && self.upstream_per_caller())
                .then(|| Arc::clone(upstream)),
        };
        Proxy::handle(self, request, inbound)
    }
}

impl Handler for Admin {
    type Body = http_body_util::Full<bytes::Bytes>;
    type ConnectionState = ();

    fn handle(
        &self,
        request: http::Request<hyper::body::Incoming>,
        _connection: &Connection,
        _state: &Arc<()>,
    ) -> impl std::future::Future<Output = http::Response<Self::Body>> + Send {
        std::future::ready(self.respond(&request))
    }
}
