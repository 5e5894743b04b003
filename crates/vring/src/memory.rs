//! Guest memory: the region table handed over by SET_MEM_TABLE / ADD_MEM_REG and the only way
//! the device touches guest memory.
//!
//! Threat model: every guest-physical address, length and region description comes from the guest
//! or the front-end and is hostile. Every range is checked with overflow-checked arithmetic against
//! one mapped region (or, for buffers, a run of adjacent regions) before a host pointer is formed.

use std::fmt;
use std::mem::{align_of, size_of, MaybeUninit};
use std::os::fd::RawFd;
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::MemoryError;
use crate::mmap::{page_size, Mmap};

/// Most regions a front-end may register (QEMU's VHOST_USER_MAX_RAM_SLOTS).
pub const MAX_REGIONS: usize = 509;

/// One entry of a vhost-user memory table (`VhostUserMemoryRegion`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RegionSpec {
    /// Guest-physical address of the first byte.
    pub guest_phys_addr: u64,
    /// Size in bytes.
    pub memory_size: u64,
    /// The front-end's virtual address of the first byte (ring addresses are given in this space).
    pub userspace_addr: u64,
    /// Offset of the first byte in the region's fd.
    pub mmap_offset: u64,
}

/// Plain-data types that any byte pattern is a valid value of, so they can be copied out of
/// (hostile) guest memory.
///
/// # Safety
/// Implementors must be `Copy`, contain no padding-sensitive invariants, no pointers or references,
/// and every bit pattern of `size_of::<Self>()` bytes must be a valid value.
pub unsafe trait ByteValued: Copy {}
// SAFETY: integers and byte arrays accept every bit pattern.
unsafe impl ByteValued for u8 {}
// SAFETY: as above.
unsafe impl ByteValued for u16 {}
// SAFETY: as above.
unsafe impl ByteValued for u32 {}
// SAFETY: as above.
unsafe impl ByteValued for u64 {}
// SAFETY: as above.
unsafe impl<const N: usize> ByteValued for [u8; N] {}

/// Receives every guest-physical range the device writes (the dirty-page log seam for live
/// migration). Called by `GuestMemory::note_write`.
pub trait WriteLog: Send + Sync {
    /// `[gpa, gpa + len)` was (or is about to be) written by the device.
    fn log_write(&self, gpa: u64, len: usize);
}

/// A region of guest memory mapped into this process.
#[derive(Debug)]
pub struct MemoryRegion {
    spec: RegionSpec,
    /// Host address of guest-physical `spec.guest_phys_addr`; `memory_size` bytes from it are mapped.
    host_base: *mut u8,
    /// Keeps the mapping alive; `host_base` points into it.
    _mapping: Mmap,
}

// SAFETY: `host_base` points into `_mapping`, which is Send; the region is immutable after creation.
unsafe impl Send for MemoryRegion {}
// SAFETY: shared access only reads `spec`/`host_base`; the guest bytes themselves are accessed
// with copies that tolerate concurrent writers.
unsafe impl Sync for MemoryRegion {}

impl MemoryRegion {
    /// Maps a region: fstat()s `fd` and refuses a region whose `mmap_offset + memory_size` exceeds
    /// the file size (a short memfd would SIGBUS later), then mmaps `[mmap_offset, +memory_size)`
    /// shared and read-write (the offset is page-aligned down; the delta is skipped).
    /// Does not take ownership of `fd`: the caller closes it, the mapping stays valid.
    pub fn map(spec: RegionSpec, fd: RawFd) -> Result<MemoryRegion, MemoryError> {
        Self::map_guarded(spec, fd, 0)
    }

