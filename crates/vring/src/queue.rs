//! Device side of the split virtqueue (virtio 1.2 §2.7): taking available chains, returning used
//! elements, and notification suppression in both directions (§2.7.7, §2.7.10).
//!
//! Threat model: the avail ring and descriptor table are written by the guest concurrently with
//! us. Ring addresses were validated once (alignment, inside one region) in `new`; every index the
//! guest supplies is bounded before use; a misbehaving driver yields a `QueueError`, never a panic.

use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;

use crate::desc::{walk_chain, DescChain, DESC_SIZE};
use crate::error::QueueError;
use crate::memory::{ByteValued, GuestMemory};
use crate::state::{QueueState, MAX_QUEUE_SIZE};

/// used.flags: the device asks the driver not to kick (§2.7.10).
pub const VRING_USED_F_NO_NOTIFY: u16 = 1;
/// avail.flags: the driver asks the device not to interrupt (§2.7.7).
pub const VRING_AVAIL_F_NO_INTERRUPT: u16 = 1;

/// Whether an event index `event_idx` was crossed by moving from `old` to `new` (§2.7.7.2).
pub fn vring_need_event(event_idx: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(event_idx).wrapping_sub(1) < new.wrapping_sub(old)
}

/// One split virtqueue, device side.
#[derive(Debug)]
pub struct SplitQueue {
    mem: Arc<GuestMemory>,
    state: QueueState,
    /// used.idx at the last notification decision, for EVENT_IDX; None until the first one
    /// (then the device always notifies, like Linux vhost's `signalled_used_valid`).
    signalled_used: Option<u16>,
}

impl SplitQueue {
    /// Validates `state` against `mem` (the restore half of the migration seam): size a power of
    /// two in 1..=32768; desc table 16-byte aligned, avail ring 2, used ring 4 (§2.7 table);
    /// each ring entirely inside one guest memory region.
    pub fn new(mem: Arc<GuestMemory>, state: QueueState) -> Result<SplitQueue, QueueError> {
        let size = state.size;
        if size == 0 || size > MAX_QUEUE_SIZE || !size.is_power_of_two() {
            return Err(QueueError::InvalidSize { size });
        }
        let n = u64::from(size);
        let rings = [
            ("desc", state.desc_addr, 16, DESC_SIZE * n),
            ("avail", state.avail_addr, 2, 6 + 2 * n),
            ("used", state.used_addr, 4, 6 + 8 * n),
        ];
        for (ring, addr, align, len) in rings {
            if addr % align != 0 {
                return Err(QueueError::MisalignedRing { ring, addr, align });
            }
            if mem.translate(addr, len as usize).is_err() {
                return Err(QueueError::RingOutOfMemory { ring, addr, len });
            }
        }
        let used_len = 6 + 8 * n;
        if let Some(log_addr) = state.used_log_addr {
            log_addr.checked_add(used_len).ok_or(QueueError::UsedLogOverflow { log_addr, len: used_len })?;
        }
        Ok(SplitQueue { mem, state, signalled_used: None })
    }

    /// The current value of the queue (GET_VRING_BASE, migration).
    pub fn state(&self) -> QueueState {
        self.state
    }

    /// The guest memory this queue's buffers live in.
    pub fn memory(&self) -> &GuestMemory {
        &self.mem
    }

    /// The shared handle of the guest memory.
    pub fn memory_arc(&self) -> &Arc<GuestMemory> {
        &self.mem
    }

    fn size(&self) -> u16 {
        self.state.size
    }

    fn read_u16(&self, ring: &'static str, gpa: u64) -> Result<u16, QueueError> {
        let v: u16 = self.mem.read_obj(gpa).map_err(|source| QueueError::RingAccess { ring, source })?;
        Ok(u16::from_le(v))
    }

    /// Stores `v` at byte `offset` of the used ring, logged at the used ring's log address.
    fn write_used<T: ByteValued>(&self, offset: u64, v: T) -> Result<(), QueueError> {
        let gpa = self.state.used_addr + offset;
        // Overflow-checked in `new`.
        let log_gpa = self.state.used_log_addr.map_or(gpa, |log_addr| log_addr + offset);
        self.mem.write_obj_logged_at(gpa, v, log_gpa).map_err(|source| QueueError::RingAccess { ring: "used", source })
    }

    fn avail_flags(&self) -> Result<u16, QueueError> {
        self.read_u16("avail", self.state.avail_addr)
    }

    fn avail_idx(&self) -> Result<u16, QueueError> {
        self.read_u16("avail", self.state.avail_addr + 2)
    }

