//! Anonymous shared memory files: what a front-end hands over as guest RAM.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::sys_error::{check, SysError};

/// A CLOEXEC memfd of `size` bytes (zero-filled). `name` only shows up in /proc.
pub fn memfd_create(name: &str, size: u64) -> Result<OwnedFd, SysError> {
    let c_name = CString::new(name).map_err(|_| SysError {
        syscall: "memfd_create",
        errno: libc::EINVAL,
    })?;
    // SAFETY: `c_name` is a valid NUL-terminated string.
    let fd = check(
        unsafe { libc::memfd_create(c_name.as_ptr(), libc::MFD_CLOEXEC) },
        "memfd_create",
    )?;
    // SAFETY: memfd_create returned a new fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let size = libc::off_t::try_from(size).map_err(|_| SysError {
        syscall: "ftruncate",
        errno: libc::EFBIG,
    })?;
    // SAFETY: plain syscall on our fd.
    check(
        unsafe { libc::ftruncate(fd.as_raw_fd(), size) },
        "ftruncate",
    )?;
    Ok(fd)
}
