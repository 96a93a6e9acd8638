//! Thread per core for the proxy listener: N threads, each with a single-threaded runtime,
//! its own `SO_REUSEPORT` listener on the proxy address and its own upstream pool, so that
//! a request is accepted, proxied and answered on one thread with no cross-thread wake-up
//! (nginx's and Pingora's shape). The kernel spreads new connections over the listeners.
//!
//! Every worker gets a thread of its own here. The main thread keeps the admin listener,
//! the reloader and the signals (Envoy's main thread), so a status page rendered over
//! 100,000 sources or a `/config` of them never holds up a proxied request, and a worker
//! saturated by traffic never makes a liveness probe wait.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::proxy::Proxy;
use crate::server::{self, ListenerTls, ServerSettings};

/// Connections waiting to be accepted, per listener: room for a burst of new clients
/// while the workers are busy (std and tokio bind with 128).
const BACKLOG: i32 = 1024;

/// How many serving threads `--workers` asks for: 0 is one per CPU this process may use
/// (its affinity and cgroup quota).
pub fn count(workers: usize) -> usize {
    match workers {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    }
}

/// Binds `workers` listeners on `addr`. With more than one, each has `SO_REUSEPORT` and
/// the later ones bind the port the first got (so `:0` works). With one, the option stays
/// off: a second credproxy started on the same port by mistake then fails with "address
/// in use" instead of silently taking half the connections.
pub fn bind(addr: SocketAddr, workers: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    let mut listeners: Vec<std::net::TcpListener> = Vec::with_capacity(workers);
    for _ in 0..workers {
        let at = match listeners.first() {
            Some(first) => first.local_addr()?,
            None => addr,
        };
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(at),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        socket.set_reuse_address(true)?;
        if workers > 1 {
            socket.set_reuse_port(true)?;
        }
        socket.set_nonblocking(true)?;
        socket.bind(&at.into())?;
        socket.listen(BACKLOG)?;
        listeners.push(socket.into());
    }
    Ok(listeners)
}

/// What every worker shares.
#[derive(Clone)]
pub struct Shared {
    pub settings: ServerSettings,
    pub shutdown: CancellationToken,
    pub tls: Option<Arc<ListenerTls>>,
}

/// The proxy listener's workers, started on their threads.
pub struct Serving {
    workers: Vec<(JoinHandle<()>, oneshot::Receiver<()>)>,
}

/// Starts a thread for every listener, each serving it with its proxy (`proxies` pairs up
/// with `listeners`). On an error the threads already started stop when `shared.shutdown`
/// is cancelled.
pub fn start(
    listeners: Vec<std::net::TcpListener>,
    proxies: impl IntoIterator<Item = Arc<Proxy>>,
    shared: &Shared,
) -> std::io::Result<Serving> {
    let workers = listeners
        .into_iter()
        .zip(proxies)
        .enumerate()
        .map(|(index, (listener, proxy))| spawn(index, listener, proxy, shared.clone()))
        .collect::<std::io::Result<Vec<_>>>()?;
    if workers.is_empty() {
        return Err(std::io::Error::other("no proxy listener"));
    }
    Ok(Serving { workers })
}

impl Serving {
    /// Waits until every worker has stopped serving: after shutdown, once its in-flight
    /// requests finished within the grace period.
    pub async fn run(self) {
        for (thread, stopped) in self.workers {
            let _ = stopped.await;
            // It has sent its last message: the join returns at once.
            let _ = thread.join();
        }
    }
}

/// Serves `listener` on the current runtime until shutdown, then lets in-flight requests
/// finish within the grace period.
async fn serve(listener: std::net::TcpListener, proxy: Arc<Proxy>, shared: Shared) {
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(error) => {
            // Only when the runtime has no I/O driver, which ours always have.
            tracing::error!(%error, "Cannot register the proxy listener");
            return;
        }
    };
    server::serve(
        listener,
        proxy,
        shared.settings,
        shared.shutdown,
        shared.tls,
    )
    .await;
}

/// Runs [`serve`] on a new thread with a single-threaded runtime of its own; the receiver
/// completes when that thread has stopped serving.
fn spawn(
    index: usize,
    listener: std::net::TcpListener,
    proxy: Arc<Proxy>,
    shared: Shared,
) -> std::io::Result<(JoinHandle<()>, oneshot::Receiver<()>)> {
    let (done, stopped) = oneshot::channel();
    let grace = shared.settings.shutdown_grace;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let thread = std::thread::Builder::new()
        // Within the 15 bytes Linux keeps of a thread's name, so `top -H` tells them apart.
        .name(format!("proxy-worker-{index}"))
        .spawn(move || {
            runtime.block_on(serve(listener, proxy, shared));
            // What this thread's requests started (a token fetch, say) ends with it.
            runtime.shutdown_timeout(grace);
            let _ = done.send(());
        })?;
    Ok((thread, stopped))
}
