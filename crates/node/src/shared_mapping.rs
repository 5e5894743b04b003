//! A read-write `MAP_SHARED` mapping of an fd (memfd, hugetlbfs file), unmapped on drop.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;

use crate::sys_error::SysError;

#[derive(Debug)]
pub struct SharedMapping {
    addr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; nothing about it is tied to a thread.
unsafe impl Send for SharedMapping {}

impl SharedMapping {
    /// Maps `len` bytes of `fd` from `offset` (page aligned, as mmap requires).
    pub fn map(fd: BorrowedFd<'_>, offset: u64, len: usize) -> Result<Self, SysError> {
        let offset = libc::off_t::try_from(offset).map_err(|_| SysError {
            syscall: "mmap",
            errno: libc::EINVAL,
        })?;
        // SAFETY: a fresh mapping chosen by the kernel (addr NULL) aliases no Rust object.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                offset,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(SysError::last("mmap"));
        }
        let addr = NonNull::new(addr as *mut u8).ok_or(SysError {
            syscall: "mmap",
            errno: libc::EINVAL,
        })?;
        Ok(SharedMapping { addr, len })
    }

    /// Start of the mapping; valid for `size()` bytes until this value is dropped.
    pub fn as_ptr(&self) -> *mut u8 {
        self.addr.as_ptr()
    }

    pub fn size(&self) -> usize {
        self.len
    }
}

impl Drop for SharedMapping {
    fn drop(&mut self) {
        // SAFETY: exactly the range mmap returned; nothing borrows it past this value's life.
        unsafe { libc::munmap(self.addr.as_ptr() as *mut libc::c_void, self.len) };
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;
    use crate::memfd::memfd_create;

    #[test]
    fn two_mappings_of_one_memfd_share_bytes() {
        let fd = memfd_create("vu-test", 2 * 4096).unwrap();
        let a = SharedMapping::map(fd.as_fd(), 0, 2 * 4096).unwrap();
        let b = SharedMapping::map(fd.as_fd(), 4096, 4096).unwrap();
        // SAFETY: offset 4096 + 10 is inside `a` (8192 bytes); offset 10 inside `b` (4096 bytes).
        unsafe {
            a.as_ptr().add(4096 + 10).write(0xab);
            assert_eq!(b.as_ptr().add(10).read(), 0xab);
        }
    }

    #[test]
    fn mapping_zero_bytes_is_einval() {
        let fd = memfd_create("vu-test", 4096).unwrap();
        assert_eq!(
            SharedMapping::map(fd.as_fd(), 0, 0).unwrap_err().errno,
            libc::EINVAL
        );
    }
}
