//! UNIX stream sockets for vhost-user: listen on a path, connect to one, accept, peer credentials.

use std::ffi::CString;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::sys_error::{check, SysError};
use crate::transport_error::TransportError;

/// How many pending connections the kernel queues before `accept`.
const LISTEN_BACKLOG: libc::c_int = 16;

/// Identity of the process at the other end, as the kernel recorded it at `connect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCredentials {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
}

/// Creates a non-blocking listening socket (CLOEXEC) bound to `path` with permissions `mode`.
/// An existing socket file nobody listens on (left by a crashed process) is replaced; a live
/// socket or a file of any other kind is refused.
pub fn listen_unix(path: &str, mode: u32) -> Result<OwnedFd, TransportError> {
    let addr = socket_address(path, "bind")?;
    remove_stale_socket(path)?;
    let fd = new_socket(libc::SOCK_NONBLOCK)?;
    let (sockaddr, len) = addr;
    // SAFETY: `sockaddr` is a fully initialised sockaddr_un and `len` does not exceed its size.
    check(
        unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sockaddr as *const _ as *const libc::sockaddr,
                len,
            )
        },
        "bind",
    )?;
    // Permissions are set before `listen`: until then every connect is refused, so no peer can
    // slip in while the file still has the umask's permissions.
    let c_path = CString::new(path).map_err(|_| TransportError::InvalidPath {
        path: path.into(),
        syscall: "bind",
    })?;
    // SAFETY: `c_path` is a valid NUL-terminated string.
    check(
        unsafe { libc::chmod(c_path.as_ptr(), mode as libc::mode_t) },
        "chmod",
    )?;
    // SAFETY: plain syscall on a socket we own.
    check(
        unsafe { libc::listen(fd.as_raw_fd(), LISTEN_BACKLOG) },
        "listen",
    )?;
    Ok(fd)
}

/// Connects to the socket at `path`. Never waits: a missing path (`ENOENT`), nobody listening
/// (`ECONNREFUSED`) or a full backlog (`EAGAIN`) is reported at once so the caller can retry.
/// The returned socket is blocking and CLOEXEC.
pub fn connect_unix(path: &str) -> Result<OwnedFd, TransportError> {
    let (sockaddr, len) = socket_address(path, "connect")?;
    let fd = new_socket(libc::SOCK_NONBLOCK)?;
    // SAFETY: `sockaddr` is a fully initialised sockaddr_un and `len` does not exceed its size.
    check(
        unsafe {
            libc::connect(
                fd.as_raw_fd(),
                &sockaddr as *const _ as *const libc::sockaddr,
                len,
            )
        },
        "connect",
    )?;
    set_blocking(fd.as_fd())?;
    Ok(fd)
}

/// Accepts one pending connection as a blocking, CLOEXEC socket; `None` when none is pending.
pub fn accept_connection(listener: BorrowedFd<'_>) -> Result<Option<OwnedFd>, TransportError> {
    // SAFETY: null address pointers are allowed by accept4 when the peer address is not wanted.
    let ret = unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC,
        )
    };
    if ret < 0 {
        let err = SysError::last("accept4");
        return match err.errno {
            libc::EAGAIN | libc::EINTR | libc::ECONNABORTED => Ok(None),
            _ => Err(err.into()),
        };
    }
    // SAFETY: accept4 returned a new fd that nothing else owns.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(ret) }))
}

/// `SO_PEERCRED` of a connected socket.
pub fn peer_credentials(fd: BorrowedFd<'_>) -> Result<PeerCredentials, TransportError> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` is a writable ucred and `len` is its size.
    check(
        unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERCRED,
                &mut cred as *mut _ as *mut libc::c_void,
                &mut len,
            )
        },
        "getsockopt",
    )?;
    Ok(PeerCredentials {
        pid: cred.pid,
        uid: cred.uid,
        gid: cred.gid,
    })
}

/// Clears `O_NONBLOCK`, so reads on the socket wait for data.
pub fn set_blocking(fd: BorrowedFd<'_>) -> Result<(), TransportError> {
    // SAFETY: fcntl F_GETFL/F_SETFL on a valid fd has no memory effects.
    let flags = check(
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) },
        "fcntl",
    )?;
    if flags & libc::O_NONBLOCK != 0 {
        // SAFETY: as above.
        check(
            unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK) },
            "fcntl",
        )?;
    }
    Ok(())
}

