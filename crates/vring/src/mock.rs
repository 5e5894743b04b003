//! A mock guest and driver for tests (this crate's and other crates'): real memfd-backed guest
//! memory with PROT_NONE guard pages on both sides of every region (an out-of-bounds access
//! crashes the test instead of silently passing), mapped through the real `MemoryRegion` path,
//! and a driver that lays a split ring into it and speaks the driver side (virtio 1.2 §2.7).
//!
//! Test harness code: it panics on misuse instead of returning errors.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

use crate::desc::{Buf, Descriptor, DESC_SIZE, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE};
use crate::memory::{GuestMemory, MemoryRegion, RegionSpec, WriteLog};
use crate::state::QueueState;

/// Front-end virtual address that mock regions pretend to live at: `MOCK_USER_BASE + gpa`.
pub const MOCK_USER_BASE: u64 = 0x7f00_0000_0000;

/// A tiny deterministic PRNG (xorshift64*), so tests need no rand crate and replay exactly.
#[derive(Clone, Debug)]
pub struct XorShift64(u64);

impl XorShift64 {
    /// A generator from `seed` (0 is replaced by a fixed non-zero constant).
    pub fn new(seed: u64) -> XorShift64 {
        XorShift64(if seed == 0 { 0x9e37_79b9_7f4a_7c15 } else { seed })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// A write log that keeps every `(gpa, len)` the device reported, in order (tests read field 0).
#[derive(Debug, Default)]
pub struct RecordingLog(pub Mutex<Vec<(u64, usize)>>);

impl WriteLog for RecordingLog {
    fn log_write(&self, gpa: u64, len: usize) {
        self.0.lock().unwrap().push((gpa, len));
    }
}

impl RecordingLog {
    /// Whether every byte of `[gpa, gpa + len)` was reported.
    pub fn covers(&self, gpa: u64, len: usize) -> bool {
        let ranges = self.0.lock().unwrap();
        (gpa..gpa + len as u64).all(|b| ranges.iter().any(|&(s, l)| b >= s && b < s + l as u64))
    }
}

/// Creates a memfd of `size` bytes.
pub fn memfd(size: u64) -> OwnedFd {
    // SAFETY: the name is a NUL-terminated static string; no other preconditions.
    let raw = unsafe { libc::memfd_create(b"vring-mock\0".as_ptr().cast(), libc::MFD_CLOEXEC) };
    assert!(raw >= 0, "memfd_create: {}", std::io::Error::last_os_error());
    // SAFETY: memfd_create returned a fresh fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: ftruncate on our own fd.
    let rc = unsafe { libc::ftruncate(fd.as_raw_fd(), size as libc::off_t) };
    assert_eq!(rc, 0, "ftruncate: {}", std::io::Error::last_os_error());
    fd
}

/// Guest memory of one or more memfd regions, each with guard pages on both sides.
#[derive(Debug)]
pub struct MockGuest {
    mem: Arc<GuestMemory>,
}

impl MockGuest {
    /// One region of `size` bytes (a page multiple) at guest-physical address 0.
    pub fn new(size: u64) -> MockGuest {
        MockGuest::with_regions(&[(0, size)])
    }

    /// Regions `(guest_phys_addr, size)`, each its own memfd; sizes and addresses page multiples.
    /// Adjacent regions model a buffer spanning two regions; gaps model holes in the GPA space.
    pub fn with_regions(regions: &[(u64, u64)]) -> MockGuest {
        let mapped = regions.iter().map(|&(gpa, size)| MockGuest::map_region(gpa, size)).collect();
        MockGuest { mem: Arc::new(GuestMemory::new(mapped).expect("mock regions must not overlap")) }
    }

    /// Maps one memfd region at `gpa` (front-end address `MOCK_USER_BASE + gpa`) with guard pages.
    pub fn map_region(gpa: u64, size: u64) -> MemoryRegion {
        let fd = memfd(size);
        let spec = RegionSpec {
            guest_phys_addr: gpa,
            memory_size: size,
            userspace_addr: MOCK_USER_BASE + gpa,
            mmap_offset: 0,
        };
        // The fd is closed on return; the mapping stays valid.
        MemoryRegion::map_guarded(spec, fd.as_raw_fd(), 1).expect("mapping a mock region")
    }

    /// The guest memory, as the device sees it.
    pub fn memory(&self) -> &Arc<GuestMemory> {
        &self.mem
    }
}

/// The driver side of one split virtqueue laid into guest memory.
#[derive(Debug)]
pub struct MockDriver {
    /// Driver's view of memory (no write log: driver writes are not device writes).
    mem: GuestMemory,
    size: u16,
    desc: u64,
    avail: u64,
    used: u64,
    /// Next descriptor slot to hand out (round-robin over the table).
    next_desc: u16,
    /// The driver's private avail.idx; `publish_avail` makes it visible.
    avail_idx: u16,
    data: BufferArea,
    rng: XorShift64,
}

/// Where a mock driver places buffers: `[start, end)`, filled from `next` on.
#[derive(Debug, Default)]
pub struct BufferArea {
    start: u64,
    end: u64,
    next: u64,
}

impl BufferArea {
    pub fn new(start: u64, end: u64) -> BufferArea {
        assert!(start < end);
        BufferArea { start, end, next: start }
    }

    /// A `len`-byte buffer after a random gap of 0..64 bytes (random alignment too); wraps
    /// around to the start of the area when it runs out.
    pub fn alloc(&mut self, len: u32, rng: &mut XorShift64) -> u64 {
        let gap = rng.below(64);
        let len = u64::from(len);
        assert!(len + 64 <= self.end - self.start, "buffer larger than the data area");
        let mut addr = self.next + gap;
        if addr + len > self.end {
            addr = self.start + gap;
        }
        self.next = addr + len;
        addr
    }
}

impl MockDriver {
    /// A driver for a queue of `size` with rings at the given guest-physical addresses. The
    /// rings are zeroed. Call `set_data_area` before `alloc`.
    pub fn new(mem: &GuestMemory, size: u16, desc: u64, avail: u64, used: u64, seed: u64) -> MockDriver {
        let driver = MockDriver {
            mem: mem.without_write_log(),
            size,
            desc,
            avail,
            used,
            next_desc: 0,
            avail_idx: 0,
            data: BufferArea::default(),
            rng: XorShift64::new(seed),
        };
        let n = u64::from(size);
        driver.write_bytes(desc, &vec![0; (DESC_SIZE * n) as usize]);
        driver.write_bytes(avail, &vec![0; (6 + 2 * n) as usize]);
        driver.write_bytes(used, &vec![0; (6 + 8 * n) as usize]);
        driver
    }

    /// The usual layout from `base` (4 KiB aligned): desc table, then the avail ring, then the
    /// used ring on the next 4 KiB boundary; buffers from the next 4 KiB boundary to `data_end`.
    pub fn with_layout(mem: &GuestMemory, size: u16, base: u64, data_end: u64, seed: u64) -> MockDriver {
        let n = u64::from(size);
        let avail = base + DESC_SIZE * n;
        let used = align_up(avail + 6 + 2 * n, 4096);
        let data = align_up(used + 6 + 8 * n, 4096);
        let mut driver = MockDriver::new(mem, size, base, avail, used, seed);
        driver.set_data_area(data, data_end);
        driver
    }

    /// The queue state a front-end would hand over for this ring (next indices 0).
    pub fn state(&self, event_idx: bool) -> QueueState {
        QueueState {
            packed: false,
            size: self.size,
            desc_addr: self.desc,
            avail_addr: self.avail,
            used_addr: self.used,
            next_avail: 0,
            next_used: 0,
            event_idx,
            used_log_addr: None,
        }
    }

    /// Where `alloc` places buffers.
    pub fn set_data_area(&mut self, start: u64, end: u64) {
        self.data = BufferArea::new(start, end);
    }

    /// The driver's PRNG (for tests that randomise).
    pub fn rng(&mut self) -> &mut XorShift64 {
        &mut self.rng
    }

    /// Allocates a `len`-byte buffer in the data area (`BufferArea::alloc`).
    pub fn alloc(&mut self, len: u32) -> u64 {
        self.data.alloc(len, &mut self.rng)
    }

    /// Adds a chain of buffers `(addr, len, device_writable)` in fresh descriptor slots and puts
    /// its head in the avail ring (not yet published). Returns the head index.
    pub fn add_desc_chain(&mut self, bufs: &[(u64, u32, bool)]) -> u16 {
        assert!(!bufs.is_empty() && bufs.len() <= usize::from(self.size));
        let slots: Vec<u16> = (0..bufs.len()).map(|_| self.take_slot()).collect();
        for (i, &(addr, len, writable)) in bufs.iter().enumerate() {
            let last = i + 1 == bufs.len();
            let flags = if writable { VIRTQ_DESC_F_WRITE } else { 0 } | if last { 0 } else { VIRTQ_DESC_F_NEXT };
            let next = if last { 0 } else { slots[i + 1] };
            self.write_desc(slots[i], Descriptor { addr, len, flags, next });
        }
        self.push_avail_head(slots[0]);
        slots[0]
    }

    /// Allocates buffers of `(len, device_writable)` with random gaps and adds them as one chain.
    /// Returns the head and the buffers.
    pub fn add_alloc_chain(&mut self, lens: &[(u32, bool)]) -> (u16, Vec<Buf>) {
        let bufs: Vec<(u64, u32, bool)> = lens.iter().map(|&(len, w)| (self.alloc(len), len, w)).collect();
        let head = self.add_desc_chain(&bufs);
        (head, bufs.iter().map(|&(addr, len, _)| Buf::new(addr, len)).collect())
    }

    /// Writes an indirect table of `bufs` at `table` and adds one INDIRECT descriptor for it.
    pub fn add_indirect_chain(&mut self, table: u64, bufs: &[(u64, u32, bool)]) -> u16 {
        for (i, &(addr, len, writable)) in bufs.iter().enumerate() {
            let last = i + 1 == bufs.len();
            let flags = if writable { VIRTQ_DESC_F_WRITE } else { 0 } | if last { 0 } else { VIRTQ_DESC_F_NEXT };
            let next = if last { 0 } else { i as u16 + 1 };
            self.write_desc_at(table, i as u16, Descriptor { addr, len, flags, next });
        }
        let head = self.take_slot();
        let len = DESC_SIZE as u32 * bufs.len() as u32;
        self.write_desc(head, Descriptor { addr: table, len, flags: VIRTQ_DESC_F_INDIRECT, next: 0 });
        self.push_avail_head(head);
        head
    }

    /// Raw: adds one INDIRECT descriptor `{table, len}` (any length) without writing the table.
    pub fn add_raw_indirect(&mut self, table: u64, len: u32) -> u16 {
        let head = self.take_slot();
        self.write_desc(head, Descriptor { addr: table, len, flags: VIRTQ_DESC_F_INDIRECT, next: 0 });
        self.push_avail_head(head);
        head
    }

    fn take_slot(&mut self) -> u16 {
        let slot = self.next_desc;
        self.next_desc = (self.next_desc + 1) % self.size;
        slot
    }

    /// Raw: writes descriptor `i` of the queue's table (any content, for malformed tables).
    pub fn write_desc(&self, i: u16, d: Descriptor) {
        self.write_desc_at(self.desc, i, d);
    }

    /// Raw: writes descriptor `i` of a table at `table` (an indirect table).
    pub fn write_desc_at(&self, table: u64, i: u16, d: Descriptor) {
        self.write_bytes(table + DESC_SIZE * u64::from(i), &d.to_le_bytes());
    }

    /// Raw: puts `head` (any value) in the next avail ring slot; not yet published.
    pub fn push_avail_head(&mut self, head: u16) {
        let slot = u64::from(self.avail_idx % self.size);
        self.write_u16(self.avail + 4 + 2 * slot, head);
        self.avail_idx = self.avail_idx.wrapping_add(1);
    }

    /// Stores avail.idx, making the added chains visible to the device.
    pub fn publish_avail(&self) {
        std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
        self.write_u16(self.avail + 2, self.avail_idx);
    }

    /// Raw: stores any avail.idx (and makes it the driver's private index too).
    pub fn set_avail_idx(&mut self, idx: u16) {
        self.avail_idx = idx;
        self.publish_avail();
    }

    /// Sets avail.flags (e.g. VRING_AVAIL_F_NO_INTERRUPT).
    pub fn set_avail_flags(&self, flags: u16) {
        self.write_u16(self.avail, flags);
    }

    /// Sets used_event (the trailing field of the avail ring), for EVENT_IDX.
    pub fn set_used_event(&self, idx: u16) {
        self.write_u16(self.avail + 4 + 2 * u64::from(self.size), idx);
    }

    /// The device's used.idx.
    pub fn used_idx(&self) -> u16 {
        self.read_u16(self.used + 2)
    }

    /// The device's used.flags.
    pub fn used_flags(&self) -> u16 {
        self.read_u16(self.used)
    }

    /// avail_event (the trailing field of the used ring), for EVENT_IDX.
    pub fn avail_event(&self) -> u16 {
        self.read_u16(self.used + 4 + 8 * u64::from(self.size))
    }

    /// Used ring element `i` (free-running index): `(id, len)`.
    pub fn used_elem(&self, i: u16) -> (u32, u32) {
        let gpa = self.used + 4 + 8 * u64::from(i % self.size);
        let b = self.read_bytes(gpa, 8);
        (u32::from_le_bytes([b[0], b[1], b[2], b[3]]), u32::from_le_bytes([b[4], b[5], b[6], b[7]]))
    }

    /// Writes guest bytes.
    pub fn write_bytes(&self, gpa: u64, bytes: &[u8]) {
        self.mem.write_bytes(gpa, bytes).expect("mock write inside guest memory");
    }

    /// Reads guest bytes.
    pub fn read_bytes(&self, gpa: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        self.mem.read_bytes(gpa, &mut out).expect("mock read inside guest memory");
        out
    }

    fn write_u16(&self, gpa: u64, v: u16) {
        self.write_bytes(gpa, &v.to_le_bytes());
    }

    fn read_u16(&self, gpa: u64) -> u16 {
        let b = self.read_bytes(gpa, 2);
        u16::from_le_bytes([b[0], b[1]])
    }
}

pub(crate) fn align_up(v: u64, align: u64) -> u64 {
    (v + align - 1) & !(align - 1)
}
