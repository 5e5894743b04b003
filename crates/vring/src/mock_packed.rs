//! The driver side of a packed virtqueue (virtio 1.2 §2.8) laid into mock guest memory (see
//! `mock`), for this crate's tests and other crates'.
//!
//! Test harness code: it panics on misuse instead of returning errors.

use std::collections::HashMap;
use std::sync::atomic::{fence, Ordering};

use crate::desc::{Buf, DESC_SIZE, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE};
use crate::memory::GuestMemory;
use crate::mock::{align_up, BufferArea, XorShift64};
use crate::packed::{advance, PackedDescriptor, PACKED_RING_START, VIRTQ_DESC_F_AVAIL, VIRTQ_DESC_F_USED};
use crate::state::QueueState;

const WRAP: u16 = 1 << 15;

#[derive(Debug)]
pub struct MockPackedDriver {
    /// Driver's view of memory (no write log: driver writes are not device writes).
    mem: GuestMemory,
    size: u16,
    desc: u64,
    driver_event: u64,
    device_event: u64,
    /// Where the driver makes the next buffer available (position | wrap counter << 15).
    next_avail: u16,
    /// Heads written but not yet made available: (position, flags to store).
    unpublished: Vec<(u16, u16)>,
    /// Where the driver looks for the next used descriptor.
    next_used: u16,
    /// Descriptors each outstanding buffer id took.
    slots_of: HashMap<u16, u16>,
    next_id: u16,
    data: BufferArea,
    rng: XorShift64,
}

impl MockPackedDriver {
    /// A driver for a ring of `size` with its descriptor ring and event structures at the given
    /// guest-physical addresses, all zeroed. Call `set_data_area` before `alloc`.
    pub fn new(mem: &GuestMemory, size: u16, desc: u64, driver_event: u64, device_event: u64, seed: u64) -> MockPackedDriver {
        let driver = MockPackedDriver {
            mem: mem.without_write_log(),
            size,
            desc,
            driver_event,
            device_event,
            next_avail: PACKED_RING_START,
            unpublished: Vec::new(),
            next_used: PACKED_RING_START,
            slots_of: HashMap::new(),
            next_id: 0,
            data: BufferArea::default(),
            rng: XorShift64::new(seed),
        };
        driver.write_bytes(desc, &vec![0; (DESC_SIZE * u64::from(size)) as usize]);
        driver.write_bytes(driver_event, &[0; 4]);
        driver.write_bytes(device_event, &[0; 4]);
        driver
    }

    /// The usual layout from `base` (4 KiB aligned): the descriptor ring, then the driver's and
    /// the device's event structures; buffers from the next 4 KiB boundary to `data_end`.
    pub fn with_layout(mem: &GuestMemory, size: u16, base: u64, data_end: u64, seed: u64) -> MockPackedDriver {
        let driver_event = base + DESC_SIZE * u64::from(size);
        let device_event = driver_event + 4;
        let mut driver = MockPackedDriver::new(mem, size, base, driver_event, device_event, seed);
        driver.set_data_area(align_up(device_event + 4, 4096), data_end);
        driver
    }

    /// The queue state a front-end would hand over for this ring (both indices at the start).
    pub fn state(&self, event_idx: bool) -> QueueState {
        QueueState {
            packed: true,
            size: self.size,
            desc_addr: self.desc,
            avail_addr: self.driver_event,
            used_addr: self.device_event,
            next_avail: PACKED_RING_START,
            next_used: PACKED_RING_START,
            event_idx,
            used_log_addr: None,
        }
    }

    pub fn set_data_area(&mut self, start: u64, end: u64) {
        self.data = BufferArea::new(start, end);
    }

    pub fn rng(&mut self) -> &mut XorShift64 {
        &mut self.rng
    }

    /// Allocates a `len`-byte buffer in the data area (`BufferArea::alloc`).
    pub fn alloc(&mut self, len: u32) -> u64 {
        self.data.alloc(len, &mut self.rng)
    }

    /// Where the driver makes the next buffer available (position | wrap counter << 15).
    pub fn next_avail(&self) -> u16 {
        self.next_avail
    }

    /// Writes a chain of buffers `(addr, len, device_writable)` at the next positions, buffer id
    /// in the last descriptor; `publish` makes it available. Returns the buffer id.
    pub fn add_chain(&mut self, bufs: &[(u64, u32, bool)]) -> u16 {
        assert!(!bufs.is_empty() && bufs.len() <= usize::from(self.size));
        let id = self.take_id(bufs.len() as u16);
        let descs: Vec<PackedDescriptor> = bufs
            .iter()
            .enumerate()
            .map(|(i, &(addr, len, writable))| {
                let last = i + 1 == bufs.len();
                let flags = if writable { VIRTQ_DESC_F_WRITE } else { 0 } | if last { 0 } else { VIRTQ_DESC_F_NEXT };
                PackedDescriptor { addr, len, id: if last { id } else { 0 }, flags }
            })
            .collect();
        self.add_descs(&descs);
        id
    }

