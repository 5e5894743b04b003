//! Device side of the packed virtqueue (virtio 1.2 §2.8, VIRTIO_F_RING_PACKED): one descriptor
//! ring the driver makes buffers available in and the device writes used descriptors back into,
//! and two event suppression structures, the driver's (read here) and the device's (written here).
//!
//! Indices are kept in the vhost-user wire form (GET/SET_VRING_BASE): ring position in bits 0–14,
//! wrap counter in bit 15. A descriptor at the avail position is available when its AVAIL flag
//! equals the avail wrap counter and its USED flag does not (§2.8.1). Buffers are used in the
//! order they were made available, so a used descriptor goes where its chain started and the
//! used position moves on by the chain's descriptor count.
//!
//! Threat model: as for the split ring (queue.rs). The ring is written by the guest while we read
//! it: each descriptor is copied out once and only the copy is used, a chain is at most the queue
//! size long, indirect tables are bounded and checked, every buffer is checked against guest
//! memory. The buffer id is the driver's business: it is returned as given, never used as an index.

use std::ptr;
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;

use crate::desc::{indirect_table, read_raw_desc, DescChain, DescTable, Descriptor, DESC_SIZE, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE};
use crate::error::QueueError;
use crate::memory::GuestMemory;
use crate::queue::{prefetch, PREFETCH_BUF_AHEAD, PREFETCH_DESC_AHEAD};
use crate::state::{QueueState, MAX_QUEUE_SIZE};

/// Descriptor flag (§2.8.1): made available by the driver in the lap of this wrap counter value.
pub const VIRTQ_DESC_F_AVAIL: u16 = 1 << 7;
/// Descriptor flag (§2.8.1): used by the device in the lap of this wrap counter value.
pub const VIRTQ_DESC_F_USED: u16 = 1 << 15;
/// Event suppression flags (§2.8.10): notify after every buffer...
pub const RING_EVENT_FLAGS_ENABLE: u16 = 0;
/// ...never...
pub const RING_EVENT_FLAGS_DISABLE: u16 = 1;
/// ...or once the descriptor at the given position and wrap counter is reached (EVENT_IDX only).
pub const RING_EVENT_FLAGS_DESC: u16 = 2;

/// Bit 15 of an index: the wrap counter.
const WRAP: u16 = 1 << 15;

/// Where a packed ring starts (§2.8.1): position 0, wrap counter 1.
pub const PACKED_RING_START: u16 = WRAP;

/// Offsets in `struct pvirtq_event_suppress { le16 desc; le16 flags; }`.
const EVENT_OFF_WRAP: usize = 0;
const EVENT_FLAGS: usize = 2;
const EVENT_LEN: u64 = 4;

/// `index` moved on by `n` (at most `size`) entries in a ring of `size`: past the end the position
/// starts again at 0 and the wrap counter flips.
pub fn advance(index: u16, n: u16, size: u16) -> u16 {
    let position = u32::from(index & !WRAP) + u32::from(n);
    if position >= u32::from(size) {
        (position - u32::from(size)) as u16 | ((index & WRAP) ^ WRAP)
    } else {
        position as u16 | (index & WRAP)
    }
}

/// `struct pvirtq_desc`, decoded from its little-endian form.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PackedDescriptor {
    pub addr: u64,
    pub len: u32,
    pub id: u16,
    pub flags: u16,
}

impl PackedDescriptor {
    pub fn from_le_bytes(b: [u8; 16]) -> PackedDescriptor {
        let mut addr = [0u8; 8];
        addr.copy_from_slice(&b[0..8]);
        PackedDescriptor {
            addr: u64::from_le_bytes(addr),
            len: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
            id: u16::from_le_bytes([b[12], b[13]]),
            flags: u16::from_le_bytes([b[14], b[15]]),
        }
    }

    pub fn to_le_bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0..8].copy_from_slice(&self.addr.to_le_bytes());
        b[8..12].copy_from_slice(&self.len.to_le_bytes());
        b[12..14].copy_from_slice(&self.id.to_le_bytes());
        b[14..16].copy_from_slice(&self.flags.to_le_bytes());
        b
    }

    /// The buffer part, as the chain walker takes it (only WRITE of the flags matters there).
    fn buffer(&self) -> Descriptor {
        Descriptor { addr: self.addr, len: self.len, flags: self.flags, next: 0 }
    }
}

/// Whether descriptor flags say "available" in the lap of `wrap` (§2.8.1).
fn is_available(flags: u16, wrap: bool) -> bool {
    (flags & VIRTQ_DESC_F_AVAIL != 0) == wrap && (flags & VIRTQ_DESC_F_USED != 0) != wrap
}

