//! Sends one vhost-user message (bytes + fds) without ever waiting on the peer.

use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use crate::message::MAX_FDS;
use crate::sys_error::SysError;
use crate::transport_error::TransportError;

/// Sends `bytes` with `fds` attached to the first byte (SCM_RIGHTS), using
/// `MSG_DONTWAIT | MSG_NOSIGNAL`: a peer that stops reading its replies fills the socket buffer
/// and the send fails with `EAGAIN` instead of blocking the event loop; a gone peer gives `EPIPE`
/// instead of SIGPIPE. After an error part of the message may have been sent: close the connection.
/// The fds stay owned by the caller (the kernel duplicates them into the message).
pub fn send_message(
    socket: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[RawFd],
) -> Result<(), TransportError> {
    if fds.len() > MAX_FDS {
        return Err(TransportError::TooManyFds {
            count: fds.len(),
            max: MAX_FDS,
        });
    }
    if bytes.is_empty() {
        // A zero-byte stream send carries no fds either: nothing would arrive.
        return Err(TransportError::EmptyMessage);
    }
    let mut sent = 0;
    while sent < bytes.len() {
        let attach = if sent == 0 { fds } else { &[] };
        match send_chunk(socket, &bytes[sent..], attach) {
            Ok(n) => sent += n,
            Err(e) if e.errno == libc::EINTR => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// One `sendmsg`; returns how many bytes the kernel took. Attaches at most 28 fds (room of
/// `control`, else `EINVAL`); `send_message` enforces the protocol limit, tests use this to exceed it.
pub(crate) fn send_chunk(
    socket: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[RawFd],
) -> Result<usize, SysError> {
    let mut control = [0u64; 16];
    let fd_bytes = mem::size_of_val(fds);
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    // SAFETY: msghdr is plain old data; all-zero is a valid empty value.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    // SAFETY: CMSG_SPACE is pure arithmetic.
    if unsafe { libc::CMSG_SPACE(fd_bytes as u32) } as usize > mem::size_of_val(&control) {
        return Err(SysError {
            syscall: "sendmsg",
            errno: libc::EINVAL,
        });
    }
    if !fds.is_empty() {
        msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        // SAFETY: CMSG_SPACE is pure arithmetic; it fits `control` (checked above).
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(fd_bytes as u32) } as usize;
        // SAFETY: msg_control/msg_controllen describe `control`, which has room for one header.
        let cmsg = unsafe { &mut *libc::CMSG_FIRSTHDR(&msg) };
        cmsg.cmsg_level = libc::SOL_SOCKET;
        cmsg.cmsg_type = libc::SCM_RIGHTS;
        // SAFETY: CMSG_LEN is pure arithmetic.
        cmsg.cmsg_len = unsafe { libc::CMSG_LEN(fd_bytes as u32) } as usize;
        // SAFETY: CMSG_DATA lies within `control` and has `fd_bytes` of room (CMSG_SPACE above).
        unsafe {
            std::ptr::copy_nonoverlapping(
                fds.as_ptr() as *const u8,
                libc::CMSG_DATA(cmsg),
                fd_bytes,
            );
        }
    }
    // SAFETY: `iov` points at `bytes` (read only by the kernel) and msg_control at `control`.
    let n = unsafe {
        libc::sendmsg(
            socket.as_raw_fd(),
            &msg,
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if n < 0 {
        Err(SysError::last("sendmsg"))
    } else {
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;
    use crate::test_support::{message_bytes, socket_pair};

    #[test]
    fn more_than_max_fds_is_refused() {
        let (front_end, _back_end) = socket_pair();
        let fds = vec![0; MAX_FDS + 1];
        assert!(matches!(
            send_message(front_end.as_fd(), &message_bytes(1, &[]), &fds),
            Err(TransportError::TooManyFds {
                count: 17,
                max: MAX_FDS
            })
        ));
    }

    #[test]
    fn a_peer_that_does_not_read_gets_eagain_not_a_blocked_sender() {
        let (front_end, _back_end) = socket_pair();
        let bytes = message_bytes(1, &[0; 4096]);
        let err = (0..10_000)
            .find_map(|_| send_message(front_end.as_fd(), &bytes, &[]).err())
            .expect("socket buffer never filled");
        assert_eq!(err.sys().map(|e| e.errno), Some(libc::EAGAIN));
    }

    #[test]
    fn a_gone_peer_gives_epipe_not_sigpipe() {
        let (front_end, back_end) = socket_pair();
        drop(back_end);
        let err = send_message(front_end.as_fd(), &message_bytes(1, &[]), &[]).unwrap_err();
        assert_eq!(err.sys().map(|e| e.errno), Some(libc::EPIPE));
    }
}
