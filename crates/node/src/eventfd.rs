//! eventfd helpers: the kick/call notifications of vhost-user (and the acceptor's stop signal).

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::sys_error::{check, SysError};

/// A new eventfd, counter 0, `EFD_CLOEXEC | EFD_NONBLOCK`.
pub fn eventfd_create() -> Result<OwnedFd, SysError> {
    // SAFETY: plain syscall.
    let fd = check(
        unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) },
        "eventfd",
    )?;
    // SAFETY: eventfd returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds `value` to the counter.
pub fn eventfd_write(fd: BorrowedFd<'_>, value: u64) -> Result<(), SysError> {
    let bytes = value.to_ne_bytes();
    loop {
        // SAFETY: writes 8 bytes from `bytes`, which has 8.
        let n = unsafe {
            libc::write(
                fd.as_raw_fd(),
                bytes.as_ptr() as *const libc::c_void,
                bytes.len(),
            )
        };
        if n >= 0 {
            return Ok(());
        }
        let err = SysError::last("write");
        if err.errno != libc::EINTR {
            return Err(err);
        }
    }
}

/// Reads and resets the counter; `None` when it is zero (`EAGAIN` on a non-blocking eventfd).
pub fn eventfd_read(fd: BorrowedFd<'_>) -> Result<Option<u64>, SysError> {
    let mut bytes = [0u8; 8];
    loop {
        // SAFETY: reads at most 8 bytes into `bytes`, which has 8.
        let n = unsafe {
            libc::read(
                fd.as_raw_fd(),
                bytes.as_mut_ptr() as *mut libc::c_void,
                bytes.len(),
            )
        };
        if n == 8 {
            return Ok(Some(u64::from_ne_bytes(bytes)));
        }
        if n >= 0 {
            // Only a non-eventfd can return a short read.
            return Err(SysError {
                syscall: "read",
                errno: libc::EINVAL,
            });
        }
        let err = SysError::last("read");
        match err.errno {
            libc::EINTR => continue,
            libc::EAGAIN => return Ok(None),
            _ => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn writes_add_up_and_a_read_resets() {
        let fd = eventfd_create().unwrap();
        assert_eq!(eventfd_read(fd.as_fd()).unwrap(), None);
        eventfd_write(fd.as_fd(), 2).unwrap();
        eventfd_write(fd.as_fd(), 40).unwrap();
        assert_eq!(eventfd_read(fd.as_fd()).unwrap(), Some(42));
        assert_eq!(eventfd_read(fd.as_fd()).unwrap(), None);
    }
}