/// One packed virtqueue, device side. As `SplitQueue`, its rings are translated to host addresses
/// once, in `new` (each checked to lie inside one region, which `mem` keeps mapped).
#[derive(Debug)]
pub struct PackedQueue {
    mem: Arc<GuestMemory>,
    /// `next_avail` / `next_used` in the wire form (position | wrap counter << 15).
    state: QueueState,
    /// Host address of the descriptor ring (16-byte aligned, `size` entries).
    desc: *mut u8,
    /// Host address of the driver's event suppression structure (4-byte aligned).
    driver_event: *const u8,
    /// Host address of the device's event suppression structure (4-byte aligned).
    device_event: *mut u8,
    /// next_used at the last notification decision (EVENT_IDX); None until the first one.
    signalled_used: Option<u16>,
    /// Descriptors used since the last notification decision.
    used_since_signal: u32,
}

// SAFETY: as for SplitQueue: the ring pointers point into mappings owned by `mem` (Send + Sync),
// which this queue keeps alive; the guest bytes behind them are only accessed with volatile copies.
unsafe impl Send for PackedQueue {}

impl PackedQueue {
    /// Validates `state` against `mem`: size in 1..=32768 (a packed ring's size need not be a
    /// power of two), positions below the size; descriptor ring 16-byte aligned, event structures
    /// 4-byte aligned (§2.8.10.1); each inside one guest memory region. `avail_addr` is the driver
    /// area, `used_addr` the device area (the addresses SET_VRING_ADDR gives).
    pub fn new(mem: Arc<GuestMemory>, state: QueueState) -> Result<PackedQueue, QueueError> {
        let size = state.size;
        if size == 0 || size > MAX_QUEUE_SIZE {
            return Err(QueueError::InvalidSize { size });
        }
        for (what, index) in [("avail", state.next_avail), ("used", state.next_used)] {
            if index & !WRAP >= size {
                return Err(QueueError::RingIndexOutOfRange { what, index, size });
            }
        }
        let rings = [
            ("descriptor", state.desc_addr, 16, DESC_SIZE * u64::from(size)),
            ("driver event", state.avail_addr, 4, EVENT_LEN),
            ("device event", state.used_addr, 4, EVENT_LEN),
        ];
        let mut host = [ptr::null_mut(); 3];
        for ((ring, addr, align, len), host) in rings.into_iter().zip(&mut host) {
            if addr % align != 0 {
                return Err(QueueError::MisalignedRing { ring, addr, align });
            }
            *host = mem.translate(addr, len as usize).map_err(|_| QueueError::RingOutOfMemory { ring, addr, len })?;
        }
        if let Some(log_addr) = state.used_log_addr {
            log_addr.checked_add(EVENT_LEN).ok_or(QueueError::UsedLogOverflow { log_addr, len: EVENT_LEN })?;
        }
        let [desc, driver_event, device_event] = host;
        let queue = PackedQueue { mem, state, desc, driver_event, device_event, signalled_used: None, used_since_signal: 0 };
        if queue.driver_is_elsewhere() {
            return Err(QueueError::PackedRingPositionLost);
        }
        Ok(queue)
    }

    /// Whether the queue is told to start at the very start of the ring (position 0, first lap)
    /// while the descriptor there shows the ring has moved on: used by a device in the first lap,
    /// or made available by the driver in the second. Neither can be seen at a true start, however
    /// many laps the ring went round before it. It is what QEMU 7.2 sends after a back-end restart:
    /// it keeps no position of a packed ring to resume from (its
    /// `virtio_queue_packed_restore_last_avail_idx` does nothing) and replays the base it last
    /// knew. (At the other positions QEMU may replay, the loss cannot be told from the ring.)
    fn driver_is_elsewhere(&self) -> bool {
        let start = self.state.next_avail == PACKED_RING_START && self.state.next_used == PACKED_RING_START;
        let flags = self.desc_flags(0) & (VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED);
        start && (flags == VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED || flags == VIRTQ_DESC_F_USED)
    }

    pub fn state(&self) -> QueueState {
        self.state
    }

    pub fn memory(&self) -> &GuestMemory {
        &self.mem
    }

    pub fn memory_arc(&self) -> &Arc<GuestMemory> {
        &self.mem
    }

    fn size(&self) -> u16 {
        self.state.size
    }

    /// The flags of the descriptor at `position` (< size).
    fn desc_flags(&self, position: u16) -> u16 {
        // SAFETY: `new` checked the ring is mapped for `size` 16-byte aligned descriptors and
        // position < size; flags sit at offset 14 (2-byte aligned). Volatile: the driver writes it.
        u16::from_le(unsafe { ptr::read_volatile(self.desc.add(usize::from(position) * DESC_SIZE as usize + 14).cast::<u16>()) })
    }

