//! Device side of the split virtqueue (virtio 1.2 §2.7): taking available chains, returning used
//! elements, and notification suppression in both directions (§2.7.7, §2.7.10).
//!
//! Threat model: the avail ring and descriptor table are written by the guest concurrently with
//! us. Ring addresses were validated once (alignment, inside one region) in `new`; every index the
//! guest supplies is bounded before use; a misbehaving driver yields a `QueueError`, never a panic.

use std::ptr;
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;

use crate::desc::{walk_chain, DescChain, DescTable, Descriptor, DESC_SIZE, VIRTQ_DESC_F_WRITE};
use crate::error::QueueError;
use crate::memory::GuestMemory;
use crate::state::{QueueState, MAX_QUEUE_SIZE};

/// used.flags: the device asks the driver not to kick (§2.7.10).
pub const VRING_USED_F_NO_NOTIFY: u16 = 1;
/// avail.flags: the driver asks the device not to interrupt (§2.7.7).
pub const VRING_AVAIL_F_NO_INTERRUPT: u16 = 1;

/// `pop_chain_into` starts fetching the chains behind the one it pops into the cache: the
/// descriptor of the chain this many places ahead...
pub(crate) const PREFETCH_DESC_AHEAD: u16 = 8;
/// ...and the first line of the first buffer of the chain this many places ahead (its descriptor,
/// prefetched earlier, has arrived by then).
pub(crate) const PREFETCH_BUF_AHEAD: u16 = 4;

/// Whether an event index `event_idx` was crossed by moving from `old` to `new` (§2.7.7.2).
pub fn vring_need_event(event_idx: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(event_idx).wrapping_sub(1) < new.wrapping_sub(old)
}

/// One split virtqueue, device side.
///
/// The three rings are translated to host addresses once, in `new`: every ring access on the hot
/// path is then a plain volatile load or store at a fixed offset, with no region lookup. That is
/// sound because each ring was checked to lie inside ONE region, and `mem` (which this queue
/// holds) keeps that region mapped for the queue's lifetime; a memory-table change stops and
/// rebuilds the queue.
#[derive(Debug)]
pub struct SplitQueue {
    mem: Arc<GuestMemory>,
    state: QueueState,
    /// used.idx at the last notification decision, for EVENT_IDX; None until the first one
    /// (then the device always notifies, like Linux vhost's `signalled_used_valid`).
    signalled_used: Option<u16>,
    /// Host address of the descriptor table (16-byte aligned, `size` entries).
    desc: *const u8,
    /// Host address of the avail ring (2-byte aligned, 6 + 2·size bytes).
    avail: *const u8,
    /// Host address of the used ring (4-byte aligned, 6 + 8·size bytes).
    used: *mut u8,
    /// avail.idx as last read. The chains before it are known to be published, so popping them
    /// reads avail.idx again only once they are used up (DPDK reads it once per burst too): the
    /// driver keeps writing that line from its CPU, so every read of it is likely a cache miss.
    avail_idx_seen: u16,
}

