//! Live rotation: file events and SIGHUP become reload triggers; one task owns reloading.
//!
//! The watcher watches directories, not files: Kubernetes swaps a Secret volume by
//! renaming a `..data` symlink, editors rename a temp file over the original, and `cp`
//! writes in place; all of them show up as events in the directory. Any event there is a
//! "maybe changed"; the content hash over the config and its secret files decides.
//!
//! A watch follows a directory's inode, so a directory that is moved away and replaced
//! (`mv dir dir.old; mkdir dir`) would take the watch with it. Each directory's parent is
//! watched too, for its appearance, and before every reload the watches are re-armed on
//! whatever directory now has the watched name.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use notify::{EventKind, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::auth::lifetime::unix_now;
use crate::config::{self, LoadOptions};
use crate::files::{self, MAX_CONFIG_BYTES};
use crate::live;
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

/// Reload counters, for the metrics endpoint, and the latest attempt, for the status page.
#[derive(Debug, Default)]
pub struct ReloadStats {
    pub applied: AtomicU64,
    pub unchanged: AtomicU64,
    pub rejected: AtomicU64,
    /// Unix seconds of the last applied reload (or of the initial load).
    pub last_success_unix: AtomicU64,
    /// Written once per attempt, read by the admin listener: never on the request path.
    last: Mutex<Option<LastReload>>,
}

/// The latest reload attempt.
#[derive(Debug, Clone)]
pub struct LastReload {
    pub at_unix: u64,
    pub outcome: ReloadOutcome,
    /// Why it was rejected: the loader's problems, which name fields and files, never a
    /// value.
    pub problems: Option<String>,
}

impl ReloadStats {
    pub fn last(&self) -> Option<LastReload> {
        self.last.lock().ok()?.clone()
    }