    /// Whether the driver made the buffer at `next_avail` available.
    fn next_is_available(&self) -> bool {
        let index = self.state.next_avail;
        is_available(self.desc_flags(index & !WRAP), index & WRAP != 0)
    }

    /// Takes the next available chain into `chain` (its storage reused); false if none is.
    pub fn pop_chain_into(&mut self, chain: &mut DescChain) -> Result<bool, QueueError> {
        if !self.next_is_available() {
            return Ok(false);
        }
        // Pairs with the driver's write barrier before it stores the head's flags: the chain's
        // descriptors are read only after we saw the head available.
        fence(Ordering::Acquire);
        self.prefetch_ahead();
        let start = self.state.next_avail;
        let size = self.size();
        // Until the buffer id is known (last descriptor), errors name the chain by its position.
        chain.head = start & !WRAP;
        chain.start(&self.mem);
        let mut index = start;
        let mut count: u16 = 0;
        let id = loop {
            count += 1;
            if count > size {
                return Err(QueueError::ChainTooLong { head: chain.head, max: u32::from(size) });
            }
            let raw = read_raw_desc(&self.mem, chain.head, DescTable::Host(self.desc), index & !WRAP, u32::from(size))?;
            let d = PackedDescriptor::from_le_bytes(raw);
            if d.flags & VIRTQ_DESC_F_INDIRECT != 0 {
                // As in the split ring (§2.7.5.3.1): an indirect descriptor is not chained further.
                if d.flags & VIRTQ_DESC_F_NEXT != 0 {
                    return Err(QueueError::IndirectWithNext { head: chain.head });
                }
                walk_indirect(&self.mem, &d, size, chain)?;
                break d.id;
            }
            chain.push(&self.mem, &d.buffer())?;
            if d.flags & VIRTQ_DESC_F_NEXT == 0 {
                break d.id;
            }
            index = advance(index, 1, size);
        };
        chain.head = id;
        chain.popped_at = start;
        chain.slots = count;
        self.state.next_avail = advance(start, count, size);
        Ok(true)
    }

    /// Asks the CPU to fetch what the buffers a few places ahead will need, as `SplitQueue` does
    /// (the driver wrote them from another CPU: each first read is a cache miss): the descriptor
    /// line PREFETCH_DESC_AHEAD places ahead, and the first line of the buffer PREFETCH_BUF_AHEAD
    /// places ahead if the driver made it available already. Only hints: what is popped later is
    /// read again, checked.
    fn prefetch_ahead(&self) {
        let size = self.size();
        let at = |ahead: u16| advance(self.state.next_avail, ahead.min(size - 1), size);
        let position = at(PREFETCH_DESC_AHEAD) & !WRAP;
        // SAFETY: position < size, and the ring is mapped for `size` descriptors (`new`).
        prefetch(unsafe { self.desc.add(usize::from(position) * DESC_SIZE as usize) }, false);
        let index = at(PREFETCH_BUF_AHEAD);
        let position = index & !WRAP;
        if is_available(self.desc_flags(position), index & WRAP != 0) {
            // SAFETY: as above; the descriptor is copied out once.
            let raw = unsafe { ptr::read_unaligned(self.desc.add(usize::from(position) * DESC_SIZE as usize).cast::<[u8; 16]>()) };
            let d = PackedDescriptor::from_le_bytes(raw);
            if let Ok(host) = self.mem.translate(d.addr, 1) {
                prefetch(host, d.flags & VIRTQ_DESC_F_WRITE != 0);
            }
        }
    }

    /// Puts back every chain popped since `popped_at` (a chain's `popped_at`). A position outside
    /// the ring (not from this queue's chains) leaves the queue where it is: positions stay below
    /// the size, which every ring access relies on.
    pub fn rewind_to(&mut self, popped_at: u16) {
        if popped_at & !WRAP < self.size() {
            self.state.next_avail = popped_at;
        }
    }

    /// Hands buffer `id`, which took `slots` descriptors, back with `len` bytes written: a used
    /// descriptor at `next_used`, visible to the driver at once (its flags are stored last).
    pub fn add_used(&mut self, id: u16, slots: u16, len: u32) {
        let index = self.state.next_used;
        let offset = usize::from(index & !WRAP) * DESC_SIZE as usize;
        let wrap = if index & WRAP != 0 { VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED } else { 0 };
        let flags = wrap | if len > 0 { VIRTQ_DESC_F_WRITE } else { 0 };
        // SAFETY: `new` checked the ring is mapped for `size` 16-byte aligned descriptors and the
        // position is below the size (kept so by `advance`); len at +8 (4-aligned), id at +12 and
        // flags at +14 (2-aligned).
        unsafe {
            ptr::write_volatile(self.desc.add(offset + 8).cast::<u32>(), len.to_le());
            ptr::write_volatile(self.desc.add(offset + 12).cast::<u16>(), id.to_le());
            // The driver reads id and len (and the buffer) after it sees the flags.
            fence(Ordering::Release);
            ptr::write_volatile(self.desc.add(offset + 14).cast::<u16>(), flags.to_le());
        }
        self.mem.note_write(self.state.desc_addr + offset as u64 + 8, 8);
        // Clamped: whatever a caller passes, the position stays inside the ring (a chain popped
        // here took 1..=size descriptors anyway).
        self.state.next_used = advance(index, slots.clamp(1, self.size()), self.size());
        self.used_since_signal += u32::from(slots);
    }