// SAFETY: the ring pointers point into mappings owned by `mem` (Send + Sync), which this queue
// keeps alive; the guest bytes behind them are only accessed with volatile, tear-tolerant copies.
unsafe impl Send for SplitQueue {}

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
        let mut host = [ptr::null_mut(); 3];
        for ((ring, addr, align, len), host) in rings.into_iter().zip(&mut host) {
            if addr % align != 0 {
                return Err(QueueError::MisalignedRing { ring, addr, align });
            }
            *host = mem.translate(addr, len as usize).map_err(|_| QueueError::RingOutOfMemory { ring, addr, len })?;
        }
        let used_len = 6 + 8 * n;
        if let Some(log_addr) = state.used_log_addr {
            log_addr.checked_add(used_len).ok_or(QueueError::UsedLogOverflow { log_addr, len: used_len })?;
        }
        let [desc, avail, used] = host;
        Ok(SplitQueue { mem, state, signalled_used: None, desc, avail, used, avail_idx_seen: state.next_avail })
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

    /// `index % size`, for ring slots and guest-given heads: the size is a power of two (`new`),
    /// so a mask does it. A `%` here was a 16-bit division, several per chain on the hot path.
    fn wrap(&self, index: u16) -> u16 {
        index & (self.state.size - 1)
    }

    /// The u16 at byte `offset` of the avail ring (`offset` even and < 6 + 2·size).
    fn read_avail(&self, offset: u64) -> u16 {
        // SAFETY: `new` checked that the avail ring is inside mapped guest memory and 2-byte
        // aligned; callers pass even offsets inside it. Volatile: the driver writes concurrently.
        u16::from_le(unsafe { ptr::read_volatile(self.avail.add(offset as usize).cast::<u16>()) })
    }

    /// Stores the u16 or u32 `v` at byte `offset` of the used ring (aligned for `T`, inside the
    /// ring) and logs the write.
    fn write_used<T: UsedField>(&self, offset: u64, v: T) {
        self.store_used(offset, v);
        self.log_used(offset, std::mem::size_of::<T>());
    }

    /// `write_used` without the log entry (the caller logs the whole field it stored in parts).
    fn store_used<T: UsedField>(&self, offset: u64, v: T) {
        // SAFETY: `new` checked that the used ring is inside mapped guest memory and 4-byte
        // aligned; callers pass offsets inside it that are aligned for T (u16 or u32).
        unsafe { ptr::write_volatile(self.used.add(offset as usize).cast::<T>(), v) };
    }

    /// Notes a write of `len` bytes at byte `offset` of the used ring, at the ring's log address.
    fn log_used(&self, offset: u64, len: usize) {
        // Overflow-checked in `new`.
        let gpa = self.state.used_log_addr.unwrap_or(self.state.used_addr) + offset;
        self.mem.note_write(gpa, len);
    }

    fn avail_flags(&self) -> u16 {
        self.read_avail(0)
    }

    fn avail_idx(&self) -> u16 {
        self.read_avail(2)
    }

    /// avail.idx - next_avail, read now; more than the queue size means a hostile driver.
    pub fn avail_pending(&mut self) -> Result<u16, QueueError> {
        self.avail_idx_seen = self.avail_idx();
        // Pairs with the driver's write barrier before its avail.idx store: the ring entries and
        // the descriptors they name are read only after we saw the index that published them.
        fence(Ordering::Acquire);
        self.known_pending()
    }

    /// The chains published as of the last read of avail.idx and not popped yet.
    fn known_pending(&self) -> Result<u16, QueueError> {
        let pending = self.avail_idx_seen.wrapping_sub(self.state.next_avail);
        // Checked at every pop, not only at the read: `rewind_to` moves next_avail back.
        if pending > self.size() {
            return Err(QueueError::AvailIdxTooFarAhead { avail_idx: self.avail_idx_seen, next_avail: self.state.next_avail, size: self.size() });
        }
        Ok(pending)
    }

    /// The next available chain, or None. A malformed chain is an error (the device is broken).
    pub fn pop_chain(&mut self) -> Result<Option<DescChain>, QueueError> {
        let mut chain = DescChain::default();
        Ok(self.pop_chain_into(&mut chain)?.then_some(chain))
    }

    /// As `pop_chain`, refilling `chain` (its buffers' storage is reused: no allocation per chain
    /// on the hot path); false if no chain is available (`chain` is then unchanged).
    pub fn pop_chain_into(&mut self, chain: &mut DescChain) -> Result<bool, QueueError> {
        let mut pending = self.known_pending()?;
        if pending == 0 {
            pending = self.avail_pending()?;
            if pending == 0 {
                return Ok(false);
            }
        }
        self.prefetch_ahead(pending);
        let slot = u64::from(self.wrap(self.state.next_avail));
        let head = self.read_avail(4 + 2 * slot);
        walk_chain(&self.mem, DescTable::Host(self.desc), self.size(), head, chain)?;
        chain.popped_at = self.state.next_avail;
        self.state.next_avail = self.state.next_avail.wrapping_add(1);
        Ok(true)
    }

    /// Asks the CPU to fetch what the chains a few places behind `next_avail` will need (of the
    /// `pending` published ones). Why: the driver wrote those descriptors and frames from another
    /// CPU, so the first read of each is a cache miss; taken one after the other, chain by chain,
    /// those misses were most of a small frame's cost in the switch. Prefetched, they overlap.
    /// Only hints: a descriptor the guest rewrites meanwhile is read again, checked, when popped.
    fn prefetch_ahead(&self, pending: u16) {
        let head_at = |ahead: u16| {
            let slot = u64::from(self.wrap(self.state.next_avail.wrapping_add(ahead)));
            self.wrap(self.read_avail(4 + 2 * slot))
        };
        if pending > PREFETCH_DESC_AHEAD {
            let head = head_at(PREFETCH_DESC_AHEAD);
            // SAFETY: head < size, and the table is mapped for `size` descriptors (`new`).
            prefetch(unsafe { self.desc.add(usize::from(head) * DESC_SIZE as usize) }, false);
        }
        if pending > PREFETCH_BUF_AHEAD {
            let head = head_at(PREFETCH_BUF_AHEAD);
            // SAFETY: as above; the descriptor is copied out once.
            let raw = unsafe { ptr::read_unaligned(self.desc.add(usize::from(head) * DESC_SIZE as usize).cast::<[u8; 16]>()) };
            let d = Descriptor::from_le_bytes(raw);
            if let Ok(host) = self.mem.translate(d.addr, 1) {
                // A buffer we will write (RX) is fetched for writing: fetched for reading, the
                // line would have to be fetched a second time, exclusive, at the first store.
                prefetch(host, d.flags & VIRTQ_DESC_F_WRITE != 0);
            }
        }
    }

    /// Puts back every chain popped since `popped_at` (a chain's `popped_at`): they will be popped
    /// again, re-read from the guest.
    pub fn rewind_to(&mut self, popped_at: u16) {
        self.state.next_avail = popped_at;
    }

    /// Writes used element {head, len} at next_used and advances next_used (not yet visible to
    /// the driver: see `publish_used`).
    pub fn add_used(&mut self, head: u16, len: u32) -> Result<(), QueueError> {
        if head >= self.size() {
            return Err(QueueError::UsedHeadOutOfRange { head, size: self.size() });
        }
        let slot = u64::from(self.wrap(self.state.next_used));
        // struct virtq_used_elem { le32 id; le32 len; } (4-byte aligned: two u32 stores).
        let offset = 4 + 8 * slot;
        self.store_used(offset, u32::from(head).to_le());
        self.store_used(offset + 4, len.to_le());
        self.log_used(offset, 8);
        self.state.next_used = self.state.next_used.wrapping_add(1);
        Ok(())
    }

    /// Stores used.idx = next_used, making the added elements visible to the driver.
    pub fn publish_used(&mut self) {
        // The driver reads used elements after it sees used.idx: order our element (and buffer)
        // writes before the index store.
        fence(Ordering::Release);
        self.write_used(2, self.state.next_used.to_le());
    }

    /// Whether the driver wants an interrupt for what was published since the last decision:
    /// with EVENT_IDX `vring_need_event(used_event, new, old)` (§2.7.7.2), otherwise
    /// `!(avail.flags & VRING_AVAIL_F_NO_INTERRUPT)` (§2.7.7.1).
    pub fn needs_notification(&mut self) -> bool {
        // Our used.idx store must be visible before we read the driver's suppression state, or we
        // could miss a used_event update made after the driver checked used.idx (lost interrupt).
        fence(Ordering::SeqCst);
        if !self.state.event_idx {
            return self.avail_flags() & VRING_AVAIL_F_NO_INTERRUPT == 0;
        }
        let new = self.state.next_used;
        let old = self.signalled_used.replace(new);
        let used_event = self.read_avail(self.used_event_offset());
        match old {
            None => true,
            Some(old) => vring_need_event(used_event, new, old),
        }
    }

    /// Asks the driver for kicks (clears VRING_USED_F_NO_NOTIFY, or with EVENT_IDX writes
    /// avail_event = next_avail), then returns true if chains became available meanwhile: the
    /// caller must then process them instead of sleeping.
    pub fn enable_notification(&mut self) -> Result<bool, QueueError> {
        if self.state.event_idx {
            self.write_used(self.avail_event_offset(), self.state.next_avail.to_le());
        } else {
            self.write_used(0, 0u16);
        }
        // The driver checks our flag/avail_event after storing avail.idx; we check avail.idx after
        // storing the flag/avail_event. Without a full fence both could miss each other (lost kick).
        fence(Ordering::SeqCst);
        Ok(self.avail_pending()? != 0)
    }

    /// Tells the driver not to kick (sets VRING_USED_F_NO_NOTIFY; with EVENT_IDX there is nothing
    /// to do: avail_event simply stays behind).
    pub fn disable_notification(&mut self) {
        if !self.state.event_idx {
            self.write_used(0, VRING_USED_F_NO_NOTIFY.to_le());
        }
    }

    /// Offset of the avail ring's trailing used_event field.
    fn used_event_offset(&self) -> u64 {
        4 + 2 * u64::from(self.size())
    }

    /// Offset of the used ring's trailing avail_event field.
    fn avail_event_offset(&self) -> u64 {
        4 + 8 * u64::from(self.size())
    }
}

