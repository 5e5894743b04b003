//! Where a queue pair's frames go to and come from: a TAP queue fd, or a port of the userspace L2
//! switch (frames copied between guests). The worker only ever talks to `Port`.
//!
//! Frames on a port carry the virtio-net header in front (the TAP was opened with IFF_VNET_HDR),
//! so guest checksum/GSO metadata passes through untouched.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use vring::{VirtioNetHdr, VIRTIO_NET_HDR_LEN};

use crate::switch::{skip_bytes, Frame, Sender, Switch, SwitchPort};

/// Most iovecs one readv/writev accepts (Linux UIO_MAXIOV).
pub const MAX_IOVECS: usize = 1024;

/// A scratch list of iovecs, reused frame after frame by the thread that owns it.
#[derive(Default)]
pub struct IoVecs(pub Vec<libc::iovec>);

// SAFETY: the iovecs only ever point into guest memory mappings (shared memory owned by a
// `GuestMemory`, which is Send + Sync, kept alive by the same worker) or into a heap byte owned by
// the same worker; the list is refilled before every use, so moving it to the worker thread moves
// no pointer that is dereferenced on another thread.
unsafe impl Send for IoVecs {}

/// What a switch port's sender reuses from frame to frame (no allocation per frame).
#[derive(Default)]
pub struct SwitchScratch {
    /// The frame's iovecs without the virtio-net header; refilled for every frame.
    frame_iov: IoVecs,
    /// This thread's forwarding state for the port (published by `Port::end_batch`).
    sender: Sender,
}

/// Result of asking the port for one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// A frame was taken from the port and this many bytes (header included) were written into
    /// the iovecs. A frame longer than the iovecs is cut short (the rest is lost).
    Frame(usize),
    /// Nothing queued right now.
    Empty,
}

pub enum Port {
    /// One queue fd of a TAP / macvtap device (non-blocking).
    Tap(Arc<OwnedFd>),
    /// A switch port. TX frames are forwarded by the sending worker; RX frames are written into
    /// the guest by whichever thread forwards them (see switch::GuestRx), never by this worker.
    Switch { switch: Arc<Switch>, port: Arc<SwitchPort>, vnet_hdr_len: usize, scratch: RefCell<SwitchScratch> },
}

impl Port {
    /// A port of `switch` whose frames carry a `vnet_hdr_len`-byte virtio-net header.
    pub fn switch(switch: Arc<Switch>, port: Arc<SwitchPort>, vnet_hdr_len: usize) -> Port {
        Port::Switch { switch, port, vnet_hdr_len, scratch: RefCell::default() }
    }
}

impl Port {
    /// The fd to watch for readability (a frame is waiting); None for a switch port, which
    /// delivers RX frames itself.
    pub fn readiness_fd(&self) -> Option<RawFd> {
        match self {
            Port::Tap(fd) => Some(fd.as_raw_fd()),
            Port::Switch { .. } => None,
        }
    }

    /// Sends one frame (header + data) gathered from `iov` (at most MAX_IOVECS entries).
    pub fn send(&self, iov: &[libc::iovec]) -> io::Result<()> {
        match self {
            Port::Tap(fd) => loop {
                // SAFETY: every iovec points into mapped guest memory that pop_chain/iovecs checked,
                // and the kernel only reads from it; `iov.len()` entries are valid. One piece (the
                // usual case: header and frame in one buffer) goes with write(), which skips
                // copying in an iovec array.
                let n = unsafe {
                    match iov {
                        [one] => libc::write(fd.as_raw_fd(), one.iov_base, one.iov_len),
                        _ => libc::writev(fd.as_raw_fd(), iov.as_ptr(), iov.len() as libc::c_int),
                    }
                };
                if n >= 0 {
                    return Ok(());
                }
                let err = io::Error::last_os_error();
                if err.raw_os_error() != Some(libc::EINTR) {
                    return Err(tap_error(err));
                }
            },
            Port::Switch { switch, port, vnet_hdr_len, scratch } => {
                let scratch = &mut *scratch.borrow_mut();
                // SAFETY (both Frames): the iovecs point into the sender's mapped guest memory,
                // checked by pop_chain/iovecs and kept mapped by the sending worker during this call.
                // The first 12 bytes hold the whole header also when it is the 10-byte legacy one
                // (the 2 frame bytes land in num_buffers, which is dropped); TxRing::send refused
                // chains shorter than the header, and a frame is longer than 2 bytes.
                let header = unsafe { Frame::new(iov) }.prefix::<VIRTIO_NET_HDR_LEN>().unwrap_or_default();
                let offload = VirtioNetHdr { num_buffers: 0, ..VirtioNetHdr::from_le_bytes(header) };
                skip_bytes(iov, *vnet_hdr_len, &mut scratch.frame_iov.0);
                let frame = unsafe { Frame::with_offload(&scratch.frame_iov.0, offload) };
                switch.forward(port, &frame, &mut scratch.sender);
                Ok(())
            }
        }
    }

    /// Ends a batch of `send`s: makes what they delivered visible to its receivers (switch
    /// destinations publish their RX used rings once per batch). A TAP has nothing to do.
    pub fn end_batch(&self) {
        if let Port::Switch { port, scratch, .. } = self {
            scratch.borrow_mut().sender.publish(port);
        }
    }

    /// Receives one frame (header + data) scattered into `iov` (at most MAX_IOVECS entries).
    pub fn receive(&self, iov: &[libc::iovec]) -> io::Result<Received> {
        match self {
            Port::Tap(fd) => loop {
                // SAFETY: every iovec points into mapped, writable guest memory that pop_chain/iovecs
                // checked; the kernel writes at most iov_len bytes to each; `iov.len()` entries are valid.
                let n =
                    unsafe { libc::readv(fd.as_raw_fd(), iov.as_ptr(), iov.len() as libc::c_int) };
                if n >= 0 {
                    return Ok(Received::Frame(n as usize));
                }
                let err = io::Error::last_os_error();
                match err.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::EAGAIN) => return Ok(Received::Empty),
                    _ => return Err(tap_error(err)),
                }
            },
            Port::Switch { .. } => Ok(Received::Empty),
        }
    }
}

/// A TAP queue fd's I/O error. Once the device is deleted its fds fail with EBADFD, whose text
/// ("File descriptor in bad state") does not say that.
fn tap_error(err: io::Error) -> io::Error {
    match err.raw_os_error() {
        Some(libc::EBADFD) => io::Error::new(err.kind(), format!("{err}: was the TAP deleted?")),
        _ => err,
    }
}