    /// Whether the driver wants an interrupt for what was used since the last decision: per its
    /// event suppression structure (§2.8.10), with EVENT_IDX at the descriptor it names.
    pub fn needs_notification(&mut self) -> bool {
        // Our used descriptors must be visible before we read the driver's suppression state, or
        // we could miss an update made after the driver last looked at the ring (lost interrupt).
        fence(Ordering::SeqCst);
        let new = self.state.next_used;
        let old = self.signalled_used.replace(new);
        let used = std::mem::take(&mut self.used_since_signal);
        match self.read_driver_event(EVENT_FLAGS) & 3 {
            RING_EVENT_FLAGS_DISABLE => false,
            RING_EVENT_FLAGS_DESC if self.state.event_idx => {
                let Some(old) = old else { return true };
                let size = u32::from(self.size());
                // Positions over two laps (wrap counter 1 first) are in ring order modulo 2·size:
                // notify if the named descriptor is among those used since `old`.
                let period = 2 * size;
                if used >= period {
                    return true;
                }
                let linear = |i: u16| u32::from(i & !WRAP) + if i & WRAP != 0 { 0 } else { size };
                let from_old = |i: u16| (linear(i) + period - linear(old)) % period;
                let event = self.read_driver_event(EVENT_OFF_WRAP);
                from_old(event) < from_old(new)
            }
            // ENABLE, or a reserved value: notify.
            _ => true,
        }
    }

    /// Asks the driver for kicks (with EVENT_IDX: when it makes the descriptor at `next_avail`
    /// available), then returns true if a chain became available meanwhile: the caller must then
    /// process it instead of sleeping.
    pub fn enable_notification(&mut self) -> Result<bool, QueueError> {
        if self.state.event_idx {
            self.write_device_event(EVENT_OFF_WRAP, self.state.next_avail);
            self.write_device_event(EVENT_FLAGS, RING_EVENT_FLAGS_DESC);
        } else {
            self.write_device_event(EVENT_FLAGS, RING_EVENT_FLAGS_ENABLE);
        }
        // The driver checks our flags after making a buffer available; we check for buffers after
        // storing the flags. Without a full fence both could miss each other (lost kick).
        fence(Ordering::SeqCst);
        Ok(self.next_is_available())
    }

    /// Tells the driver not to kick.
    pub fn disable_notification(&mut self) {
        self.write_device_event(EVENT_FLAGS, RING_EVENT_FLAGS_DISABLE);
    }

    fn read_driver_event(&self, offset: usize) -> u16 {
        // SAFETY: `new` checked the 4-byte structure is mapped and 4-byte aligned; offset is 0 or 2.
        u16::from_le(unsafe { ptr::read_volatile(self.driver_event.add(offset).cast::<u16>()) })
    }

    /// Stores a field of the device's event suppression structure and logs the write.
    fn write_device_event(&self, offset: usize, v: u16) {
        // SAFETY: as in read_driver_event, for the device's structure.
        unsafe { ptr::write_volatile(self.device_event.add(offset).cast::<u16>(), v.to_le()) };
        // Overflow-checked in `new`.
        let gpa = self.state.used_log_addr.unwrap_or(self.state.used_addr) + offset as u64;
        self.mem.note_write(gpa, 2);
    }
}

/// Walks the packed indirect table `indirect` describes (§2.8.7): its descriptors in order, all
/// of them (no NEXT chaining inside), appending to `chain`.
fn walk_indirect(mem: &GuestMemory, indirect: &PackedDescriptor, size: u16, chain: &mut DescChain) -> Result<(), QueueError> {
    let head = chain.head;
    let (table, entries) = indirect_table(mem, head, indirect.addr, indirect.len, size)?;
    for index in 0..entries {
        // entries <= size <= 32768: fits.
        let d = PackedDescriptor::from_le_bytes(read_raw_desc(mem, head, table, index as u16, entries)?);
        if d.flags & VIRTQ_DESC_F_INDIRECT != 0 {
            return Err(QueueError::NestedIndirect { head });
        }
        chain.push(mem, &d.buffer())?;
    }
    Ok(())
}
