//! Live rotation: file events and SIGHUP become reload triggers; one task owns reloading.
//!
//! The watcher watches directories, not files: Kubernetes swaps a Secret volume by
//! renaming a `..data` symlink, editors rename a temp file over the original, and `cp`
//! writes in place; all of them show up as events in the directory. Any event there is a
//! "maybe changed"; the content hash over the config and its secret files decides.

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use notify::{EventKind, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::{self, LoadOptions};
use crate::secret::MasterKeys;
use crate::store::Store;

/// A burst of events is reloaded once it has been quiet this long…
const QUIET: Duration = Duration::from_millis(50);
/// …but never later than this after its first event, so steady edits still apply.
const MAX_DELAY: Duration = Duration::from_millis(250);

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Something changed in a watched directory (debounced).
    FileEvent,
    /// SIGHUP, or an explicit request (immediate).
    Signal,
}

/// How one reload attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// A new snapshot is in effect, with this generation.
    Applied(u64),
    /// The config and its secret files hash as before: nothing to do.
    Unchanged,
    /// The file could not be read or was rejected; the last good snapshot stays.
    Rejected,
}

/// Reload counters, for the metrics endpoint.
#[derive(Debug, Default)]
pub struct ReloadStats {
    pub applied: AtomicU64,
    pub unchanged: AtomicU64,
    pub rejected: AtomicU64,
    /// Unix seconds of the last applied reload (or of the initial load).
    pub last_success_unix: AtomicU64,
}

/// Loads the config file again and swaps it into the store when it changed and is valid.
#[derive(Debug)]
pub struct Reloader {
    store: Arc<Store>,
    path: PathBuf,
    keys: MasterKeys,
    /// Reject a file without `callers:` (the proxy listens beyond loopback).
    require_callers: bool,
    pub stats: ReloadStats,
}

impl Reloader {
    pub fn new(store: Arc<Store>, path: PathBuf, keys: MasterKeys, require_callers: bool) -> Self {
        let stats = ReloadStats::default();
        stats.last_success_unix.store(unix_now(), Ordering::Relaxed);
        Self {
            store,
            path,
            keys,
            require_callers,
            stats,
        }
    }

    /// Hash, skip if unchanged, load, then swap or keep. Blocking (file reads, parsing).
    pub fn reload(&self) -> ReloadOutcome {
        let current = self.store.load_full();
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(error) => {
                self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                if error.kind() == ErrorKind::NotFound {
                    tracing::warn!(path = %self.path.display(), "Config file is gone; keeping the last good config until it is back");
                } else {
                    tracing::error!(path = %self.path.display(), %error, "Cannot read the config file; keeping the last good config");
                }
                return ReloadOutcome::Rejected;
            }
        };
        if config::inputs_digest(&bytes, &current.meta.secret_files)
            == Some(current.meta.content_sha256)
        {
            self.stats.unchanged.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(path = %self.path.display(), "Config unchanged");
            return ReloadOutcome::Unchanged;
        }
        let options = LoadOptions {
            keys: Some(&self.keys),
            previous: Some(&current),
            require_callers: self.require_callers,
        };
        match config::load_bytes(&self.path, &bytes, options) {
            Ok(snapshot) => {
                let sources = snapshot.sources().len();
                let generation = self.store.replace(snapshot);
                self.stats.applied.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .last_success_unix
                    .store(unix_now(), Ordering::Relaxed);
                tracing::info!(generation, sources, path = %self.path.display(), "Config reloaded");
                ReloadOutcome::Applied(generation)
            }
            Err(error) => {
                self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                tracing::error!(problems = %error, "Config reload rejected; keeping the last good config");
                ReloadOutcome::Rejected
            }
        }
    }
}

/// Sends reload triggers to the reload task.
#[derive(Debug, Clone)]
pub struct ReloadHandle {
    tx: mpsc::UnboundedSender<Trigger>,
}

impl ReloadHandle {
    pub fn trigger(&self, trigger: Trigger) {
        let _ = self.tx.send(trigger);
    }
}

/// Starts the reload task and, with `watch`, the directory watcher feeding it. The task
/// runs until every handle (and the watcher) is gone.
pub fn spawn(reloader: Arc<Reloader>, watch: bool) -> notify::Result<ReloadHandle> {
    let (tx, rx) = mpsc::unbounded_channel();
    let watcher = if watch {
        let events = tx.clone();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
                // Reading the file (our own reload included) is not a change.
                Ok(event) if matches!(event.kind, EventKind::Access(_)) => {}
                Ok(_) => {
                    let _ = events.send(Trigger::FileEvent);
                }
                Err(error) => tracing::warn!(%error, "File watcher error"),
            })?;
        let dirs = watched_dirs(&reloader);
        for dir in &dirs {
            watcher.watch(dir, RecursiveMode::NonRecursive)?;
        }
        tracing::info!(dirs = ?dirs, "Watching for config changes");
        Some((watcher, dirs))
    } else {
        None
    };
    tokio::spawn(run(reloader, rx, watcher));
    Ok(ReloadHandle { tx })
}

async fn run(
    reloader: Arc<Reloader>,
    mut rx: mpsc::UnboundedReceiver<Trigger>,
    mut watcher: Option<(notify::RecommendedWatcher, BTreeSet<PathBuf>)>,
) {
    while let Some(first) = rx.recv().await {
        if first == Trigger::FileEvent && !debounce(&mut rx).await {
            return;
        }
        let task = Arc::clone(&reloader);
        let outcome = tokio::task::spawn_blocking(move || task.reload()).await;
        if let (Ok(ReloadOutcome::Applied(_)), Some((watcher, dirs))) = (outcome, watcher.as_mut())
        {
            // A reload may reference secret files in new directories.
            let wanted = watched_dirs(&reloader);
            for dir in wanted.difference(dirs) {
                if let Err(error) = watcher.watch(dir, RecursiveMode::NonRecursive) {
                    tracing::warn!(dir = %dir.display(), %error, "Cannot watch a secret file's directory");
                }
            }
            for dir in dirs.difference(&wanted) {
                let _ = watcher.unwatch(dir);
            }
            *dirs = wanted;
        }
    }
}

/// Waits until the burst is quiet for [`QUIET`], or [`MAX_DELAY`] after its first event.
/// A SIGHUP during the wait ends it at once. False when the channel closed.
async fn debounce(rx: &mut mpsc::UnboundedReceiver<Trigger>) -> bool {
    let deadline = Instant::now() + MAX_DELAY;
    loop {
        let quiet_until = (Instant::now() + QUIET).min(deadline);
        tokio::select! {
            next = rx.recv() => match next {
                None => return false,
                Some(Trigger::Signal) => return true,
                Some(Trigger::FileEvent) if Instant::now() >= deadline => return true,
                Some(Trigger::FileEvent) => {}
            },
            () = tokio::time::sleep_until(quiet_until) => return true,
        }
    }
}

/// The directories of the config file and of every secret file it references.
fn watched_dirs(reloader: &Reloader) -> BTreeSet<PathBuf> {
    let snapshot = reloader.store.load();
    std::iter::once(reloader.path.as_path())
        .chain(snapshot.meta.secret_files.iter().map(PathBuf::as_path))
        .map(parent_dir)
        .collect()
}

fn parent_dir(file: &Path) -> PathBuf {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
