//! A minimal level-triggered epoll instance: register fds with a `u64` token, wait for events.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Readable (level-triggered).
pub const READABLE: u32 = libc::EPOLLIN as u32;
/// Watched but with no events: the fd stays registered and wakes nobody (EPOLLERR/EPOLLHUP
/// are still reported by the kernel).
pub const NOTHING: u32 = 0;

/// One ready fd as reported by `wait`.
#[derive(Clone, Copy, Debug)]
pub struct Ready {
    pub token: u64,
    pub events: u32,
}

impl Ready {
    /// The fd reported an error or hang-up.
    pub fn failed(&self) -> bool {
        self.events & (libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0
    }
}

#[derive(Debug)]
pub struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    pub fn new() -> std::io::Result<Epoll> {
        // SAFETY: plain syscall; the fd it returns is owned right below.
        let raw = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh fd owned by nobody else.
        Ok(Epoll {
            fd: unsafe { OwnedFd::from_raw_fd(raw) },
        })
    }

    pub fn add(&self, fd: RawFd, events: u32, token: u64) -> std::io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, events, token)
    }

    pub fn modify(&self, fd: RawFd, events: u32, token: u64) -> std::io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, events, token)
    }

    pub fn delete(&self, fd: RawFd) -> std::io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0)
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, token: u64) -> std::io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call (ignored for DEL).
        if unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut ev) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits for events (`timeout_ms` -1 = forever, 0 = just look) and appends them to `out`.
    /// EINTR is returned as an empty wait.
    pub fn wait(&self, timeout_ms: i32, out: &mut Vec<Ready>) -> std::io::Result<()> {
        const MAX_EVENTS: usize = 8;
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; MAX_EVENTS];
        // SAFETY: the kernel writes at most MAX_EVENTS entries into `events`, which has that many.
        let n = unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                events.as_mut_ptr(),
                MAX_EVENTS as i32,
                timeout_ms,
            )
        };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            return if err.raw_os_error() == Some(libc::EINTR) {
                Ok(())
            } else {
                Err(err)
            };
        }
        out.extend(events[..n as usize].iter().map(|e| Ready {
            token: e.u64,
            events: e.events,
        }));
        Ok(())
    }
}
