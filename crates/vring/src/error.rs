//! Errors of the ring core: one enum for guest memory, one for the virtqueue, one for the dirty log.
//!
//! Variants marked **hostile** can only be caused by a misbehaving (buggy or malicious) driver or
//! front-end: the caller must mark the device broken (virtio `DEVICE_NEEDS_RESET` / close the
//! connection) with one log line, never crash, and keep other devices running.

use std::fmt;

/// Guest memory table and address translation errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryError {
    /// **hostile** (front-end): a region of size zero.
    ZeroSize,
    /// **hostile** (front-end): `base + size` of a region overflows u64 (`what` names the address space).
    RegionOverflow { what: &'static str, base: u64, size: u64 },
    /// **hostile** (front-end): `mmap_offset + memory_size` runs past the end of the file (would SIGBUS).
    RegionBeyondFile { mmap_offset: u64, memory_size: u64, file_size: u64 },
    /// The mmap offset cannot be passed to mmap(2).
    OffsetTooLarge { offset: u64 },
    /// fstat(2) on the region fd failed.
    Fstat { errno: i32 },
    /// mmap(2) failed.
    Mmap { len: usize, errno: i32 },
    /// **hostile** (front-end): two regions overlap in guest-physical or front-end virtual space.
    RegionOverlap { what: &'static str, first: u64, second: u64 },
    /// **hostile** (front-end): more than `MAX_REGIONS` regions.
    TooManyRegions { count: usize, max: usize },
    /// **hostile** (front-end): REM_MEM_REG for a region that is not in the table.
    RegionNotFound { guest_phys_addr: u64, memory_size: u64 },
    /// **hostile** (guest): `[gpa, gpa + len)` is not inside one mapped region (or overflows).
    GpaOutOfRange { gpa: u64, len: u64 },
    /// **hostile** (front-end): a front-end virtual address that no region covers.
    UserAddrOutOfRange { user_addr: u64, len: u64 },
}

impl fmt::Display for MemoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemoryError::ZeroSize => write!(f, "memory region of size 0"),
            MemoryError::RegionOverflow { what, base, size } => {
                write!(f, "memory region {what} {base:#x} + size {size:#x} overflows")
            }
            MemoryError::RegionBeyondFile { mmap_offset, memory_size, file_size } => write!(
                f,
                "memory region mmap_offset {mmap_offset:#x} + size {memory_size:#x} exceeds file size {file_size:#x}"
            ),
            MemoryError::OffsetTooLarge { offset } => write!(f, "mmap offset {offset:#x} too large"),
            MemoryError::Fstat { errno } => write!(f, "fstat of memory region fd failed: errno {errno}"),
            MemoryError::Mmap { len, errno } => write!(f, "mmap of {len:#x} bytes failed: errno {errno}"),
            MemoryError::RegionOverlap { what, first, second } => {
                write!(f, "memory regions at {what} {first:#x} and {second:#x} overlap")
            }
            MemoryError::TooManyRegions { count, max } => write!(f, "{count} memory regions, at most {max} allowed"),
            MemoryError::RegionNotFound { guest_phys_addr, memory_size } => write!(
                f,
                "no memory region at guest address {guest_phys_addr:#x} with size {memory_size:#x}"
            ),
            MemoryError::GpaOutOfRange { gpa, len } => {
                write!(f, "guest range {gpa:#x} + {len:#x} is outside guest memory")
            }
            MemoryError::UserAddrOutOfRange { user_addr, len } => {
                write!(f, "front-end address range {user_addr:#x} + {len:#x} is not in any memory region")
            }
        }
    }
}

impl std::error::Error for MemoryError {}