    pub(crate) fn record(&self, outcome: ReloadOutcome, problems: Option<String>) {
        let counter = match outcome {
            ReloadOutcome::Applied(_) => &self.applied,
            ReloadOutcome::Unchanged => &self.unchanged,
            ReloadOutcome::Rejected => &self.rejected,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let at_unix = unix_now();
        if let ReloadOutcome::Applied(_) = outcome {
            self.last_success_unix.store(at_unix, Ordering::Relaxed);
        }
        if let Ok(mut last) = self.last.lock() {
            *last = Some(LastReload {
                at_unix,
                outcome,
                problems,
            });
        }
    }
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

    /// Hash, skip if unchanged, load, then swap or keep. Blocking (file reads, parsing),
    /// but never for long: no file read can block (see [`crate::files`]).
    pub fn reload(&self) -> ReloadOutcome {
        let current = self.store.load_full();
        let bytes = match files::read_capped(&self.path, MAX_CONFIG_BYTES) {
            Ok(bytes) => bytes,
            Err(error) => {
                if error.is_not_found() {
                    tracing::warn!(path = %self.path.display(), "Config file is gone; keeping the last good config until it is back");
                } else {
                    tracing::error!(path = %self.path.display(), %error, "Cannot read the config file; keeping the last good config");
                }
                self.stats
                    .record(ReloadOutcome::Rejected, Some(error.to_string()));
                return ReloadOutcome::Rejected;
            }
        };
        if config::inputs_digest(&bytes, &current.meta.secret_files)
            == Some(current.meta.content_sha256)
        {
            tracing::debug!(path = %self.path.display(), "Config unchanged");
            self.stats.record(ReloadOutcome::Unchanged, None);
            return ReloadOutcome::Unchanged;
        }
        let options = LoadOptions {
            keys: Some(&self.keys),
            require_callers: self.require_callers,
        };
        match config::load_bytes(&self.path, &bytes, options) {
            Ok(spec) => {
                let snapshot = live::build(spec, Some(&current));
                let sources = snapshot.sources().len();
                let generation = self.store.replace(snapshot);
                tracing::info!(generation, sources, path = %self.path.display(), "Config reloaded");
                self.stats.record(ReloadOutcome::Applied(generation), None);
                ReloadOutcome::Applied(generation)
            }
            Err(error) => {
                tracing::error!(problems = %error, "Config reload rejected; keeping the last good config");
                self.stats
                    .record(ReloadOutcome::Rejected, Some(error.to_string()));
                ReloadOutcome::Rejected
            }
        }
    }

    /// The directories of the config file and of every file it references, absolute.
    fn wanted_dirs(&self) -> BTreeSet<PathBuf> {
        let snapshot = self.store.load();
        std::iter::once(self.path.as_path())
            .chain(snapshot.meta.secret_files.iter().map(PathBuf::as_path))
            .map(parent_dir)
            .collect()
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
    let watches = if watch {
        let mut watches = Watches::new(tx.clone())?;
        watches.rearm(&reloader.wanted_dirs())?;
        tracing::info!(dirs = ?watches.dirs.keys().collect::<Vec<_>>(), "Watching for config changes");
        Some(watches)
    } else {
        None
    };
    tokio::spawn(run(reloader, rx, watches));
    Ok(ReloadHandle { tx })
}

async fn run(
    reloader: Arc<Reloader>,
    mut rx: mpsc::UnboundedReceiver<Trigger>,
    mut watches: Option<Watches>,
) {
    while let Some(first) = rx.recv().await {
        if first == Trigger::FileEvent && !debounce(&mut rx).await {
            return;
        }
        let task = Arc::clone(&reloader);
        let _ = tokio::task::spawn_blocking(move || task.reload()).await;
        // After every attempt: a directory may have been replaced, and a new config may
        // reference files in new directories.
        if let Some(watches) = watches.as_mut() {
            if let Err(error) = watches.rearm(&reloader.wanted_dirs()) {
                tracing::warn!(%error, "Cannot re-arm the config watcher");
            }
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

/// The watched directories, the inode each watch follows, and their parents.
struct Watches {
    watcher: notify::RecommendedWatcher,
    /// Directory → the (device, inode) its watch is on; `None` while it does not exist.
    dirs: BTreeMap<PathBuf, Option<(u64, u64)>>,
    parents: BTreeSet<PathBuf>,
    /// What the event callback lets through from the parents: the watched names.
    wanted: Arc<ArcSwap<BTreeSet<PathBuf>>>,
}

impl Watches {
    fn new(tx: mpsc::UnboundedSender<Trigger>) -> notify::Result<Self> {
        let wanted: Arc<ArcSwap<BTreeSet<PathBuf>>> = Arc::default();
        let filter = Arc::clone(&wanted);
        let watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
                // Reading the file (our own reload included) is not a change.
                Ok(event) if matches!(event.kind, EventKind::Access(_)) => {}
                Ok(event) => {
                    let wanted = filter.load();
                    // In a watched directory, or a watched directory itself (in a parent).
                    let relevant = event.paths.iter().any(|path| {
                        wanted.contains(path)
                            || path.parent().is_some_and(|dir| wanted.contains(dir))
                    });
                    if relevant || event.paths.is_empty() {
                        let _ = tx.send(Trigger::FileEvent);
                    }
                }
                Err(error) => tracing::warn!(%error, "File watcher error"),
            })?;
        Ok(Self {
            watcher,
            dirs: BTreeMap::new(),
            parents: BTreeSet::new(),
            wanted,
        })
    }

    /// Watches exactly `wanted` (and their parents), each on the directory that has its
    /// name now.
    fn rearm(&mut self, wanted: &BTreeSet<PathBuf>) -> notify::Result<()> {
        self.wanted.store(Arc::new(wanted.clone()));
        let gone: Vec<PathBuf> = self
            .dirs
            .keys()
            .filter(|dir| !wanted.contains(*dir))
            .cloned()
            .collect();
        for dir in gone {
            if self.dirs.remove(&dir).flatten().is_some() {
                let _ = self.watcher.unwatch(&dir);
            }
        }
        for dir in wanted {
            let now = identity(dir);
            let watched = self.dirs.get(dir).copied().flatten();
            if now == watched && self.dirs.contains_key(dir) {
                continue;
            }
            if watched.is_some() {
                let _ = self.watcher.unwatch(dir);
            }
            if now.is_some() {
                self.watcher.watch(dir, RecursiveMode::NonRecursive)?;
                if watched.is_some() {
                    tracing::info!(dir = %dir.display(), "Watched directory was replaced; watching the new one");
                }
            }
            self.dirs.insert(dir.clone(), now);
        }
        let parents: BTreeSet<PathBuf> = wanted
            .iter()
            .filter_map(|dir| dir.parent())
            .map(Path::to_path_buf)
            .filter(|parent| !wanted.contains(parent))
            .collect();
        for parent in self.parents.difference(&parents) {
            let _ = self.watcher.unwatch(parent);
        }
        for parent in parents.difference(&self.parents) {
            if let Err(error) = self.watcher.watch(parent, RecursiveMode::NonRecursive) {
                tracing::debug!(dir = %parent.display(), %error, "Cannot watch a config directory's parent");
            }
        }
        self.parents = parents;
        Ok(())
    }
}

fn identity(dir: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(dir)
        .ok()
        .filter(std::fs::Metadata::is_dir)
        .map(|meta| (meta.dev(), meta.ino()))
}

/// A file's directory, absolute (not resolving symlinks: a `..data` swap must stay visible
/// under the name it was configured by).
fn parent_dir(file: &Path) -> PathBuf {
    let dir = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How long `debounce` waits for `events`, sent at these offsets from its start.
    async fn waited(events: &[(u64, Trigger)]) -> Duration {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let start = Instant::now();
        for &(at, trigger) in events {
            let tx = tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep_until(start + Duration::from_millis(at)).await;
                let _ = tx.send(trigger);
            });
        }
        assert!(debounce(&mut rx).await, "the channel is open");
        start.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_reloads_once_it_is_quiet() {
        // The first event started the burst (at 0); two more follow within the window.
        let events = [(20, Trigger::FileEvent), (60, Trigger::FileEvent)];
        assert_eq!(waited(&events).await, Duration::from_millis(110));
        assert_eq!(waited(&[]).await, QUIET);
    }

    #[tokio::test(start_paused = true)]
    async fn steady_edits_still_reload_within_the_cap() {
        let events: Vec<(u64, Trigger)> = (1..40).map(|i| (i * 30, Trigger::FileEvent)).collect();
        assert_eq!(waited(&events).await, MAX_DELAY);
    }

    #[tokio::test(start_paused = true)]
    async fn a_signal_ends_the_wait_at_once() {
        let events = [(10, Trigger::FileEvent), (30, Trigger::Signal)];
        assert_eq!(waited(&events).await, Duration::from_millis(30));
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_channel_ends_the_task() {
        let (tx, mut rx) = mpsc::unbounded_channel::<Trigger>();
        drop(tx);
        assert!(!debounce(&mut rx).await);
    }
}