    /// As `map`, with `guard_pages` pages of `PROT_NONE` on both sides of the mapping, so that an
    /// out-of-bounds access faults (used by the mock guest; costs address space only).
    pub fn map_guarded(spec: RegionSpec, fd: RawFd, guard_pages: usize) -> Result<MemoryRegion, MemoryError> {
        if spec.memory_size == 0 {
            return Err(MemoryError::ZeroSize);
        }
        let checked_end = |what, base: u64| {
            base.checked_add(spec.memory_size)
                .ok_or(MemoryError::RegionOverflow { what, base, size: spec.memory_size })
        };
        checked_end("guest_phys_addr", spec.guest_phys_addr)?;
        checked_end("userspace_addr", spec.userspace_addr)?;
        let file_end = checked_end("mmap_offset", spec.mmap_offset)?;

        let mut stat = MaybeUninit::<libc::stat>::uninit();
        // SAFETY: fstat writes at most one `struct stat` into the buffer we own.
        if unsafe { libc::fstat(fd, stat.as_mut_ptr()) } != 0 {
            return Err(MemoryError::Fstat { errno: crate::mmap::errno() });
        }
        // SAFETY: fstat returned 0, so it initialised the struct.
        let file_size = u64::try_from(unsafe { stat.assume_init() }.st_size).unwrap_or(0);
        if file_end > file_size {
            return Err(MemoryError::RegionBeyondFile {
                mmap_offset: spec.mmap_offset,
                memory_size: spec.memory_size,
                file_size,
            });
        }

        let page = page_size() as u64;
        let aligned_offset = spec.mmap_offset & !(page - 1);
        let delta = spec.mmap_offset - aligned_offset;
        let map_len = spec
            .memory_size
            .checked_add(delta)
            .and_then(|l| usize::try_from(l).ok())
            .ok_or(MemoryError::Mmap { len: usize::MAX, errno: libc::ENOMEM })?;
        let mapping = Mmap::map_shared(fd, aligned_offset, map_len, guard_pages.saturating_mul(page as usize))?;
        // SAFETY: delta < page <= map_len, so the result is inside the mapping.
        let host_base = unsafe { mapping.as_ptr().add(delta as usize) };
        Ok(MemoryRegion { spec, host_base, _mapping: mapping })
    }

    /// The table entry this region was mapped from.
    pub fn spec(&self) -> RegionSpec {
        self.spec
    }

    fn gpa_end(&self) -> u64 {
        // Checked in map_guarded.
        self.spec.guest_phys_addr + self.spec.memory_size
    }

    /// Host pointer for `[gpa, gpa + len)` if the whole range is inside this region.
    fn host_range(&self, gpa: u64, len: u64) -> Option<*mut u8> {
        let offset = gpa.checked_sub(self.spec.guest_phys_addr)?;
        let end = offset.checked_add(len)?;
        if offset >= self.spec.memory_size || end > self.spec.memory_size {
            return None;
        }
        // SAFETY: offset < memory_size, and memory_size bytes from host_base are mapped.
        Some(unsafe { self.host_base.add(offset as usize) })
    }
}

/// The guest's memory: regions sorted by guest-physical address, non-overlapping both in
/// guest-physical and in front-end virtual address space. Cheap to clone (regions are shared).
#[derive(Clone, Default)]
pub struct GuestMemory {
    regions: Vec<Arc<MemoryRegion>>,
    log: Option<Arc<dyn WriteLog>>,
    /// Names this set of mappings (0: none): a host address found in a table is valid in any
    /// table of the same id (clones, the same regions with another write log), which keeps the
    /// regions mapped. See `DescChain::memory_id`.
    id: u64,
}

/// The next `GuestMemory::id`.
static NEXT_MEMORY_ID: AtomicU64 = AtomicU64::new(1);

impl fmt::Debug for GuestMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuestMemory")
            .field("regions", &self.regions().collect::<Vec<_>>())
            .field("write_log", &self.log.is_some())
            .finish()
    }
}

impl GuestMemory {
    /// Builds a memory table; rejects overlapping regions and more than `MAX_REGIONS` (zero sizes
    /// were already refused by `MemoryRegion::map`).
    pub fn new(regions: Vec<MemoryRegion>) -> Result<GuestMemory, MemoryError> {
        Self::from_shared(regions.into_iter().map(Arc::new).collect(), None)
    }

