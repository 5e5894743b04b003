//! RX: frames from the port into the guest's receive virtqueue (virtio 1.2 §5.1.6.3–4), zero-copy:
//! the port's readv scatters each frame (virtio-net header first) straight into the guest's
//! device-writable buffers.
//!
//! Without VIRTIO_NET_F_MRG_RXBUF one chain holds one frame. With it, chains are gathered until
//! they can hold `max_rx_frame` bytes, one readv fills them in order, the chains actually filled
//! are returned used (each with its share) and the header's `num_buffers` says how many; the rest
//! are put back. If the posted buffers are too small for a maximal frame and the driver could still
//! post more, the worker waits for an RX kick rather than truncate.

use std::collections::VecDeque;

use vring::{DescChain, GuestMemory, MemoryError, NUM_BUFFERS_OFFSET, VIRTIO_NET_HDR_LEN};

use crate::counters::Counters;
use crate::port::{IoVecs, Port, Received, MAX_IOVECS};
use crate::ring::{Ring, RingFault};

/// Frames delivered before the used ring is published and other work gets a turn.
pub const RX_BATCH: usize = 64;

/// What the worker should do with the RX side after `RxRing::process`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxState {
    /// A batch was delivered; call again soon (the port and the ring may both have more).
    Busy,
    /// The port has nothing queued: watch the port fd and sleep.
    PortDrained,
    /// No (or not enough) guest buffers: stop watching the port (the TAP keeps queueing frames)
    /// and sleep until the RX kick. Notifications are enabled.
    OutOfBuffers,
    /// The ring is started but not enabled: deliver nothing, don't watch the port.
    Disabled,
}

/// Outcome of one delivery attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Delivery {
    /// One frame went into the guest (or, for buffers too small for the header, they were
    /// returned empty): it counts towards the batch.
    Done,
    /// The port was empty.
    PortEmpty,
    /// Not enough buffers for a frame.
    NeedBuffers,
}

/// Chains popped from the avail ring but not yet used, with their iovecs, carried from frame to
/// frame within one batch: mergeable RX gathers enough chains for a maximal frame but usually
/// fills one, and re-walking the others for every frame would cost dozens of chain walks per frame.
/// Emptied (and the chains put back with `rewind_to`) at the end of every batch.
#[derive(Default)]
struct Held {
    chains: VecDeque<DescChain>,
    /// The iovecs of all held chains, in order, and how many belong to each chain.
    iov: IoVecs,
    iov_counts: VecDeque<usize>,
    /// Writable bytes of all held chains.
    capacity: u64,
    /// Descriptors of all held chains (counting each chain as at least one).
    descriptors: usize,
}

impl Held {
    fn push(&mut self, chain: DescChain, memory: &GuestMemory) -> Result<(), MemoryError> {
        let before = self.iov.0.len();
        chain.iovecs(memory, true, &mut self.iov.0)?;
        self.iov_counts.push_back(self.iov.0.len() - before);
        self.capacity += chain.writable_len();
        self.descriptors += descriptor_count(&chain);
        self.chains.push_back(chain);
        Ok(())
    }

    /// Forgets the first `n` chains: they have been used.
    fn consume(&mut self, n: usize) {
        let iovecs: usize = self.iov_counts.drain(..n).sum();
        self.iov.0.drain(..iovecs);
        for chain in self.chains.drain(..n) {
            self.capacity -= chain.writable_len();
            self.descriptors -= descriptor_count(&chain);
        }
    }

    fn clear(&mut self) {
        self.consume(self.chains.len());
    }
}

fn descriptor_count(chain: &DescChain) -> usize {
    (chain.readable().len() + chain.writable().len()).max(1)
}

pub struct RxRing {
    pub ring: Ring,
    mrg_rxbuf: bool,
    vnet_hdr_len: usize,
    max_rx_frame: u64,
    held: Held,
    /// The iovecs of one readv: the held chains' (at most MAX_IOVECS - 1) and `overflow`.
    readv: IoVecs,
    /// One byte past the guest's buffers in every readv: if the port writes into it, the frame
    /// did not fit (a TAP's readv returns only the bytes it could copy, dropping the rest).
    overflow: Box<u8>,
    /// Used length of each of the (first) held chains one frame filled.
    shares: Vec<u32>,
}