    /// avail.idx - next_avail; more than the queue size means a hostile driver.
    pub fn avail_pending(&self) -> Result<u16, QueueError> {
        let avail_idx = self.avail_idx()?;
        let pending = avail_idx.wrapping_sub(self.state.next_avail);
        if pending > self.size() {
            return Err(QueueError::AvailIdxTooFarAhead { avail_idx, next_avail: self.state.next_avail, size: self.size() });
        }
        Ok(pending)
    }

    /// The next available chain, or None. A malformed chain is an error (the device is broken).
    pub fn pop_chain(&mut self) -> Result<Option<DescChain>, QueueError> {
        if self.avail_pending()? == 0 {
            return Ok(None);
        }
        // Pairs with the driver's write barrier before its avail.idx store: the ring entry and the
        // descriptors it names are read only after we saw the index that published them.
        fence(Ordering::Acquire);
        let slot = u64::from(self.state.next_avail % self.size());
        let head = self.read_u16("avail", self.state.avail_addr + 4 + 2 * slot)?;
        let chain = walk_chain(&self.mem, self.state.desc_addr, self.size(), head)?;
        self.state.next_avail = self.state.next_avail.wrapping_add(1);
        Ok(Some(chain))
    }

    /// Puts back the last `n` popped chains (they will be popped again, re-read from the guest).
    pub fn undo_pop(&mut self, n: u16) {
        self.state.next_avail = self.state.next_avail.wrapping_sub(n);
    }

    /// Writes used element {head, len} at next_used and advances next_used (not yet visible to
    /// the driver: see `publish_used`).
    pub fn add_used(&mut self, head: u16, len: u32) -> Result<(), QueueError> {
        if head >= self.size() {
            return Err(QueueError::UsedHeadOutOfRange { head, size: self.size() });
        }
        let slot = u64::from(self.state.next_used % self.size());
        // struct virtq_used_elem { le32 id; le32 len; } as one little-endian u64.
        let elem = (u64::from(len) << 32 | u64::from(head)).to_le();
        self.write_used(4 + 8 * slot, elem)?;
        self.state.next_used = self.state.next_used.wrapping_add(1);
        Ok(())
    }

    /// Stores used.idx = next_used, making the added elements visible to the driver.
    pub fn publish_used(&mut self) -> Result<(), QueueError> {
        // The driver reads used elements after it sees used.idx: order our element (and buffer)
        // writes before the index store.
        fence(Ordering::Release);
        self.write_used(2, self.state.next_used.to_le())
    }

    /// Whether the driver wants an interrupt for what was published since the last decision:
    /// with EVENT_IDX `vring_need_event(used_event, new, old)` (§2.7.7.2), otherwise
    /// `!(avail.flags & VRING_AVAIL_F_NO_INTERRUPT)` (§2.7.7.1).
    pub fn needs_notification(&mut self) -> Result<bool, QueueError> {
        // Our used.idx store must be visible before we read the driver's suppression state, or we
        // could miss a used_event update made after the driver checked used.idx (lost interrupt).
        fence(Ordering::SeqCst);
        if !self.state.event_idx {
            return Ok(self.avail_flags()? & VRING_AVAIL_F_NO_INTERRUPT == 0);
        }
        let new = self.state.next_used;
        let old = self.signalled_used.replace(new);
        let used_event = self.read_u16("avail", self.used_event_addr())?;
        Ok(match old {
            None => true,
            Some(old) => vring_need_event(used_event, new, old),
        })
    }

    /// Asks the driver for kicks (clears VRING_USED_F_NO_NOTIFY, or with EVENT_IDX writes
    /// avail_event = next_avail), then returns true if chains became available meanwhile: the
    /// caller must then process them instead of sleeping.
    pub fn enable_notification(&mut self) -> Result<bool, QueueError> {
        if self.state.event_idx {
            self.write_used(self.avail_event_offset(), self.state.next_avail.to_le())?;
        } else {
            self.write_used(0, 0u16)?;
        }
        // The driver checks our flag/avail_event after storing avail.idx; we check avail.idx after
        // storing the flag/avail_event. Without a full fence both could miss each other (lost kick).
        fence(Ordering::SeqCst);
        Ok(self.avail_pending()? != 0)
    }

    /// Tells the driver not to kick (sets VRING_USED_F_NO_NOTIFY; with EVENT_IDX there is nothing
    /// to do: avail_event simply stays behind).
    pub fn disable_notification(&mut self) -> Result<(), QueueError> {
        if self.state.event_idx {
            return Ok(());
        }
        self.write_used(0, VRING_USED_F_NO_NOTIFY.to_le())
    }

    /// avail ring's trailing used_event field.
    fn used_event_addr(&self) -> u64 {
        self.state.avail_addr + 4 + 2 * u64::from(self.size())
    }

    /// Offset of the used ring's trailing avail_event field.
    fn avail_event_offset(&self) -> u64 {
        4 + 8 * u64::from(self.size())
    }
}