/// Virtqueue setup and descriptor chain errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueError {
    /// **hostile** (front-end): queue size not in 1..=32768, or for a split ring not a power of
    /// two (virtio 1.2 §2.7).
    InvalidSize { size: u16 },
    /// **hostile** (front-end): a packed ring's avail or used position (SET_VRING_BASE) is not
    /// below the queue size.
    RingIndexOutOfRange { what: &'static str, index: u16, size: u16 },
    /// A packed ring told to start at its start while its first descriptor shows it has moved on
    /// (see `PackedQueue::new`): the front-end lost the ring's position (QEMU 7.2 after a back-end
    /// restart).
    PackedRingPositionLost,
    /// **hostile** (front-end): a ring address violates the alignment of virtio 1.2 §2.7 table 2.2.
    MisalignedRing { ring: &'static str, addr: u64, align: u64 },
    /// **hostile** (front-end): a ring is not entirely inside one guest memory region.
    RingOutOfMemory { ring: &'static str, addr: u64, len: u64 },
    /// **hostile** (guest): avail.idx is more than the queue size ahead of next_avail.
    AvailIdxTooFarAhead { avail_idx: u16, next_avail: u16, size: u16 },
    /// **hostile** (guest): a head or `next` index is not below the table size.
    DescIndexOutOfRange { index: u16, table_len: u32 },
    /// **hostile** (guest): a chain visits more descriptors than the table holds (a loop).
    ChainTooLong { head: u16, max: u32 },
    /// **hostile** (guest): an indirect descriptor inside an indirect table (virtio 1.2 §2.7.5.3.1).
    NestedIndirect { head: u16 },
    /// **hostile** (guest): INDIRECT together with NEXT (virtio 1.2 §2.7.5.3.1).
    IndirectWithNext { head: u16 },
    /// **hostile** (guest): indirect table length 0, not a multiple of 16, or longer than the queue size.
    BadIndirectLen { head: u16, len: u32 },
    /// **hostile** (guest): a device-readable descriptor after a device-writable one (§2.7.4.2).
    ReadableAfterWritable { head: u16 },
    /// **hostile** (guest): a buffer or table outside guest memory.
    Memory { head: u16, source: MemoryError },
    /// Device bug: add_used with a head index not below the queue size.
    UsedHeadOutOfRange { head: u16, size: u16 },
    /// **hostile** (front-end): the used ring's log address (`log_guest_addr`) + ring length overflows.
    UsedLogOverflow { log_addr: u64, len: u64 },
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueError::InvalidSize { size } => {
                write!(f, "queue size {size} is invalid (a split ring: a power of two in 1..=32768; a packed ring: 1..=32768)")
            }
            QueueError::PackedRingPositionLost => f.write_str(
                "packed ring set to start at position 0 of its first lap, but its first descriptor shows it has moved on: the front-end lost \
                 the ring's position (QEMU 7.2 keeps none for a packed ring when the back-end restarts); the device stays down until the \
                 guest's driver resets it (split rings survive back-end restarts)",
            ),
            QueueError::RingIndexOutOfRange { what, index, size } => {
                write!(f, "packed ring {what} position {} (wrap counter {}) is not below queue size {size}", index & 0x7fff, index >> 15)
            }
            QueueError::MisalignedRing { ring, addr, align } => {
                write!(f, "{ring} ring address {addr:#x} is not {align}-byte aligned")
            }
            QueueError::RingOutOfMemory { ring, addr, len } => {
                write!(f, "{ring} ring {addr:#x} + {len:#x} is not inside one guest memory region")
            }
            QueueError::AvailIdxTooFarAhead { avail_idx, next_avail, size } => write!(
                f,
                "avail.idx {avail_idx} is more than queue size {size} ahead of next_avail {next_avail}"
            ),
            QueueError::DescIndexOutOfRange { index, table_len } => {
                write!(f, "descriptor index {index} out of range (table of {table_len})")
            }
            QueueError::ChainTooLong { head, max } => {
                write!(f, "descriptor chain at head {head} longer than {max} (loop?)")
            }
            QueueError::NestedIndirect { head } => write!(f, "nested indirect descriptor in chain at head {head}"),
            QueueError::IndirectWithNext { head } => {
                write!(f, "descriptor with both INDIRECT and NEXT in chain at head {head}")
            }
            QueueError::BadIndirectLen { head, len } => {
                write!(f, "indirect table length {len} invalid in chain at head {head}")
            }
            QueueError::ReadableAfterWritable { head } => {
                write!(f, "device-readable descriptor after a writable one in chain at head {head}")
            }
            QueueError::Memory { head, source } => write!(f, "chain at head {head}: {source}"),
            QueueError::UsedHeadOutOfRange { head, size } => {
                write!(f, "used element head {head} out of range for queue size {size}")
            }
            QueueError::UsedLogOverflow { log_addr, len } => {
                write!(f, "used ring log address {log_addr:#x} + {len:#x} overflows")
            }
        }
    }
}

impl std::error::Error for QueueError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            QueueError::Memory { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Dirty-page log (SET_LOG_BASE) mapping errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirtyLogError {
    /// **hostile** (front-end): a log of size zero.
    ZeroSize,
    /// **hostile** (front-end): `mmap_offset + mmap_size` overflows or does not fit the address space.
    RangeOverflow { mmap_offset: u64, mmap_size: u64 },
    /// **hostile** (front-end): the log runs past the end of its file (mapping it would SIGBUS).
    BeyondFile { mmap_offset: u64, mmap_size: u64, file_size: u64 },
    /// fstat(2) on the log fd failed.
    Fstat { errno: i32 },
    /// mmap(2) of the log failed.
    Map(MemoryError),
}

impl fmt::Display for DirtyLogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DirtyLogError::ZeroSize => write!(f, "dirty log of size 0"),
            DirtyLogError::RangeOverflow { mmap_offset, mmap_size } => {
                write!(f, "dirty log mmap_offset {mmap_offset:#x} + size {mmap_size:#x} overflows")
            }
            DirtyLogError::BeyondFile { mmap_offset, mmap_size, file_size } => write!(
                f,
                "dirty log mmap_offset {mmap_offset:#x} + size {mmap_size:#x} exceeds file size {file_size:#x}"
            ),
            DirtyLogError::Fstat { errno } => write!(f, "fstat of dirty log fd failed: errno {errno}"),
            DirtyLogError::Map(e) => write!(f, "dirty log: {e}"),
        }
    }
}

impl std::error::Error for DirtyLogError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DirtyLogError::Map(e) => Some(e),
            _ => None,
        }
    }
}