    /// A memory table with no regions: every translation fails.
    pub fn empty() -> GuestMemory {
        GuestMemory::default()
    }

    /// This table plus `region` (ADD_MEM_REG).
    pub fn with_region_added(&self, region: MemoryRegion) -> Result<GuestMemory, MemoryError> {
        let mut regions = self.regions.clone();
        regions.push(Arc::new(region));
        Self::from_shared(regions, self.log.clone())
    }

    /// This table without the region matching `spec` in guest address, size and front-end address
    /// (REM_MEM_REG).
    pub fn with_region_removed(&self, spec: &RegionSpec) -> Result<GuestMemory, MemoryError> {
        let same = |r: &Arc<MemoryRegion>| {
            r.spec.guest_phys_addr == spec.guest_phys_addr
                && r.spec.memory_size == spec.memory_size
                && r.spec.userspace_addr == spec.userspace_addr
        };
        let index = self.regions.iter().position(same).ok_or(MemoryError::RegionNotFound {
            guest_phys_addr: spec.guest_phys_addr,
            memory_size: spec.memory_size,
        })?;
        let mut regions = self.regions.clone();
        regions.remove(index);
        Ok(GuestMemory { regions, log: self.log.clone(), id: NEXT_MEMORY_ID.fetch_add(1, Ordering::Relaxed) })
    }

    /// The same regions, with every device write reported to `log` (dirty-page logging).
    pub fn with_write_log(&self, log: Arc<dyn WriteLog>) -> GuestMemory {
        GuestMemory { regions: self.regions.clone(), log: Some(log), id: self.id }
    }

    /// The same regions, without a write log.
    pub fn without_write_log(&self) -> GuestMemory {
        GuestMemory { regions: self.regions.clone(), log: None, id: self.id }
    }

    fn from_shared(
        mut regions: Vec<Arc<MemoryRegion>>,
        log: Option<Arc<dyn WriteLog>>,
    ) -> Result<GuestMemory, MemoryError> {
        if regions.len() > MAX_REGIONS {
            return Err(MemoryError::TooManyRegions { count: regions.len(), max: MAX_REGIONS });
        }
        // Sizes were overflow-checked by MemoryRegion::map_guarded, so the ends below cannot wrap.
        regions.sort_by_key(|r| r.spec.guest_phys_addr);
        for pair in regions.windows(2) {
            if pair[0].gpa_end() > pair[1].spec.guest_phys_addr {
                return Err(MemoryError::RegionOverlap {
                    what: "guest_phys_addr",
                    first: pair[0].spec.guest_phys_addr,
                    second: pair[1].spec.guest_phys_addr,
                });
            }
        }
        let mut by_user: Vec<RegionSpec> = regions.iter().map(|r| r.spec).collect();
        by_user.sort_by_key(|s| s.userspace_addr);
        for pair in by_user.windows(2) {
            if pair[0].userspace_addr + pair[0].memory_size > pair[1].userspace_addr {
                return Err(MemoryError::RegionOverlap {
                    what: "userspace_addr",
                    first: pair[0].userspace_addr,
                    second: pair[1].userspace_addr,
                });
            }
        }
        Ok(GuestMemory { regions, log, id: NEXT_MEMORY_ID.fetch_add(1, Ordering::Relaxed) })
    }