impl RxRing {
    pub fn new(ring: Ring, mrg_rxbuf: bool, vnet_hdr_len: usize, max_rx_frame: usize) -> RxRing {
        RxRing {
            ring,
            mrg_rxbuf,
            vnet_hdr_len,
            max_rx_frame: max_rx_frame as u64,
            held: Held::default(),
            readv: IoVecs::default(),
            overflow: Box::new(0),
            shares: Vec::new(),
        }
    }

    /// Delivers up to RX_BATCH frames from `port`, publishes them once, and says what to wait for.
    pub fn process(&mut self, port: &Port, counters: &Counters) -> Result<RxState, RingFault> {
        if !self.ring.enabled {
            return Ok(RxState::Disabled);
        }
        let outcome = self.deliver_batch(port, counters);
        // Out of buffers: enable kicks while the held chains are still popped. With EVENT_IDX that
        // puts avail_event past them, so the driver's NEXT posting kicks (§2.7.10.2); avail_event
        // at the first held chain would be behind a driver that already posted past it: no kick.
        let buffers_arrived = match outcome {
            Ok(Delivery::NeedBuffers) => self.ring.queue.enable_notification(),
            _ => Ok(false),
        };
        // Chains looked at but not used go back to the ring.
        if let Some(first) = self.held.chains.front() {
            self.ring.queue.rewind_to(first.popped_at);
        }
        self.held.clear();
        let outcome = outcome?;
        let buffers_arrived = buffers_arrived?;
        Ok(match outcome {
            Delivery::Done => RxState::Busy,
            Delivery::PortEmpty => RxState::PortDrained,
            Delivery::NeedBuffers if buffers_arrived => RxState::Busy,
            Delivery::NeedBuffers => RxState::OutOfBuffers,
        })
    }

    fn deliver_batch(&mut self, port: &Port, counters: &Counters) -> Result<Delivery, RingFault> {
        // While frames flow we pop buffers as frames arrive: the driver need not kick on refill.
        self.ring.queue.disable_notification();
        let mut delivered = 0;
        let mut outcome = Delivery::Done;
        while delivered < RX_BATCH {
            outcome = self.deliver_one(port, counters)?;
            if outcome != Delivery::Done {
                break;
            }
            delivered += 1;
        }
        if delivered > 0 {
            self.ring.publish_used();
        }
        Ok(outcome)
    }

    fn deliver_one(&mut self, port: &Port, counters: &Counters) -> Result<Delivery, RingFault> {
        let want = if self.mrg_rxbuf { self.max_rx_frame } else { 1 };
        while self.held.capacity < want && (self.mrg_rxbuf || self.held.chains.is_empty()) {
            let Some(chain) = self.ring.queue.pop_chain()? else {
                break;
            };
            self.held.push(chain, self.ring.queue.memory())?;
        }
        if self.held.chains.is_empty() {
            return Ok(Delivery::NeedBuffers);
        }
        // A driver that could still post more buffers (not all descriptors are with us) is waited
        // for rather than risk truncating a maximal frame; with every descriptor posted, read anyway.
        let ring_full = self.held.descriptors >= usize::from(self.ring.queue.state().size);
        if self.mrg_rxbuf && self.held.capacity < self.max_rx_frame && !ring_full {
            return Ok(Delivery::NeedBuffers);
        }
        if self.held.capacity < self.vnet_hdr_len as u64 {
            // Not even room for the header (a broken driver): the TAP would drop the frame with
            // EINVAL. Return the buffers empty instead and leave the frame queued.
            for chain in &self.held.chains {
                self.ring.queue.add_used(chain, 0)?;
            }
            self.held.clear();
            return Ok(Delivery::Done);
        }

        let iovecs = &self.held.iov.0[..self.held.iov.0.len().min(MAX_IOVECS - 1)];
        let capacity: usize = iovecs.iter().map(|v| v.iov_len).sum();
        self.readv.0.clear();
        self.readv.0.extend_from_slice(iovecs);
        self.readv.0.push(libc::iovec {
            iov_base: (&mut *self.overflow as *mut u8).cast(),
            iov_len: 1,
        });
        let frame_len = match port.receive(&self.readv.0).map_err(RingFault::Port)? {
            Received::Empty => return Ok(Delivery::PortEmpty),
            Received::Frame(n) => n,
        };
        let written = frame_len.min(capacity) as u64;
        if frame_len > capacity {
            Counters::add(&counters.rx_truncated, 1);
        }

        // Split `written` over the chains in order: each takes what its buffers hold.
        let memory = self.ring.queue.memory();
        self.shares.clear();
        let mut remaining = written;
        for chain in &self.held.chains {
            if remaining == 0 && !self.shares.is_empty() {
                break;
            }
            let share = remaining.min(chain.writable_len());
            chain.note_written(memory, share);
            self.shares.push(share as u32);
            remaining -= share;
        }
        let used = self.shares.len();
        if self.vnet_hdr_len == VIRTIO_NET_HDR_LEN {
            // The TAP fills the first 10 header bytes; num_buffers is ours (1 without MRG_RXBUF).
            write_chain_u16(
                memory,
                self.held.chains.range(..used),
                NUM_BUFFERS_OFFSET,
                used as u16,
            )?;
        }
        for (chain, &share) in self.held.chains.iter().zip(&self.shares) {
            self.ring.queue.add_used(chain, share)?;
        }
        self.held.consume(used);
        Counters::add(&counters.rx_frames, 1);
        Counters::add(
            &counters.rx_bytes,
            written.saturating_sub(self.vnet_hdr_len as u64),
        );
        Ok(Delivery::Done)
    }
}

