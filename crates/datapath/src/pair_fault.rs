//! A queue pair's fault latch. On a TAP the pair's worker serves both rings and stops both on a
//! fault. In switch mode the RX ring is served by the switch port (on whichever thread forwards a
//! frame to it) and the TX ring by the worker, so a hostile guest can break the two on different
//! threads: the latch makes the pair's first fault its only report, and tells the worker that the
//! RX ring broke so that it stops serving TX too (DESIGN.md: a guest fault marks the device broken).

use std::sync::atomic::{AtomicBool, Ordering};

/// Tripped by the first fault on either ring of one started queue pair; a new one per start.
#[derive(Debug, Default)]
pub struct PairFault {
    tripped: AtomicBool,
}

impl PairFault {
    /// Records a fault; true only for the pair's first one (the one to report).
    pub fn trip(&self) -> bool {
        !self.tripped.swap(true, Ordering::AcqRel)
    }

    /// Whether either ring of the pair broke since the pair was started.
    pub fn is_tripped(&self) -> bool {
        self.tripped.load(Ordering::Acquire)
    }
}
