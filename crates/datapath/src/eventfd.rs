//! eventfd helpers: the worker's own control eventfd, and signalling / draining the kick and call
//! eventfds the front-end handed over (those are shared, so their file flags are never changed).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Creates a non-blocking, close-on-exec eventfd.
pub fn new_eventfd() -> std::io::Result<OwnedFd> {
    // SAFETY: plain syscall; the fd it returns is owned right below.
    let raw = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Adds 1 to the eventfd counter (a call interrupt, or the control signal). A full counter
/// (EAGAIN) already means "signalled", so errors are ignored.
pub fn signal(fd: &OwnedFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64, as eventfd requires.
    unsafe { libc::write(fd.as_raw_fd(), &one as *const u64 as *const libc::c_void, 8) };
}

/// Resets the eventfd counter. Only call it after epoll reported the fd readable: the front-end's
/// kick fds may be blocking, and a readable eventfd never blocks on read.
pub fn drain(fd: &OwnedFd) {
    let mut value: u64 = 0;
    // SAFETY: reads 8 bytes into a live u64, as eventfd requires.
    unsafe {
        libc::read(
            fd.as_raw_fd(),
            &mut value as *mut u64 as *mut libc::c_void,
            8,
        )
    };
}
