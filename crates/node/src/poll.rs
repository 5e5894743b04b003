//! Waiting for an fd to become readable.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use crate::sys_error::SysError;

/// Waits up to `timeout` (forever if `None`) for any of `fds` to be readable (or hung up);
/// returns one flag per fd, all false on timeout. An fd that is not open is `EBADF`.
pub fn poll_readable(
    fds: &[BorrowedFd<'_>],
    timeout: Option<Duration>,
) -> Result<Vec<bool>, SysError> {
    let mut pollfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let wait_ms = match deadline {
            None => -1,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                // Round up so a sub-millisecond remainder still waits instead of spinning.
                left.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int
            }
        };
        // SAFETY: `pollfds` is a live array of `pollfds.len()` entries.
        let n = unsafe { libc::poll(pollfds.as_mut_ptr(), pollfds.len() as libc::nfds_t, wait_ms) };
        if n >= 0 {
            if pollfds.iter().any(|p| p.revents & libc::POLLNVAL != 0) {
                return Err(SysError {
                    syscall: "poll",
                    errno: libc::EBADF,
                });
            }
            return Ok(pollfds.iter().map(|p| p.revents != 0).collect());
        }
        let err = SysError::last("poll");
        if err.errno != libc::EINTR {
            return Err(err);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;
    use crate::eventfd::{eventfd_create, eventfd_write};

    #[test]
    fn times_out_then_sees_readable() {
        let fd = eventfd_create().unwrap();
        assert_eq!(
            poll_readable(&[fd.as_fd()], Some(Duration::from_millis(10))).unwrap(),
            vec![false]
        );
        eventfd_write(fd.as_fd(), 1).unwrap();
        assert_eq!(
            poll_readable(&[fd.as_fd()], Some(Duration::ZERO)).unwrap(),
            vec![true]
        );
    }
}