    /// Allocates buffers of `(len, device_writable)` with random gaps and adds them as one chain.
    pub fn add_alloc_chain(&mut self, lens: &[(u32, bool)]) -> (u16, Vec<Buf>) {
        let bufs: Vec<(u64, u32, bool)> = lens.iter().map(|&(len, w)| (self.alloc(len), len, w)).collect();
        let id = self.add_chain(&bufs);
        (id, bufs.iter().map(|&(addr, len, _)| Buf::new(addr, len)).collect())
    }

    /// Writes an indirect table of `bufs` at `table` and adds one INDIRECT descriptor for it.
    pub fn add_indirect_chain(&mut self, table: u64, bufs: &[(u64, u32, bool)]) -> u16 {
        for (i, &(addr, len, writable)) in bufs.iter().enumerate() {
            let d = PackedDescriptor { addr, len, id: 0, flags: if writable { VIRTQ_DESC_F_WRITE } else { 0 } };
            self.write_bytes(table + DESC_SIZE * i as u64, &d.to_le_bytes());
        }
        let id = self.take_id(1);
        let len = DESC_SIZE as u32 * bufs.len() as u32;
        self.add_descs(&[PackedDescriptor { addr: table, len, id, flags: VIRTQ_DESC_F_INDIRECT }]);
        id
    }

    /// Raw: writes `descs` (any content) at the next positions as one buffer, the AVAIL/USED
    /// flags of each position's lap added; `publish` makes it available.
    pub fn add_descs(&mut self, descs: &[PackedDescriptor]) {
        let head = self.next_avail;
        let mut index = head;
        for (i, d) in descs.iter().enumerate() {
            let lap = if index & WRAP != 0 { VIRTQ_DESC_F_AVAIL } else { VIRTQ_DESC_F_USED };
            let d = PackedDescriptor { flags: d.flags | lap, ..*d };
            if i == 0 {
                // The head's flags go last (`publish`): until then the buffer is not available.
                self.write_desc(index & !WRAP, PackedDescriptor { flags: self.desc_at(index & !WRAP).flags, ..d });
                self.unpublished.push((index & !WRAP, d.flags));
            } else {
                self.write_desc(index & !WRAP, d);
            }
            index = advance(index, 1, self.size);
        }
        self.next_avail = index;
    }

    /// Makes the buffers added since the last call available (their heads' flags, in order).
    pub fn publish(&mut self) {
        fence(Ordering::Release);
        for (position, flags) in std::mem::take(&mut self.unpublished) {
            self.write_bytes(self.desc_gpa(position) + 14, &flags.to_le_bytes());
        }
    }

    /// The next used descriptor, `(buffer id, len)`, if the device wrote one.
    pub fn take_used(&mut self) -> Option<(u16, u32)> {
        let position = self.next_used & !WRAP;
        let d = self.desc_at(position);
        let wrap = self.next_used & WRAP != 0;
        if (d.flags & VIRTQ_DESC_F_AVAIL != 0) != wrap || (d.flags & VIRTQ_DESC_F_USED != 0) != wrap {
            return None;
        }
        let slots = self.slots_of.remove(&d.id).expect("a used id the driver handed out");
        self.next_used = advance(self.next_used, slots, self.size);
        Some((d.id, d.len))
    }

    /// Sets the driver's event suppression structure: `flags` (ENABLE/DISABLE/DESC) and, for
    /// DESC, the position | wrap counter << 15 to be notified at.
    pub fn set_driver_event(&self, flags: u16, off_wrap: u16) {
        self.write_bytes(self.driver_event, &off_wrap.to_le_bytes());
        self.write_bytes(self.driver_event + 2, &flags.to_le_bytes());
    }

    /// The device's event suppression structure: `(off_wrap, flags)`.
    pub fn device_event(&self) -> (u16, u16) {
        let b = self.read_bytes(self.device_event, 4);
        (u16::from_le_bytes([b[0], b[1]]), u16::from_le_bytes([b[2], b[3]]))
    }

    /// Raw: the descriptor at `position`.
    pub fn desc_at(&self, position: u16) -> PackedDescriptor {
        let b = self.read_bytes(self.desc_gpa(position), 16);
        PackedDescriptor::from_le_bytes(b.try_into().expect("16 bytes"))
    }

    /// Raw: writes the descriptor at `position` (any content, for malformed rings).
    pub fn write_desc(&self, position: u16, d: PackedDescriptor) {
        self.write_bytes(self.desc_gpa(position), &d.to_le_bytes());
    }

    pub fn write_bytes(&self, gpa: u64, bytes: &[u8]) {
        self.mem.write_bytes(gpa, bytes).expect("mock write inside guest memory");
    }

    pub fn read_bytes(&self, gpa: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        self.mem.read_bytes(gpa, &mut out).expect("mock read inside guest memory");
        out
    }

    fn desc_gpa(&self, position: u16) -> u64 {
        self.desc + DESC_SIZE * u64::from(position)
    }

    /// A buffer id not outstanding, noting that it takes `slots` descriptors.
    fn take_id(&mut self, slots: u16) -> u16 {
        while self.slots_of.contains_key(&self.next_id) {
            self.next_id = (self.next_id + 1) % self.size;
        }
        let id = self.next_id;
        self.next_id = (self.next_id + 1) % self.size;
        self.slots_of.insert(id, slots);
        id
    }
}
