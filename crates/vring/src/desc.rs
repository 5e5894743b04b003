//! Descriptors and descriptor chains of the split virtqueue (virtio 1.2 §2.7.5), including
//! indirect descriptor tables (§2.7.5.3).
//!
//! Threat model: the descriptor table is written by the guest, possibly while we read it. Each
//! descriptor is copied out once and only the copy is used; indices are bounded by the table size,
//! chain length by the queue size (loops), buffers are checked against guest memory.

use crate::error::{MemoryError, QueueError};
use crate::memory::GuestMemory;

/// Size of one descriptor in the table.
pub const DESC_SIZE: u64 = 16;
/// flags: the chain continues at `next`.
pub const VIRTQ_DESC_F_NEXT: u16 = 1;
/// flags: the buffer is device write-only (otherwise device read-only).
pub const VIRTQ_DESC_F_WRITE: u16 = 2;
/// flags: the buffer holds an indirect descriptor table.
pub const VIRTQ_DESC_F_INDIRECT: u16 = 4;

/// `struct virtq_desc`, decoded from its little-endian form.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Descriptor {
    pub addr: u64,
    pub len: u32,
    pub flags: u16,
    pub next: u16,
}

impl Descriptor {
    /// Decodes the 16-byte little-endian wire form.
    pub fn from_le_bytes(b: [u8; 16]) -> Descriptor {
        let mut addr = [0u8; 8];
        addr.copy_from_slice(&b[0..8]);
        Descriptor {
            addr: u64::from_le_bytes(addr),
            len: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
            flags: u16::from_le_bytes([b[12], b[13]]),
            next: u16::from_le_bytes([b[14], b[15]]),
        }
    }

    /// Encodes the 16-byte little-endian wire form.
    pub fn to_le_bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0..8].copy_from_slice(&self.addr.to_le_bytes());
        b[8..12].copy_from_slice(&self.len.to_le_bytes());
        b[12..14].copy_from_slice(&self.flags.to_le_bytes());
        b[14..16].copy_from_slice(&self.next.to_le_bytes());
        b
    }
}

/// One guest buffer of a chain: `[addr, addr + len)` in guest-physical space, checked to be
/// inside guest memory (possibly spanning adjacent regions).
#[derive(Clone, Copy, Debug, Eq)]
pub struct Buf {
    pub addr: u64,
    pub len: u32,
    /// Where the buffer is mapped in the memory table the chain was popped with (see
    /// `DescChain::memory_id`), found when its descriptor was checked: building iovecs then needs
    /// no second region lookup per buffer. 0 if it spans adjacent regions.
    host: usize,
}

impl Buf {
    /// A buffer whose host address is looked up when it is used.
    pub fn new(addr: u64, len: u32) -> Buf {
        Buf { addr, len, host: 0 }
    }
}

/// Buffers are the guest's `[addr, addr + len)`, wherever they were mapped.
impl PartialEq for Buf {
    fn eq(&self, other: &Buf) -> bool {
        self.addr == other.addr && self.len == other.len
    }
}

/// A validated descriptor chain: device-readable buffers, then device-writable ones.
/// Zero-length descriptors are dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DescChain {
    /// The id to return in the used ring: the head index (split), or the buffer id of the chain's
    /// last descriptor (packed).
    pub head: u16,
    readable: Vec<Buf>,
    writable: Vec<Buf>,
    /// Bytes of `readable` and of `writable`, summed as buffers are pushed: asked for every
    /// frame, often twice.
    readable_bytes: u64,
    writable_bytes: u64,
    /// The queue's next-available index when the chain was popped (`Virtqueue::rewind_to`).
    pub popped_at: u16,
    /// Ring entries the chain took: one avail-ring entry (split), or its descriptors (packed).
    pub slots: u16,
    /// `GuestMemory::id` of the table the buffers' host addresses were found in: they are used
    /// only with a table of that id, which keeps them mapped (a chain used with another table, after
    /// a memory update, has its buffers looked up again).
    memory_id: u64,
}

impl DescChain {
    /// A chain of the given writable buffers (their host addresses looked up when used), for
    /// tests that build chains by hand.
    pub fn of_writable(head: u16, bufs: &[Buf]) -> DescChain {
        let writable_bytes = bufs.iter().map(|b| u64::from(b.len)).sum();
        DescChain { head, writable: bufs.to_vec(), writable_bytes, ..DescChain::default() }
    }

    /// The device-readable buffers, in chain order.
    pub fn readable(&self) -> &[Buf] {
        &self.readable
    }

    /// The device-writable buffers, in chain order.
    pub fn writable(&self) -> &[Buf] {
        &self.writable
    }

    /// Total bytes of the device-readable buffers.
    pub fn readable_len(&self) -> u64 {
        self.readable_bytes
    }

    /// Total bytes of the device-writable buffers.
    pub fn writable_len(&self) -> u64 {
        self.writable_bytes
    }

