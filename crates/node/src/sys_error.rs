//! A failed system call: which call, and the errno it left.

use std::fmt;
use std::io;

/// A system call that returned an error. `errno` is the positive C value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SysError {
    pub syscall: &'static str,
    pub errno: i32,
}

impl SysError {
    /// Captures `errno` right after `syscall` failed.
    pub fn last(syscall: &'static str) -> Self {
        let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
        SysError { syscall, errno }
    }

    /// Wraps an `io::Error` from std (e.g. `read_dir`) under the name of the call that failed.
    pub fn from_io(syscall: &'static str, err: &io::Error) -> Self {
        SysError {
            syscall,
            errno: err.raw_os_error().unwrap_or(libc::EIO),
        }
    }

    /// The symbolic errno name (`"EAGAIN"`), as callers branch on it.
    pub fn errno_name(&self) -> &'static str {
        errno_name(self.errno)
    }
}

impl fmt::Display for SysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // std renders "No such file or directory (os error 2)"; the errno name replaces the number.
        let text = io::Error::from_raw_os_error(self.errno).to_string();
        let text = text.split(" (os error").next().unwrap_or_default();
        write!(
            f,
            "{} failed: {} ({})",
            self.syscall,
            text,
            self.errno_name()
        )
    }
}

/// Converts a `-1`-on-error return value, capturing errno.
pub fn check(ret: libc::c_int, syscall: &'static str) -> Result<libc::c_int, SysError> {
    if ret < 0 {
        Err(SysError::last(syscall))
    } else {
        Ok(ret)
    }
}

/// Symbolic names of the errnos the transport and helpers can meet; any other errno is `"UNKNOWN"`
/// (the numeric `errno` is always reported next to it).
pub fn errno_name(errno: i32) -> &'static str {
    match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EEXIST => "EEXIST",
        libc::ENOTDIR => "ENOTDIR",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::ENOSPC => "ENOSPC",
        libc::EPIPE => "EPIPE",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOTSOCK => "ENOTSOCK",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::ECONNABORTED => "ECONNABORTED",
        libc::ECONNRESET => "ECONNRESET",
        libc::ENOBUFS => "ENOBUFS",
        libc::ENOTCONN => "ENOTCONN",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ECONNREFUSED => "ECONNREFUSED",
        _ => "UNKNOWN",
    }
}
