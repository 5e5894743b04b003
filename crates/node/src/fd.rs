//! Plain fd housekeeping for the control plane and tests: closing, counting.

use std::os::fd::RawFd;

use crate::sys_error::SysError;

/// Closes an fd the caller owns. `EINTR` still closed it on Linux, so it is not an error.
pub fn close_fd(fd: RawFd) -> Result<(), SysError> {
    // SAFETY: closing an fd has no memory effects; ownership is the caller's promise.
    if unsafe { libc::close(fd) } < 0 {
        let err = SysError::last("close");
        if err.errno != libc::EINTR {
            return Err(err);
        }
    }
    Ok(())
}

/// Number of fds open in this process (entries of /proc/self/fd, minus the one reading it).
pub fn open_fd_count() -> Result<usize, SysError> {
    let dir = std::fs::read_dir("/proc/self/fd").map_err(|e| SysError::from_io("opendir", &e))?;
    Ok(dir.count().saturating_sub(1))
}
