//! TX: frames the guest sends, from its transmit virtqueue to the port, zero-copy (virtio 1.2
//! §5.1.6.2). Each chain's device-readable buffers (virtio-net header + frame) become iovecs straight
//! into guest memory and go to the port with one writev; the TAP consumes the header, so checksum and
//! GSO requests pass through.

use vring::DescChain;

use crate::counters::Counters;
use crate::port::{IoVecs, Port, MAX_IOVECS};
use crate::ring::{Ring, RingFault};

/// Chains handled before the used ring is published and other work gets a turn.
pub const TX_BATCH: usize = 64;

/// Largest frame accepted after the virtio-net header: 64 KiB GSO frame plus Ethernet/VLAN headers.
pub const MAX_TX_FRAME: u64 = 65562;

pub struct TxRing {
    pub ring: Ring,
    vnet_hdr_len: usize,
    iov: IoVecs,
}

impl TxRing {
    pub fn new(ring: Ring, vnet_hdr_len: usize) -> TxRing {
        TxRing {
            ring,
            vnet_hdr_len,
            iov: IoVecs::default(),
        }
    }

    /// Sends (or, on a disabled ring, drops) up to TX_BATCH chains and publishes them once.
    /// Returns true if more work may be waiting right now; false once the ring is empty and kicks
    /// are enabled again (re-checked after enabling, so no kick is lost).
    pub fn process(&mut self, port: &Port, counters: &Counters) -> Result<bool, RingFault> {
        self.ring.queue.disable_notification()?;
        let mut handled = 0;
        while handled < TX_BATCH {
            let Some(chain) = self.ring.queue.pop_chain()? else {
                break;
            };
            if self.ring.enabled {
                self.send(&chain, port, counters)?;
            } else {
                Counters::add(&counters.tx_dropped, 1);
            }
            // The device wrote nothing into a TX buffer: used length 0 (§2.7.8).
            self.ring.queue.add_used(chain.head, 0)?;
            handled += 1;
        }
        if handled > 0 {
            self.ring.publish_used()?;
        }
        if handled == TX_BATCH {
            return Ok(true);
        }
        Ok(self.ring.queue.enable_notification()?)
    }

    fn send(
        &mut self,
        chain: &DescChain,
        port: &Port,
        counters: &Counters,
    ) -> Result<(), RingFault> {
        let len = chain.readable_len();
        let hdr = self.vnet_hdr_len as u64;
        if len < hdr || len > MAX_TX_FRAME + hdr {
            Counters::add(&counters.tx_dropped, 1);
            return Ok(());
        }
        self.iov.0.clear();
        let memory = self.ring.queue.memory();
        for buf in &chain.readable {
            memory.iovecs(buf.addr, buf.len as usize, &mut self.iov.0)?;
        }
        if self.iov.0.len() > MAX_IOVECS {
            Counters::add(&counters.tx_dropped, 1);
            return Ok(());
        }
        match port.send(&self.iov.0) {
            Ok(()) => {
                Counters::add(&counters.tx_frames, 1);
                Counters::add(&counters.tx_bytes, len - hdr);
            }
            Err(_) => Counters::add(&counters.tx_errors, 1),
        }
        Ok(())
    }
}