    /// Names this set of mappings (see the field).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The table entries, sorted by guest-physical address.
    pub fn regions(&self) -> impl Iterator<Item = RegionSpec> + '_ {
        self.regions.iter().map(|r| r.spec)
    }

    /// The region containing `gpa`, if any.
    fn region_of(&self, gpa: u64) -> Option<&MemoryRegion> {
        let after = self.regions.partition_point(|r| r.spec.guest_phys_addr <= gpa);
        let region = self.regions.get(after.checked_sub(1)?)?;
        (gpa < region.gpa_end()).then_some(&**region)
    }

    /// Host pointer for `[gpa, gpa + len)`, which must lie inside ONE region.
    pub fn translate(&self, gpa: u64, len: usize) -> Result<*mut u8, MemoryError> {
        let out_of_range = MemoryError::GpaOutOfRange { gpa, len: len as u64 };
        self.region_of(gpa).and_then(|r| r.host_range(gpa, len as u64)).ok_or(out_of_range)
    }

    /// Guest-physical address of the front-end virtual range `[user_addr, user_addr + len)`, which
    /// must lie inside one region (SET_VRING_ADDR gives ring addresses in front-end VA space).
    pub fn user_to_guest(&self, user_addr: u64, len: usize) -> Result<u64, MemoryError> {
        let len = len as u64;
        self.regions
            .iter()
            .find_map(|r| {
                let offset = user_addr.checked_sub(r.spec.userspace_addr)?;
                let end = offset.checked_add(len)?;
                (offset < r.spec.memory_size && end <= r.spec.memory_size)
                    .then(|| r.spec.guest_phys_addr + offset)
            })
            .ok_or(MemoryError::UserAddrOutOfRange { user_addr, len })
    }

    /// Copies a `T` out of guest memory at `gpa` (any alignment; read once, as a single copy).
    pub fn read_obj<T: ByteValued>(&self, gpa: u64) -> Result<T, MemoryError> {
        let src = self.translate(gpa, size_of::<T>())?;
        if src as usize % align_of::<T>() == 0 {
            // SAFETY: translate checked that size_of::<T>() bytes at src are mapped, src is aligned,
            // and any bit pattern is a valid T (ByteValued).
            Ok(unsafe { ptr::read_volatile(src.cast::<T>()) })
        } else {
            // SAFETY: as above, without the alignment requirement.
            Ok(unsafe { ptr::read_unaligned(src.cast::<T>()) })
        }
    }

    /// Stores `v` into guest memory at `gpa` (any alignment) and notes the write.
    pub fn write_obj<T: ByteValued>(&self, gpa: u64, v: T) -> Result<(), MemoryError> {
        self.write_obj_logged_at(gpa, v, gpa)
    }

    /// Stores `v` at `gpa` and notes the write at `log_gpa` instead: the used ring is logged at
    /// the address the front-end gave for it (SET_VRING_ADDR `log_guest_addr`, VHOST_VRING_F_LOG).
    pub fn write_obj_logged_at<T: ByteValued>(&self, gpa: u64, v: T, log_gpa: u64) -> Result<(), MemoryError> {
        let dst = self.translate(gpa, size_of::<T>())?;
        if dst as usize % align_of::<T>() == 0 {
            // SAFETY: translate checked that size_of::<T>() bytes at dst are mapped read-write and
            // dst is aligned for T.
            unsafe { ptr::write_volatile(dst.cast::<T>(), v) };
        } else {
            // SAFETY: as above, without the alignment requirement.
            unsafe { ptr::write_unaligned(dst.cast::<T>(), v) };
        }
        self.note_write(log_gpa, size_of::<T>());
        Ok(())
    }

    /// Checks, as `check_range`, that `[gpa, gpa + len)` is guest memory; returns its host
    /// address if one region holds it all, None if it spans adjacent regions. Inlined: every
    /// descriptor of every frame comes here, and one region nearly always holds its buffer.
    #[inline(always)]
    pub fn locate(&self, gpa: u64, len: u64) -> Result<Option<*mut u8>, MemoryError> {
        match self.region_of(gpa).and_then(|r| r.host_range(gpa, len)) {
            Some(host) => Ok(Some(host)),
            None => self.locate_across(gpa, len),
        }
    }

    /// `locate` for a range not inside one region.
    #[cold]
    #[inline(never)]
    fn locate_across(&self, gpa: u64, len: u64) -> Result<Option<*mut u8>, MemoryError> {
        let (mut first, mut count) = (ptr::null_mut(), 0);
        self.for_each_segment(gpa, len, |host, _| {
            if count == 0 {
                first = host;
            }
            count += 1;
        })?;
        Ok((count == 1).then_some(first))
    }

    /// Checks that `[gpa, gpa + len)` is covered by guest memory (possibly by adjacent regions).
    pub fn check_range(&self, gpa: u64, len: u64) -> Result<(), MemoryError> {
        self.for_each_segment(gpa, len, |_, _| ())
    }

    /// Calls `f(host_ptr, seg_len)` for each piece of `[gpa, gpa + len)`, split at region
    /// boundaries; fails (before calling `f` at all) if any byte is outside guest memory.
    fn for_each_segment(&self, gpa: u64, len: u64, mut f: impl FnMut(*mut u8, usize)) -> Result<(), MemoryError> {
        // The common case, one region holds it all: one lookup.
        if let Some(host) = self.region_of(gpa).and_then(|r| r.host_range(gpa, len)) {
            f(host, len as usize);
            return Ok(());
        }
        let out_of_range = MemoryError::GpaOutOfRange { gpa, len };
        let end = gpa.checked_add(len).ok_or(out_of_range.clone())?;
        // First pass validates, second pass hands out the pieces: no partial effects on error.
        for pass in 0..2 {
            let mut cur = gpa;
            while cur < end {
                let region = self.region_of(cur).ok_or(out_of_range.clone())?;
                let seg_len = end.min(region.gpa_end()) - cur;
                if pass == 1 {
                    let host = region.host_range(cur, seg_len).ok_or(out_of_range.clone())?;
                    f(host, seg_len as usize);
                }
                cur += seg_len;
            }
        }
        Ok(())
    }

    /// Appends iovecs covering `[gpa, gpa + len)`, split at region boundaries (a buffer may span
    /// adjacent regions). Appends nothing on error.
    pub fn iovecs(&self, gpa: u64, len: usize, out: &mut Vec<libc::iovec>) -> Result<(), MemoryError> {
        self.for_each_segment(gpa, len as u64, |host, seg_len| {
            out.push(libc::iovec { iov_base: host.cast(), iov_len: seg_len })
        })
    }

    /// Copies guest bytes at `gpa` into `buf` (the range may span adjacent regions).
    pub fn read_bytes(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let mut done = 0;
        self.for_each_segment(gpa, buf.len() as u64, |host, seg_len| {
            // SAFETY: for_each_segment checked `seg_len` bytes at `host` are mapped; the pieces sum
            // to buf.len(), so `done + seg_len <= buf.len()`; guest memory never aliases `buf`.
            unsafe { ptr::copy_nonoverlapping(host, buf.as_mut_ptr().add(done), seg_len) };
            done += seg_len;
        })
    }

    /// Copies `buf` into guest memory at `gpa` (the range may span adjacent regions); notes the write.
    pub fn write_bytes(&self, gpa: u64, buf: &[u8]) -> Result<(), MemoryError> {
        let mut done = 0;
        self.for_each_segment(gpa, buf.len() as u64, |host, seg_len| {
            // SAFETY: as in read_bytes, with the copy in the other direction into mapped RW memory.
            unsafe { ptr::copy_nonoverlapping(buf.as_ptr().add(done), host, seg_len) };
            done += seg_len;
        })?;
        self.note_write(gpa, buf.len());
        Ok(())
    }

    /// The single seam for dirty-page logging: every write the device makes into guest memory
    /// (write_obj, used-ring updates, bytes a readv() put into RX buffers) calls this with the
    /// guest-physical range written.
    pub fn note_write(&self, gpa: u64, len: usize) {
        if let Some(log) = &self.log {
            log.log_write(gpa, len);
        }
    }
}
