//! What a device's queue pairs are wired to: a TAP (one queue per pair), or one port of the
//! userspace L2 switch (one queue pair). The device asks its attachment for a worker's `Port`,
//! applies the driver's offload features to it, and sends announcements through it.

use std::sync::Arc;

use crate::port::Port;
use crate::switch::{Mac, Switch, SwitchPort};
use crate::tap::{AppliedOffloads, Tap, TapError};

pub enum Attachment {
    Tap(Tap),
    Switch { switch: Arc<Switch>, port: Arc<SwitchPort> },
}

impl Attachment {
    pub fn queue_pairs(&self) -> u16 {
        match self {
            Attachment::Tap(tap) => tap.queue_count(),
            Attachment::Switch { .. } => 1,
        }
    }

    /// The TAP's interface name, or the switch port's name.
    pub fn name(&self) -> &str {
        match self {
            Attachment::Tap(tap) => tap.name(),
            Attachment::Switch { port, .. } => &port.name,
        }
    }

    /// The TAP takes the header length and the guest's offloads; a switch port carries plain
    /// frames (switch mode offers no offloads), so there is nothing to apply.
    pub fn apply_features(&self, hdr_len: usize, features: u64) -> Result<AppliedOffloads, TapError> {
        match self {
            Attachment::Tap(tap) => {
                tap.set_vnet_hdr_len(hdr_len)?;
                tap.set_offloads(features)
            }
            Attachment::Switch { .. } => Ok(AppliedOffloads { tun_flags: 0, refused_uso: 0 }),
        }
    }

    pub fn worker_port(&self, pair: u16, hdr_len: usize) -> Port {
        match self {
            Attachment::Tap(tap) => Port::Tap(tap.queue_fd(pair).expect("the TAP has one queue per pair")),
            Attachment::Switch { switch, port } => Port::switch(switch.clone(), port.clone(), hdr_len),
        }
    }

    /// The switch port, in switch mode (its RX ring is attached to it rather than to a worker).
    pub fn switch_port(&self) -> Option<&Arc<SwitchPort>> {
        match self {
            Attachment::Tap(_) => None,
            Attachment::Switch { port, .. } => Some(port),
        }
    }

    /// The unicast MACs the switch last saw on this port, most recently seen first, at most `max`
    /// (they travel with a live migration); none for a TAP, whose MAC table is the kernel's.
    pub fn stations(&self, max: usize) -> Vec<Mac> {
        match self {
            Attachment::Tap(_) => Vec::new(),
            Attachment::Switch { switch, port } => {
                let mut entries: Vec<_> = switch.mac_entries().into_iter().filter(|e| e.port == port.id).collect();
                entries.sort_by_key(|e| e.age);
                entries.into_iter().take(max).map(|e| e.mac).collect()
            }
        }
    }

    /// Points `macs` at this switch port at once (stations arriving with a migrated guest); a TAP
    /// has nothing to update.
    pub fn adopt_stations(&self, macs: &[Mac]) {
        if let Attachment::Switch { switch, port } = self {
            for &mac in macs {
                switch.announce(port, mac);
            }
        }
    }

    /// Sends a frame the back-end makes itself (a RARP announcing a migrated guest) out of the
    /// TAP, or into the switch from this port — which also points the MAC table at it at once.
    pub fn send_frame(&self, hdr_len: usize, frame: &[u8]) -> Result<(), TapError> {
        match self {
            Attachment::Tap(tap) => tap.send_frame(hdr_len, frame),
            Attachment::Switch { switch, port } => {
                if frame.len() >= 12 {
                    switch.announce(port, frame[6..12].try_into().unwrap());
                }
                switch.forward_bytes(port, frame);
                Ok(())
            }
        }
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        if let Attachment::Switch { switch, port } = self {
            switch.remove_port(port.id);
        }
    }
}