/// Whether the peer has closed its end (or the socket failed), without reading or waiting: the
/// kernel marks this as soon as the peer closes, before any reader thread has noticed.
pub fn peer_hung_up(fd: BorrowedFd<'_>) -> Result<bool, TransportError> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd, timeout 0: poll only reports, it never waits.
    check(unsafe { libc::poll(&mut pfd, 1, 0) }, "poll")?;
    Ok(pfd.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0)
}

/// Shuts both directions down: a thread blocked reading the socket wakes with end-of-file.
pub fn shutdown(fd: BorrowedFd<'_>) -> Result<(), TransportError> {
    // SAFETY: plain syscall on a valid fd.
    let ret = unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_RDWR) };
    match check(ret, "shutdown") {
        // The peer may already have gone; the socket is as shut as it gets.
        Err(e) if e.errno == libc::ENOTCONN => Ok(()),
        other => other.map(|_| ()).map_err(Into::into),
    }
}

fn new_socket(extra_flags: libc::c_int) -> Result<OwnedFd, SysError> {
    // SAFETY: plain syscall.
    let fd = check(
        unsafe {
            libc::socket(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_CLOEXEC | extra_flags,
                0,
            )
        },
        "socket",
    )?;
    // SAFETY: socket returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Builds the `sockaddr_un` for `path`, refusing paths that would be truncated.
fn socket_address(
    path: &str,
    syscall: &'static str,
) -> Result<(libc::sockaddr_un, libc::socklen_t), TransportError> {
    // SAFETY: sockaddr_un is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_bytes();
    // One byte stays zero: the terminating NUL.
    if bytes.is_empty() || bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(TransportError::InvalidPath {
            path: path.into(),
            syscall,
        });
    }
    for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    let len = mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    Ok((addr, len as libc::socklen_t))
}

/// Removes `path` if it is a socket nobody listens on; refuses anything else that exists.
fn remove_stale_socket(path: &str) -> Result<(), TransportError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(SysError::from_io("lstat", &e).into()),
    };
    use std::os::unix::fs::FileTypeExt;
    if !meta.file_type().is_socket() {
        return Err(TransportError::PathNotSocket { path: path.into() });
    }
    match connect_unix(path) {
        Ok(_) => Err(TransportError::PathInUse { path: path.into() }),
        Err(TransportError::Socket(e)) if e.errno == libc::ECONNREFUSED => {
            std::fs::remove_file(path).map_err(|e| SysError::from_io("unlink", &e).into())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::test_support::temp_socket_path;

    #[test]
    fn listen_sets_the_mode_and_refuses_a_live_socket() {
        let path = temp_socket_path("live");
        let _listener = listen_unix(&path, 0o600).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(matches!(
            listen_unix(&path, 0o600),
            Err(TransportError::PathInUse { .. })
        ));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn listen_replaces_a_stale_socket() {
        let path = temp_socket_path("stale");
        drop(listen_unix(&path, 0o600).unwrap());
        let _listener = listen_unix(&path, 0o600).unwrap();
        connect_unix(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn listen_refuses_a_path_that_is_not_a_socket() {
        let path = temp_socket_path("file");
        std::fs::write(&path, b"keep me").unwrap();
        let err = listen_unix(&path, 0o600).unwrap_err();
        assert!(matches!(err, TransportError::PathNotSocket { .. }));
        assert_eq!(err.sys().map(|e| e.errno), Some(libc::EEXIST));
        assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn connect_reports_enoent_and_econnrefused_for_retry() {
        let path = temp_socket_path("absent");
        let errno = |r: Result<OwnedFd, TransportError>| r.unwrap_err().sys().map(|e| e.errno);
        assert_eq!(errno(connect_unix(&path)), Some(libc::ENOENT));
        drop(listen_unix(&path, 0o600).unwrap());
        assert_eq!(errno(connect_unix(&path)), Some(libc::ECONNREFUSED));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn over_long_path_is_refused_before_any_syscall() {
        let path = format!("/tmp/{}", "x".repeat(200));
        assert!(matches!(
            connect_unix(&path),
            Err(TransportError::InvalidPath { .. })
        ));
        assert!(matches!(
            listen_unix(&path, 0o600),
            Err(TransportError::InvalidPath { .. })
        ));
    }
}
