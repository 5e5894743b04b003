//! Reads one vhost-user message at a time from a blocking socket, with the fds attached to it.

use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::message::{payload_size, Message, HEADER_SIZE, MAX_FDS, MAX_PAYLOAD_SIZE};
use crate::sys_error::SysError;
use crate::transport_error::TransportError;

/// Room for one SCM_RIGHTS control message of `MAX_FDS` fds, 8-byte aligned as `cmsghdr` needs.
/// CMSG_SPACE(16 * 4) = 16 + 64 bytes on 64-bit Linux.
type ControlBuffer = [u64; 16];

/// Reads the next message: the 12-byte header, then exactly the payload size it announces.
/// Returns `Ok(None)` on end-of-file between messages. Fds are received with `MSG_CMSG_CLOEXEC`
/// wherever in the message the sender attached them; on any error every fd received so far is
/// closed. A peer that stops mid-message blocks the caller until it sends more or closes.
pub fn read_message(socket: BorrowedFd<'_>) -> Result<Option<Message>, TransportError> {
    let mut fds = Vec::new();
    let mut header = [0u8; HEADER_SIZE];
    let got = read_exact(socket, &mut header, &mut fds)?;
    if got == 0 && fds.is_empty() {
        return Ok(None);
    }
    if got < HEADER_SIZE {
        return Err(TransportError::ClosedMidMessage {
            received: got,
            expected: HEADER_SIZE,
        });
    }
    let size = payload_size(&header);
    if size > MAX_PAYLOAD_SIZE {
        return Err(TransportError::PayloadTooLarge {
            size,
            max: MAX_PAYLOAD_SIZE,
        });
    }
    let total = HEADER_SIZE + size as usize;
    let mut bytes = vec![0u8; total];
    bytes[..HEADER_SIZE].copy_from_slice(&header);
    let got = read_exact(socket, &mut bytes[HEADER_SIZE..], &mut fds)?;
    if got < size as usize {
        return Err(TransportError::ClosedMidMessage {
            received: HEADER_SIZE + got,
            expected: total,
        });
    }
    Ok(Some(Message { bytes, fds }))
}

