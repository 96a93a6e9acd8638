//! The current snapshot, swapped atomically.
//!
//! Readers `load()` without a lock; a request keeps the `Arc<Source>` it routed to, so it
//! finishes with the config it started with even if a reload swaps the snapshot meanwhile.

use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};

use crate::live::Snapshot;

#[derive(Debug)]
pub struct Store {
    current: ArcSwap<Snapshot>,
}

impl Store {
    /// A store holding `snapshot` as generation 1.
    pub fn new(snapshot: Snapshot) -> Self {
        Self {
            current: ArcSwap::from_pointee(snapshot.with_generation(1)),
        }
    }

    /// The current snapshot, for a short look on the hot path (no `.await` while held).
    pub fn load(&self) -> Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// The current snapshot, to keep across awaits.
    pub fn load_full(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Swaps in `next` as the following generation and returns that generation.
    pub fn replace(&self, next: Snapshot) -> u64 {
        let generation = self.current.load().meta.generation + 1;
        self.current
            .store(Arc::new(next.with_generation(generation)));
        generation
    }
}
