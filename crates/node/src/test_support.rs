//! Helpers shared by the unit tests: socket pairs, pipes that tell whether an fd was closed,
//! unique temporary socket paths.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A connected pair of blocking UNIX stream sockets: (front-end side, back-end side).
pub fn socket_pair() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two fds socketpair writes.
    let ret = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    assert_eq!(ret, 0, "socketpair");
    // SAFETY: socketpair returned two new fds that nothing else owns.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// A non-blocking pipe (read end, write end). Send dups of the write end, drop the local one:
/// `write_end_closed_everywhere` then tells whether the receiver closed every copy it got.
pub fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two fds pipe2 writes.
    let ret = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) };
    assert_eq!(ret, 0, "pipe2");
    // SAFETY: pipe2 returned two new fds that nothing else owns.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// True when no copy of the pipe's write end is open anywhere (read gives EOF, not EAGAIN).
pub fn write_end_closed_everywhere(read_end: &OwnedFd) -> bool {
    let mut byte = 0u8;
    // SAFETY: reads at most one byte into `byte`.
    let n = unsafe {
        libc::read(
            read_end.as_raw_fd(),
            &mut byte as *mut u8 as *mut libc::c_void,
            1,
        )
    };
    n == 0
}

/// A socket path no other test uses.
pub fn temp_socket_path(tag: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!(
        "{}/vu-node-test-{}-{tag}-{n}.sock",
        std::env::temp_dir().display(),
        std::process::id()
    )
}

/// A vhost-user message: 12-byte header (request, flags = 1 (version), size) + payload.
pub fn message_bytes(request: u32, payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(12 + payload.len());
    bytes.extend_from_slice(&request.to_le_bytes());
    bytes.extend_from_slice(&1u32.to_le_bytes());
    bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// Writes raw bytes to a blocking socket (no fds).
pub fn write_all(socket: &OwnedFd, bytes: &[u8]) {
    // SAFETY: writes `bytes.len()` bytes from `bytes`.
    let n = unsafe {
        libc::write(
            socket.as_raw_fd(),
            bytes.as_ptr() as *const libc::c_void,
            bytes.len(),
        )
    };
    assert_eq!(n, bytes.len() as isize, "write");
}