/// Stores little-endian `value` at byte `offset` of the concatenated writable buffers of `chains`
/// (the two bytes may straddle buffers; bytes beyond the buffers are not written).
fn write_chain_u16<'a>(
    memory: &GuestMemory,
    chains: impl Iterator<Item = &'a DescChain> + Clone,
    offset: u64,
    value: u16,
) -> Result<(), MemoryError> {
    for (i, byte) in value.to_le_bytes().into_iter().enumerate() {
        if let Some(gpa) = chain_offset_gpa(chains.clone(), offset + i as u64) {
            memory.write_obj(gpa, byte)?;
        }
    }
    Ok(())
}

/// Guest address of byte `offset` of the concatenated writable buffers of `chains`.
fn chain_offset_gpa<'a>(
    chains: impl Iterator<Item = &'a DescChain>,
    mut offset: u64,
) -> Option<u64> {
    for buf in chains.flat_map(|c| c.writable().iter()) {
        if offset < u64::from(buf.len) {
            return Some(buf.addr + offset);
        }
        offset -= u64::from(buf.len);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use vring::mock::MockGuest;
    use vring::Buf;

    /// A chain of one writable buffer (its host address looked up when used).
    fn chain_of(head: u16, buf: Buf) -> DescChain {
        DescChain::of_writable(head, &[buf])
    }

    #[test]
    fn num_buffers_may_straddle_two_buffers_of_different_chains() {
        let guest = MockGuest::new(1 << 20);
        let mem = guest.memory();
        let first = chain_of(0, Buf::new(0x1000, 11));
        let second = chain_of(1, Buf::new(0x3000, 100));
        write_chain_u16(mem, [first, second].iter(), NUM_BUFFERS_OFFSET, 0x0302).unwrap();
        let mut b = [0u8; 1];
        mem.read_bytes(0x1000 + 10, &mut b).unwrap();
        assert_eq!(b[0], 0x02);
        mem.read_bytes(0x3000, &mut b).unwrap();
        assert_eq!(b[0], 0x03);
    }

    #[test]
    fn bytes_beyond_the_buffers_are_not_written() {
        let guest = MockGuest::new(1 << 20);
        let chain = chain_of(0, Buf::new(0x1000, 4));
        assert_eq!(chain_offset_gpa(std::iter::once(&chain), 3), Some(0x1003));
        assert_eq!(chain_offset_gpa(std::iter::once(&chain), 4), None);
        write_chain_u16(
            guest.memory(),
            std::iter::once(&chain),
            NUM_BUFFERS_OFFSET,
            1,
        )
        .unwrap();
    }
}