    /// The writable (`writable = true`) or readable buffers.
    fn bufs(&self, writable: bool) -> &[Buf] {
        if writable {
            &self.writable
        } else {
            &self.readable
        }
    }

    /// Appends iovecs for the writable (`writable = true`) or readable buffers, for readv/writev.
    pub fn iovecs(&self, mem: &GuestMemory, writable: bool, out: &mut Vec<libc::iovec>) -> Result<(), MemoryError> {
        self.iovecs_skip(mem, writable, 0, out)
    }

    /// As `iovecs`, leaving out the first `skip` bytes (e.g. the virtio-net header).
    pub fn iovecs_skip(
        &self,
        mem: &GuestMemory,
        writable: bool,
        skip: u64,
        out: &mut Vec<libc::iovec>,
    ) -> Result<(), MemoryError> {
        let mut skip = skip;
        let mapped_here = self.memory_id == mem.id();
        for b in self.bufs(writable) {
            let len = u64::from(b.len);
            if skip >= len {
                skip -= len;
                continue;
            }
            if mapped_here && b.host != 0 {
                // `push` found all `len` bytes mapped at `host` in this table; skip < len.
                out.push(libc::iovec { iov_base: (b.host + skip as usize) as *mut libc::c_void, iov_len: (len - skip) as usize });
            } else {
                mem.iovecs(b.addr + skip, (len - skip) as usize, out)?;
            }
            skip = 0;
        }
        Ok(())
    }

    /// Copies the first bytes of the readable buffers into `out`; returns how many were copied
    /// (less than `out.len()` if the chain is shorter).
    pub fn copy_from_readable(&self, mem: &GuestMemory, out: &mut [u8]) -> Result<usize, MemoryError> {
        let mut done = 0;
        for b in &self.readable {
            if done == out.len() {
                break;
            }
            let n = (out.len() - done).min(b.len as usize);
            mem.read_bytes(b.addr, &mut out[done..done + n])?;
            done += n;
        }
        Ok(done)
    }

    /// Copies `data` into the start of the writable buffers (noting the write); returns how many
    /// bytes fitted.
    pub fn copy_to_writable(&self, mem: &GuestMemory, data: &[u8]) -> Result<usize, MemoryError> {
        let mut done = 0;
        for b in &self.writable {
            if done == data.len() {
                break;
            }
            let n = (data.len() - done).min(b.len as usize);
            mem.write_bytes(b.addr, &data[done..done + n])?;
            done += n;
        }
        Ok(done)
    }

    /// Notes (for dirty-page logging) that the first `len` bytes of the writable buffers were
    /// written, e.g. by a readv() into this chain's iovecs.
    pub fn note_written(&self, mem: &GuestMemory, len: u64) {
        let mut left = len;
        for b in &self.writable {
            if left == 0 {
                break;
            }
            let n = left.min(u64::from(b.len));
            mem.note_write(b.addr, n as usize);
            left -= n;
        }
    }

    /// Empties the chain for buffers checked against `mem` (its storage is reused).
    pub(crate) fn start(&mut self, mem: &GuestMemory) {
        self.readable.clear();
        self.writable.clear();
        self.readable_bytes = 0;
        self.writable_bytes = 0;
        self.memory_id = mem.id();
    }

    /// Adds one buffer; enforces §2.7.4.2 (device-writable descriptors come after readable ones).
    pub(crate) fn push(&mut self, mem: &GuestMemory, d: &Descriptor) -> Result<(), QueueError> {
        let head = self.head;
        let writable = d.flags & VIRTQ_DESC_F_WRITE != 0;
        if !writable && !self.writable.is_empty() {
            return Err(QueueError::ReadableAfterWritable { head });
        }
        if d.len == 0 {
            return Ok(());
        }
        let host = mem.locate(d.addr, u64::from(d.len)).map_err(|source| QueueError::Memory { head, source })?;
        let buf = Buf { addr: d.addr, len: d.len, host: host.map_or(0, |h| h as usize) };
        // No overflow: at most 2 × queue size buffers (two tables) of < 4 GiB each.
        if writable {
            self.writable.push(buf);
            self.writable_bytes += u64::from(d.len);
        } else {
            self.readable.push(buf);
            self.readable_bytes += u64::from(d.len);
        }
        Ok(())
    }
}

/// Where a descriptor table is read from.
#[derive(Clone, Copy)]
pub(crate) enum DescTable {
    /// Host address of a table checked to be mapped for all the entries it is read with (the
    /// queue's own table, or an indirect table inside one region).
    Host(*const u8),
    /// Guest-physical address of a table that spans adjacent regions: read through `GuestMemory`.
    Guest(u64),
}

