//! A guest's receive virtqueue as a switch destination. In switch mode the RX ring is not owned by
//! the guest's worker: any port's thread that forwards a frame to this guest locks the port's sink
//! and fills the guest's RX buffers directly (one copy from the sender's buffers). There is no
//! queue in between: a guest without posted buffers gets nothing and the frame is counted as a
//! drop, so a slow receiver never stalls a sender (virtio 1.2 §5.1.6.3–4 for the buffer rules).

use std::os::fd::OwnedFd;
use std::ptr;
use std::sync::Arc;

use vring::{DescChain, QueueError, QueueState, Virtqueue, VirtioNetHdr, VIRTIO_NET_HDR_LEN};

use super::frame::Frame;
use super::offload::Accepts;
use crate::eventfd;

/// Why a frame was not delivered into the guest.
#[derive(Debug)]
pub enum DeliverError {
    /// The guest has not posted enough RX buffers (counted as `drop_no_buffer`).
    NoBuffer,
    /// The ring is started but not enabled.
    NotEnabled,
    /// **hostile** (guest): the RX ring is broken (the message says how); the port stops receiving.
    Fault(String),
}

impl From<QueueError> for DeliverError {
    fn from(e: QueueError) -> Self {
        DeliverError::Fault(format!("RX virtqueue: {e}"))
    }
}

impl From<vring::MemoryError> for DeliverError {
    fn from(e: vring::MemoryError) -> Self {
        DeliverError::Fault(format!("RX virtqueue: {e}"))
    }
}

pub struct GuestRx {
    queue: Virtqueue,
    call: Option<Arc<OwnedFd>>,
    enabled: bool,
    mrg_rxbuf: bool,
    hdr_len: usize,
    /// Offloaded frames the driver takes as they are (GUEST_CSUM, GUEST_TSO4/6, GUEST_ECN).
    accepts: Accepts,
    /// Chains popped for the frame being delivered: the first `n` of them, refilled frame after
    /// frame (storage reused, no allocation per frame).
    chains: Vec<DescChain>,
    iov: Vec<libc::iovec>,
    /// Used elements were added since the last `publish`.
    unpublished: bool,
}

// SAFETY: `iov` is scratch space refilled before every use with pointers into the guest memory
// that `queue` keeps mapped; nothing in it is dereferenced after the sink lock is released.
unsafe impl Send for GuestRx {}

impl GuestRx {
    pub fn new(queue: Virtqueue, call: Option<Arc<OwnedFd>>, enabled: bool, mrg_rxbuf: bool, hdr_len: usize, accepts: Accepts) -> GuestRx {
        GuestRx { queue, call, enabled, mrg_rxbuf, hdr_len, accepts, chains: Vec::new(), iov: Vec::new(), unpublished: false }
    }

    pub fn accepts(&self) -> Accepts {
        self.accepts
    }

    /// The ring's state, for GET_VRING_BASE and restarts.
    pub fn state(&self) -> QueueState {
        self.queue.state()
    }

    /// Writes the virtio-net header (the frame's offload requests, which the switch only passes to
    /// a driver that accepts them, and `num_buffers`) and the frame into
    /// as many RX chains as it needs (one without MRG_RXBUF) and adds them to the used ring; the
    /// guest sees them after `publish`.
    pub fn deliver(&mut self, frame: &Frame) -> Result<(), DeliverError> {
        if !self.enabled {
            return Err(DeliverError::NotEnabled);
        }
        let needed = (self.hdr_len + frame.len()) as u64;
        let mut n = 0;
        let mut capacity = 0u64;
        while capacity < needed {
            if n == self.chains.len() {
                self.chains.push(DescChain::default());
            }
            if !self.queue.pop_chain_into(&mut self.chains[n])? {
                break;
            }
            capacity += self.chains[n].writable_len();
            n += 1;
            if !self.mrg_rxbuf {
                break;
            }
        }
        if capacity < needed {
            if n > 0 {
                self.queue.rewind_to(self.chains[0].popped_at);
            }
            return Err(DeliverError::NoBuffer);
        }
        let chains = &self.chains[..n];
        let memory = self.queue.memory();
        self.iov.clear();
        for chain in chains {
            chain.iovecs(memory, true, &mut self.iov)?;
        }
        let mut header = VirtioNetHdr { num_buffers: n as u16, ..*frame.offload() }.to_le_bytes();
        // SAFETY: `self.iov` are writable guest buffers that `iovecs` bounds-checked against the
        // guest's memory, which `queue` keeps mapped; `header_iov` points at a live local.
        unsafe {
            match self.iov.first() {
                // The usual case, the whole header in the first buffer: a 12-byte store, not a
                // call to memmove (this runs for every frame).
                Some(first) if self.hdr_len == VIRTIO_NET_HDR_LEN && first.iov_len >= VIRTIO_NET_HDR_LEN => {
                    ptr::write_unaligned(first.iov_base.cast::<[u8; VIRTIO_NET_HDR_LEN]>(), header);
                }
                _ => {
                    let header_iov = [libc::iovec { iov_base: header.as_mut_ptr() as *mut libc::c_void, iov_len: self.hdr_len }];
                    Frame::new(&header_iov).copy_into(&self.iov, 0);
                }
            }
            frame.copy_into(&self.iov, self.hdr_len);
        }
        let mut left = needed;
        for chain in &self.chains[..n] {
            let share = left.min(chain.writable_len());
            chain.note_written(self.queue.memory(), share);
            self.queue.add_used(chain, share as u32)?;
            left -= share;
        }
        self.unpublished = true;
        Ok(())
    }

    /// Makes the frames delivered since the last call visible to the guest and interrupts it if
    /// it asked for that.
    pub fn publish(&mut self) {
        if !std::mem::take(&mut self.unpublished) {
            return;
        }
        self.queue.publish_used();
        if self.queue.needs_notification() {
            if let Some(call) = &self.call {
                eventfd::signal(call);
            }
        }
    }
}
