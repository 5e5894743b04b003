//! An owned shared mapping of a guest memory file (memfd / hugetlbfs), unmapped on drop.

use std::os::fd::RawFd;
use std::ptr;

use crate::error::MemoryError;

/// A `MAP_SHARED`, read-write mapping of `[offset, offset + len)` of a file.
///
/// Invariant: `base .. base + len` is mapped readable and writable for the whole life of the value
/// (the kernel keeps the mapping alive after the fd is closed). When built with guard pages, the
/// mapping sits inside a larger `PROT_NONE` reservation, so an access just outside it faults.
#[derive(Debug)]
pub struct Mmap {
    /// First byte of the file mapping.
    base: *mut u8,
    /// Length of the file mapping.
    len: usize,
    /// Start and length of everything to unmap on drop (the reservation including guard pages).
    unmap_addr: *mut libc::c_void,
    unmap_len: usize,
}

// SAFETY: the mapping is plain shared memory owned by this value; it has no thread affinity, and
// all accesses to its bytes go through volatile/unaligned copies that tolerate concurrent writers.
unsafe impl Send for Mmap {}
// SAFETY: as above; `&Mmap` only hands out the base pointer and length.
unsafe impl Sync for Mmap {}

/// The system page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size <= 0 {
        4096
    } else {
        size as usize
    }
}

impl Mmap {
    /// Maps `len` bytes of `fd` from `offset` (which must be page aligned), shared and read-write.
    /// With `guard_len > 0` (a page multiple), `guard_len` bytes of `PROT_NONE` surround the mapping.
    pub fn map_shared(fd: RawFd, offset: u64, len: usize, guard_len: usize) -> Result<Mmap, MemoryError> {
        if len == 0 {
            return Err(MemoryError::ZeroSize);
        }
        let file_offset =
            libc::off_t::try_from(offset).map_err(|_| MemoryError::OffsetTooLarge { offset })?;
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        if guard_len == 0 {
            // SAFETY: a fresh mapping at a kernel-chosen address; it replaces nothing.
            let addr = unsafe { libc::mmap(ptr::null_mut(), len, prot, libc::MAP_SHARED, fd, file_offset) };
            if addr == libc::MAP_FAILED {
                return Err(MemoryError::Mmap { len, errno: errno() });
            }
            return Ok(Mmap { base: addr.cast(), len, unmap_addr: addr, unmap_len: len });
        }
        // The kernel rounds the file mapping up to whole pages; the trailing guard starts after that.
        let page = page_size();
        let total = len
            .checked_add(page - 1)
            .map(|l| l & !(page - 1))
            .and_then(|l| l.checked_add(guard_len.checked_mul(2)?))
            .ok_or(MemoryError::Mmap { len, errno: libc::ENOMEM })?;
        // SAFETY: a fresh anonymous PROT_NONE reservation at a kernel-chosen address.
        let reservation = unsafe {
            libc::mmap(
                ptr::null_mut(),
                total,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if reservation == libc::MAP_FAILED {
            return Err(MemoryError::Mmap { len: total, errno: errno() });
        }
        // SAFETY: guard_len < total, so the result stays inside the reservation.
        let inner = unsafe { reservation.cast::<u8>().add(guard_len) };
        // SAFETY: MAP_FIXED replaces only pages of our own reservation: [inner, inner + len) lies
        // inside [reservation, reservation + total) by construction.
        let addr = unsafe { libc::mmap(inner.cast(), len, prot, libc::MAP_SHARED | libc::MAP_FIXED, fd, file_offset) };
        if addr == libc::MAP_FAILED {
            let err = errno();
            // SAFETY: unmapping the reservation we just created and nobody else references.
            unsafe { libc::munmap(reservation, total) };
            return Err(MemoryError::Mmap { len, errno: err });
        }
        Ok(Mmap { base: inner, len, unmap_addr: reservation, unmap_len: total })
    }

    /// First byte of the mapping.
    pub fn as_ptr(&self) -> *mut u8 {
        self.base
    }

    /// Length of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: the range is the mapping (or reservation) this value created and exclusively owns.
        unsafe { libc::munmap(self.unmap_addr, self.unmap_len) };
    }
}

/// The calling thread's errno.
pub(crate) fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}