/// Copies descriptor `index` of split-layout `table` (of `table_len` entries) out of guest memory.
fn read_desc(mem: &GuestMemory, head: u16, table: DescTable, index: u16, table_len: u32) -> Result<Descriptor, QueueError> {
    Ok(Descriptor::from_le_bytes(read_raw_desc(mem, head, table, index, table_len)?))
}

/// The 16 bytes of descriptor `index` of `table` (of `table_len` entries), copied once.
pub(crate) fn read_raw_desc(mem: &GuestMemory, head: u16, table: DescTable, index: u16, table_len: u32) -> Result<[u8; 16], QueueError> {
    if u32::from(index) >= table_len {
        return Err(QueueError::DescIndexOutOfRange { index, table_len });
    }
    let offset = u64::from(index) * DESC_SIZE;
    let raw = match table {
        // SAFETY: index < table_len and the table is mapped for table_len entries (DescTable::Host);
        // one unaligned copy: the descriptor is read once and only the copy is used.
        DescTable::Host(base) => unsafe { std::ptr::read_unaligned(base.add(offset as usize).cast::<[u8; 16]>()) },
        DescTable::Guest(gpa) => {
            let mut raw = [0u8; 16];
            let at = gpa.checked_add(offset).ok_or(QueueError::Memory {
                head,
                source: MemoryError::GpaOutOfRange { gpa, len: DESC_SIZE },
            })?;
            mem.read_bytes(at, &mut raw).map_err(|source| QueueError::Memory { head, source })?;
            raw
        }
    };
    Ok(raw)
}

/// Walks the chain starting at `head` in the queue's descriptor `table` (`size` entries) into
/// `chain`, whose previous contents are replaced (its buffers' storage is reused).
pub(crate) fn walk_chain(mem: &GuestMemory, table: DescTable, size: u16, head: u16, chain: &mut DescChain) -> Result<(), QueueError> {
    chain.head = head;
    chain.slots = 1;
    chain.start(mem);
    let max = u32::from(size);
    let mut index = head;
    let mut visited = 0u32;
    loop {
        // §2.7.5.3.1: a chain is never longer than the queue size; more means a loop.
        visited += 1;
        if visited > max {
            return Err(QueueError::ChainTooLong { head, max });
        }
        let d = read_desc(mem, head, table, index, max)?;
        if d.flags & VIRTQ_DESC_F_INDIRECT != 0 {
            // §2.7.5.3.1: "MUST NOT set both VIRTQ_DESC_F_INDIRECT and VIRTQ_DESC_F_NEXT".
            if d.flags & VIRTQ_DESC_F_NEXT != 0 {
                return Err(QueueError::IndirectWithNext { head });
            }
            return walk_indirect(mem, &d, size, chain);
        }
        chain.push(mem, &d)?;
        if d.flags & VIRTQ_DESC_F_NEXT == 0 {
            return Ok(());
        }
        index = d.next;
    }
}

/// The indirect table of `len` bytes at `addr` in the chain at `head`, checked: a whole number of
/// descriptors, at most queue `size` of them (no chain is longer than the queue, §2.7.5.3.1),
/// inside guest memory. Returns where to read it and its number of entries.
pub(crate) fn indirect_table(mem: &GuestMemory, head: u16, addr: u64, len: u32, size: u16) -> Result<(DescTable, u32), QueueError> {
    let entries = len / DESC_SIZE as u32;
    if len == 0 || len % DESC_SIZE as u32 != 0 || entries > u32::from(size) {
        return Err(QueueError::BadIndirectLen { head, len });
    }
    // Usually inside one region: read it in place; a table across adjacent regions is read
    // through GuestMemory, descriptor by descriptor.
    let table = match mem.locate(addr, u64::from(len)).map_err(|source| QueueError::Memory { head, source })? {
        Some(host) => DescTable::Host(host),
        None => DescTable::Guest(addr),
    };
    Ok((table, entries))
}

/// Walks the indirect table described by `indirect` (§2.7.5.3.2), appending to `chain`.
fn walk_indirect(mem: &GuestMemory, indirect: &Descriptor, size: u16, chain: &mut DescChain) -> Result<(), QueueError> {
    let head = chain.head;
    let (table, entries) = indirect_table(mem, head, indirect.addr, indirect.len, size)?;
    let mut index = 0u16;
    let mut visited = 0u32;
    loop {
        visited += 1;
        if visited > entries {
            return Err(QueueError::ChainTooLong { head, max: entries });
        }
        let d = read_desc(mem, head, table, index, entries)?;
        // §2.7.5.3.1: "MUST NOT set the VIRTQ_DESC_F_INDIRECT flag within an indirect descriptor".
        if d.flags & VIRTQ_DESC_F_INDIRECT != 0 {
            return Err(QueueError::NestedIndirect { head });
        }
        chain.push(mem, &d)?;
        if d.flags & VIRTQ_DESC_F_NEXT == 0 {
            return Ok(());
        }
        index = d.next;
    }
}