/// A hint to bring the cache line at `p` closer (`for_write`: exclusive, for a store); never
/// faults, whatever `p` is.
pub(crate) fn prefetch(p: *const u8, for_write: bool) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        if for_write && has_prefetchw() {
            // SAFETY: PREFETCHW (the CPU has it) reads nothing architecturally visible, cannot
            // fault and touches no flags or stack. Written out because the build's baseline CPU
            // lacks it (the intrinsic would fall back to a read prefetch).
            unsafe { std::arch::asm!("prefetchw [{0}]", in(reg) p, options(nostack, preserves_flags, readonly)) };
        } else {
            // SAFETY: a prefetch reads nothing architecturally visible and cannot fault.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, for_write);
}

/// Whether the CPU has PREFETCHW (CPUID 8000_0001h ECX bit 8), asked once.
#[cfg(target_arch = "x86_64")]
fn has_prefetchw() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        // Leaf 8000_0000h gives the highest extended leaf.
        let highest = std::arch::x86_64::__cpuid(0x8000_0000).eax;
        highest >= 0x8000_0001 && std::arch::x86_64::__cpuid(0x8000_0001).ecx & (1 << 8) != 0
    })
}

/// The used-ring field types `write_used` stores (both fit the ring's 4-byte alignment).
trait UsedField: Copy {}
impl UsedField for u16 {}
impl UsedField for u32 {}
