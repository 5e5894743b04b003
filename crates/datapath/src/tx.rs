//! TX: frames the guest sends, from its transmit virtqueue to the port, zero-copy (virtio 1.2
//! §5.1.6.2). Each chain's device-readable buffers (virtio-net header + frame) become iovecs straight
//! into guest memory and go to the port with one write (writev for a frame in several buffers); the
//! TAP consumes the header, so checksum and GSO requests pass through.

use vring::DescChain;

use crate::counters::Counters;
use crate::port::{IoVecs, Port, MAX_IOVECS};
use crate::ring::{Ring, RingFault};

/// Chains handled before the used ring is published and other work gets a turn.
pub const TX_BATCH: usize = 64;

/// Largest frame accepted after the virtio-net header: 64 KiB GSO frame plus Ethernet/VLAN headers.
pub const MAX_TX_FRAME: u64 = 65562;

/// Frames and bytes a batch sent (header excluded).
#[derive(Default)]
struct Sent {
    frames: u64,
    bytes: u64,
}

pub struct TxRing {
    pub ring: Ring,
    vnet_hdr_len: usize,
    /// The chain being sent, refilled for every chain (its buffer lists are reused).
    chain: DescChain,
    iov: IoVecs,
}

impl TxRing {
    pub fn new(ring: Ring, vnet_hdr_len: usize) -> TxRing {
        TxRing {
            ring,
            vnet_hdr_len,
            chain: DescChain::default(),
            iov: IoVecs::default(),
        }
    }

    /// Sends (or, on a disabled ring, drops) up to TX_BATCH chains and publishes them once. The
    /// sent-frame counters are added once per batch: a locked add per frame would wait each time
    /// for the frame's stores (into a switch destination's buffers) to drain.
    /// Returns true if more work may be waiting right now; false once the ring is empty and kicks
    /// are enabled again (re-checked after enabling, so no kick is lost) — or, when `polling`,
    /// left off: the worker looks at the ring again without being kicked.
    pub fn process(&mut self, port: &Port, counters: &Counters, polling: bool) -> Result<bool, RingFault> {
        self.ring.queue.disable_notification();
        let mut sent = Sent::default();
        let batch = self.send_batch(port, counters, &mut sent);
        // Also when the batch broke off at a fault: the frames it sent are counted, and those it
        // forwarded to switch destinations become visible to them (else they wait, complete,
        // until another sender publishes). Counted first: a switch destination, or the driver
        // seeing its chain used, finds the frame counted.
        if sent.frames > 0 {
            Counters::add(&counters.tx_frames, sent.frames);
            Counters::add(&counters.tx_bytes, sent.bytes);
        }
        port.end_batch();
        let handled = batch?;
        if handled > 0 {
            self.ring.publish_used();
        }
        if handled == TX_BATCH {
            return Ok(true);
        }
        if polling {
            return Ok(false);
        }
        Ok(self.ring.queue.enable_notification()?)
    }

    /// Pops and sends up to TX_BATCH chains (their used elements not yet published), counting
    /// what was sent into `sent`; returns how many chains.
    fn send_batch(&mut self, port: &Port, counters: &Counters, sent: &mut Sent) -> Result<usize, RingFault> {
        let mut handled = 0;
        while handled < TX_BATCH {
            if !self.ring.queue.pop_chain_into(&mut self.chain)? {
                break;
            }
            if !self.ring.enabled {
                Counters::add(&counters.tx_dropped, 1);
            } else if let Some(bytes) = self.send(port, counters)? {
                sent.frames += 1;
                sent.bytes += bytes;
            }
            // The device wrote nothing into a TX buffer: used length 0 (§2.7.8).
            self.ring.queue.add_used(&self.chain, 0)?;
            handled += 1;
        }
        Ok(handled)
    }

    /// Sends `self.chain`; returns the frame's length (header excluded), or None if it was dropped
    /// or the port failed (counted here).
    fn send(&mut self, port: &Port, counters: &Counters) -> Result<Option<u64>, RingFault> {
        let chain = &self.chain;
        let len = chain.readable_len();
        let hdr = self.vnet_hdr_len as u64;
        if len < hdr || len > MAX_TX_FRAME + hdr {
            Counters::add(&counters.tx_dropped, 1);
            return Ok(None);
        }
        self.iov.0.clear();
        let memory = self.ring.queue.memory();
        chain.iovecs(memory, false, &mut self.iov.0)?;
        if self.iov.0.len() > MAX_IOVECS {
            Counters::add(&counters.tx_dropped, 1);
            return Ok(None);
        }
        match port.send(&self.iov.0) {
            Ok(()) => Ok(Some(len - hdr)),
            Err(_) => {
                Counters::add(&counters.tx_errors, 1);
                Ok(None)
            }
        }
    }
}