/// Fills `buf` unless end-of-file comes first; returns how many bytes arrived.
fn read_exact(
    socket: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> Result<usize, TransportError> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = recv_with_fds(socket, &mut buf[filled..], fds)?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

/// One `recvmsg`: appends received fds to `fds` (owned from here on) and returns the byte count.
fn recv_with_fds(
    socket: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> Result<usize, TransportError> {
    let mut control: ControlBuffer = [0; 16];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain old data; all-zero is a valid empty value.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    // SAFETY: CMSG_SPACE is pure arithmetic.
    msg.msg_controllen =
        unsafe { libc::CMSG_SPACE((MAX_FDS * mem::size_of::<libc::c_int>()) as u32) } as usize;
    debug_assert!(msg.msg_controllen <= mem::size_of::<ControlBuffer>());
    let n = loop {
        // SAFETY: `iov` points into `buf` (len bytes writable) and `msg_control` into `control`
        // (msg_controllen bytes writable, checked above); both outlive the call.
        let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        let err = SysError::last("recvmsg");
        if err.errno != libc::EINTR {
            return Err(err.into());
        }
    };
    take_fds(&msg, fds);
    if msg.msg_flags & libc::MSG_CTRUNC != 0 || fds.len() > MAX_FDS {
        // Dropping `fds` (by the caller returning the error) closes every fd that arrived.
        return Err(TransportError::FdsTruncated {
            received: fds.len(),
        });
    }
    Ok(n)
}

/// Moves the SCM_RIGHTS fds of a received message into `fds`.
fn take_fds(msg: &libc::msghdr, fds: &mut Vec<OwnedFd>) {
    // SAFETY: `msg` was filled by recvmsg; CMSG_FIRSTHDR/CMSG_NXTHDR only return headers that lie
    // within msg_control[..msg_controllen] (the kernel sets msg_controllen to what it wrote).
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(msg) };
    while !cmsg.is_null() {
        // SAFETY: `cmsg` is non-null and within the control buffer (see above).
        let header = unsafe { &*cmsg };
        if header.cmsg_level == libc::SOL_SOCKET && header.cmsg_type == libc::SCM_RIGHTS {
            // SAFETY: CMSG_LEN is pure arithmetic.
            let data_len = header.cmsg_len as usize - unsafe { libc::CMSG_LEN(0) } as usize;
            let count = data_len / mem::size_of::<libc::c_int>();
            // SAFETY: the kernel wrote `count` ints after the header; read unaligned to be safe.
            let data = unsafe { libc::CMSG_DATA(cmsg) } as *const libc::c_int;
            for i in 0..count {
                // SAFETY: `i < count`, within the data the kernel wrote.
                let raw = unsafe { data.add(i).read_unaligned() };
                // SAFETY: SCM_RIGHTS installed `raw` as a new fd in this process; nothing else owns it.
                fds.push(unsafe { OwnedFd::from_raw_fd(raw) });
            }
        }
        // SAFETY: as for CMSG_FIRSTHDR.
        cmsg = unsafe { libc::CMSG_NXTHDR(msg, cmsg) };
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::{AsFd, AsRawFd};
    use std::time::Duration;

    use super::*;
    use crate::eventfd::{eventfd_create, eventfd_read, eventfd_write};
    use crate::message_sender::{send_chunk, send_message};
    use crate::test_support::{
        message_bytes, pipe, socket_pair, write_all, write_end_closed_everywhere,
    };

    #[test]
    fn message_with_two_eventfds_arrives_whole_and_the_fds_work() {
        let (front_end, back_end) = socket_pair();
        let (kick, call) = (eventfd_create().unwrap(), eventfd_create().unwrap());
        let bytes = message_bytes(12, &[7; 8]);
        send_message(
            front_end.as_fd(),
            &bytes,
            &[kick.as_raw_fd(), call.as_raw_fd()],
        )
        .unwrap();

        let message = read_message(back_end.as_fd()).unwrap().unwrap();
        assert_eq!(message.bytes, bytes);
        assert_eq!(message.fds.len(), 2);
        eventfd_write(message.fds[0].as_fd(), 3).unwrap();
        assert_eq!(eventfd_read(kick.as_fd()).unwrap(), Some(3));
        eventfd_write(call.as_fd(), 5).unwrap();
        assert_eq!(eventfd_read(message.fds[1].as_fd()).unwrap(), Some(5));
    }

    #[test]
    fn received_fds_are_cloexec() {
        let (front_end, back_end) = socket_pair();
        let fd = eventfd_create().unwrap();
        send_message(front_end.as_fd(), &message_bytes(1, &[]), &[fd.as_raw_fd()]).unwrap();
        let message = read_message(back_end.as_fd()).unwrap().unwrap();
        // SAFETY: F_GETFD on a valid fd has no memory effects.
        let flags = unsafe { libc::fcntl(message.fds[0].as_raw_fd(), libc::F_GETFD) };
        assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
    }

    #[test]
    fn message_cut_at_every_offset_arrives_whole() {
        let bytes = message_bytes(5, &(0..20).collect::<Vec<u8>>());
        for cut in 1..bytes.len() {
            let (front_end, back_end) = socket_pair();
            write_all(&front_end, &bytes[..cut]);
            let reader =
                std::thread::spawn(move || read_message(back_end.as_fd()).unwrap().unwrap());
            std::thread::sleep(Duration::from_millis(2));
            write_all(&front_end, &bytes[cut..]);
            assert_eq!(reader.join().unwrap().bytes, bytes, "cut at {cut}");
        }
    }

    #[test]
    fn consecutive_messages_in_one_write_are_split_at_their_boundaries() {
        let (front_end, back_end) = socket_pair();
        let first = message_bytes(1, &[1, 2, 3, 4]);
        let second = message_bytes(2, &[]);
        write_all(&front_end, &[first.clone(), second.clone()].concat());
        assert_eq!(
            read_message(back_end.as_fd()).unwrap().unwrap().bytes,
            first
        );
        assert_eq!(
            read_message(back_end.as_fd()).unwrap().unwrap().bytes,
            second
        );
    }

    #[test]
    fn end_of_file_between_messages_is_none() {
        let (front_end, back_end) = socket_pair();
        drop(front_end);
        assert!(read_message(back_end.as_fd()).unwrap().is_none());
    }

    #[test]
    fn end_of_file_mid_message_is_an_error() {
        let (front_end, back_end) = socket_pair();
        write_all(&front_end, &message_bytes(1, &[0; 8])[..15]);
        drop(front_end);
        match read_message(back_end.as_fd()) {
            Err(TransportError::ClosedMidMessage {
                received: 15,
                expected: 20,
            }) => {}
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn oversized_payload_is_refused_unread_and_its_fds_closed() {
        let (front_end, back_end) = socket_pair();
        let (read_end, write_end) = pipe();
        let mut header = message_bytes(1, &[]);
        header[8..12].copy_from_slice(&(MAX_PAYLOAD_SIZE + 1).to_le_bytes());
        send_message(front_end.as_fd(), &header, &[write_end.as_raw_fd()]).unwrap();
        write_all(&front_end, b"next");
        drop(write_end);

        match read_message(back_end.as_fd()) {
            Err(TransportError::PayloadTooLarge { size, .. }) => {
                assert_eq!(size, MAX_PAYLOAD_SIZE + 1)
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(write_end_closed_everywhere(&read_end));
        let mut rest = [0u8; 4];
        // SAFETY: reads at most 4 bytes into `rest`.
        let n = unsafe {
            libc::read(
                back_end.as_raw_fd(),
                rest.as_mut_ptr() as *mut libc::c_void,
                4,
            )
        };
        assert_eq!((n, &rest), (4, b"next"), "payload must be left unread");
    }

    #[test]
    fn largest_payload_is_accepted() {
        let (front_end, back_end) = socket_pair();
        let bytes = message_bytes(1, &vec![9; MAX_PAYLOAD_SIZE as usize]);
        let writer = std::thread::spawn(move || write_all(&front_end, &bytes));
        let message = read_message(back_end.as_fd()).unwrap().unwrap();
        writer.join().unwrap();
        assert_eq!(message.bytes.len(), HEADER_SIZE + MAX_PAYLOAD_SIZE as usize);
    }

    #[test]
    fn too_many_fds_truncate_and_every_arrived_fd_is_closed() {
        let (front_end, back_end) = socket_pair();
        let (read_end, write_end) = pipe();
        let copies = vec![write_end.as_raw_fd(); MAX_FDS + 1];
        send_chunk(front_end.as_fd(), &message_bytes(1, &[]), &copies).unwrap();
        drop(write_end);

        match read_message(back_end.as_fd()) {
            Err(TransportError::FdsTruncated { received }) => assert!(received <= MAX_FDS),
            other => panic!("unexpected {other:?}"),
        }
        assert!(write_end_closed_everywhere(&read_end));
    }

    #[test]
    fn fds_attached_to_the_payload_are_received_too() {
        let (front_end, back_end) = socket_pair();
        let fd = eventfd_create().unwrap();
        let bytes = message_bytes(1, &[1; 8]);
        write_all(&front_end, &bytes[..HEADER_SIZE]);
        send_chunk(front_end.as_fd(), &bytes[HEADER_SIZE..], &[fd.as_raw_fd()]).unwrap();
        let message = read_message(back_end.as_fd()).unwrap().unwrap();
        assert_eq!((message.bytes, message.fds.len()), (bytes, 1));
    }
}
