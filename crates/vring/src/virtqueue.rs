//! A virtqueue of either layout, as the data path uses it: split (virtio 1.2 §2.7) or packed
//! (§2.8, VIRTIO_F_RING_PACKED), chosen by the negotiated features (`QueueState::packed`). Both
//! hand out `DescChain`s and take them back used, so the data path does not know which it serves.

use std::sync::Arc;

use crate::desc::DescChain;
use crate::error::QueueError;
use crate::memory::GuestMemory;
use crate::packed::PackedQueue;
use crate::queue::SplitQueue;
use crate::state::QueueState;

#[derive(Debug)]
pub enum Virtqueue {
    Split(SplitQueue),
    Packed(PackedQueue),
}

impl Virtqueue {
    /// Validates `state` against `mem` (see `SplitQueue::new`, `PackedQueue::new`).
    pub fn new(mem: Arc<GuestMemory>, state: QueueState) -> Result<Virtqueue, QueueError> {
        Ok(if state.packed { Virtqueue::Packed(PackedQueue::new(mem, state)?) } else { Virtqueue::Split(SplitQueue::new(mem, state)?) })
    }

    /// The current value of the queue (GET_VRING_BASE, migration).
    pub fn state(&self) -> QueueState {
        match self {
            Virtqueue::Split(q) => q.state(),
            Virtqueue::Packed(q) => q.state(),
        }
    }

    /// The guest memory this queue's buffers live in.
    pub fn memory(&self) -> &GuestMemory {
        match self {
            Virtqueue::Split(q) => q.memory(),
            Virtqueue::Packed(q) => q.memory(),
        }
    }

    /// The shared handle of the guest memory.
    pub fn memory_arc(&self) -> &Arc<GuestMemory> {
        match self {
            Virtqueue::Split(q) => q.memory_arc(),
            Virtqueue::Packed(q) => q.memory_arc(),
        }
    }

    /// The next available chain, or None. A malformed chain is an error (the device is broken).
    pub fn pop_chain(&mut self) -> Result<Option<DescChain>, QueueError> {
        let mut chain = DescChain::default();
        Ok(self.pop_chain_into(&mut chain)?.then_some(chain))
    }

    /// The next available chain into `chain` (its storage reused); false if none is. A malformed
    /// chain is an error (the device is broken).
    pub fn pop_chain_into(&mut self, chain: &mut DescChain) -> Result<bool, QueueError> {
        match self {
            Virtqueue::Split(q) => q.pop_chain_into(chain),
            Virtqueue::Packed(q) => q.pop_chain_into(chain),
        }
    }

    /// Puts back every chain popped since `popped_at` (a chain's `popped_at`): they will be popped
    /// again, re-read from the guest.
    pub fn rewind_to(&mut self, popped_at: u16) {
        match self {
            Virtqueue::Split(q) => q.rewind_to(popped_at),
            Virtqueue::Packed(q) => q.rewind_to(popped_at),
        }
    }

    /// Returns `chain` used, with `len` bytes written into it. Split: visible to the driver at
    /// `publish_used`; packed: at once.
    pub fn add_used(&mut self, chain: &DescChain, len: u32) -> Result<(), QueueError> {
        match self {
            Virtqueue::Split(q) => q.add_used(chain.head, len),
            Virtqueue::Packed(q) => {
                q.add_used(chain.head, chain.slots, len);
                Ok(())
            }
        }
    }

    /// Makes the used elements added so far visible to the driver.
    pub fn publish_used(&mut self) {
        match self {
            Virtqueue::Split(q) => q.publish_used(),
            // Each used descriptor was published by its flags.
            Virtqueue::Packed(_) => {}
        }
    }

    /// Whether the driver wants an interrupt for what was published since the last decision.
    pub fn needs_notification(&mut self) -> bool {
        match self {
            Virtqueue::Split(q) => q.needs_notification(),
            Virtqueue::Packed(q) => q.needs_notification(),
        }
    }

    /// Asks the driver for kicks; true if chains became available meanwhile (process them
    /// instead of sleeping).
    pub fn enable_notification(&mut self) -> Result<bool, QueueError> {
        match self {
            Virtqueue::Split(q) => q.enable_notification(),
            Virtqueue::Packed(q) => q.enable_notification(),
        }
    }

    /// Tells the driver not to kick.
    pub fn disable_notification(&mut self) {
        match self {
            Virtqueue::Split(q) => q.disable_notification(),
            Virtqueue::Packed(q) => q.disable_notification(),
        }
    }
}
