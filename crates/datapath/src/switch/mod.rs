//! The userspace L2 switch: ports (vhost-user guests, TAP and stream uplinks, the control plane's
//! own port for DHCP), MAC learning with aging, flooding of broadcast, multicast and unknown
//! unicast, optional access VLAN per port, port security (MACs and IP addresses locked to ports),
//! per-port counters.
//!
//! Forwarding runs on whichever thread received the frame (a guest's TX worker, an uplink's reader)
//! and writes straight into the destination: a guest-to-guest frame is copied once, from the
//! sender's TX buffers into the receiver's RX buffers. Locks on that path: the one destination
//! port's sink lock while it copies; the port list's and the MAC table's read locks only when the
//! sender's memo of the table is out of date (it remembers unknown destinations too). No global
//! lock, and no queue that a slow receiver could fill.
//!
//! A forwarding thread keeps a `Sender` per port it forwards from: guest destinations' used rings
//! are published once per batch, not per frame, and the last MAC-table answers are re-used while
//! the table is unchanged.

mod address_locks;
mod counters;
mod frame;
mod guest_rx;
mod ip_guard;
mod mac_table;
mod offload;
mod sender;
mod uplink;

use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

pub use counters::{PortCounters, PortCountersSnapshot};
pub use frame::{skip_bytes, EthernetHeader, Frame};
pub use guest_rx::{DeliverError, GuestRx};
use address_locks::AddressLocks;
use ip_guard::{Claim, IpKey};
pub use mac_table::{Learned, Mac, MacEntry, MacTable, MAX_MAC_ENTRIES};
pub use offload::{Accepts, Finisher, OffloadError};
use sender::Deliveries;
pub use sender::Sender;
pub use uplink::{FrameWriter, HostFrame, HostPort, StreamAddress, StreamUplink, TapUplink, Uplink, UplinkError};

pub type PortId = u32;

/// Largest GSO frame a guest may hand the switch: 64 KiB of IP packet plus Ethernet/VLAN headers.
pub const MAX_GSO_FRAME: usize = 65535 + 18;

/// How long a MAC entry lives without traffic from its station (IEEE 802.1D default).
pub const DEFAULT_AGING: Duration = Duration::from_secs(300);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortKind {
    VhostUser,
    Tap,
    Stream,
    /// The control plane's own port (built-in DHCP server).
    Host,
}

impl fmt::Display for PortKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PortKind::VhostUser => "vhost-user",
            PortKind::Tap => "tap",
            PortKind::Stream => "stream",
            PortKind::Host => "host",
        })
    }
}

/// Where frames forwarded to a port go.
enum Sink {
    /// Nothing attached (a vhost-user port whose RX ring is not started, or broke).
    Detached,
    Guest { rx: GuestRx, on_fault: Box<dyn Fn(String) + Send> },
    Writer(Box<dyn FrameWriter>),
}

pub struct SwitchPort {
    pub id: PortId,
    pub name: String,
    pub kind: PortKind,
    /// Access VLAN; 0 is the untagged default segment.
    pub vlan: u16,
    pub counters: PortCounters,
    sink: Mutex<Sink>,
}

impl SwitchPort {
    fn sink(&self) -> std::sync::MutexGuard<'_, Sink> {
        self.sink.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands the guest's RX ring to the switch (the ring was started). `on_fault` is called once if
    /// the guest breaks the ring; the port then receives nothing until a new ring is attached.
    pub fn attach_guest_rx(&self, rx: GuestRx, on_fault: Box<dyn Fn(String) + Send>) {
        *self.sink() = Sink::Guest { rx, on_fault };
    }

    /// Takes the guest's RX ring back (stop, memory change); returns its state, with everything
    /// delivered published first.
    pub fn detach_guest_rx(&self) -> Option<vring::QueueState> {
        let mut sink = self.sink();
        match std::mem::replace(&mut *sink, Sink::Detached) {
            Sink::Guest { mut rx, .. } => {
                rx.publish();
                Some(rx.state())
            }
            other => {
                *sink = other;
                None
            }
        }
    }

    /// Whether frames forwarded to this port can go anywhere: false while a guest's RX ring is not
    /// started (or after it broke), and once a stream uplink's peer has left.
    pub fn is_attached(&self) -> bool {
        !matches!(*self.sink(), Sink::Detached)
    }

    fn attach_writer(&self, writer: Box<dyn FrameWriter>) {
        *self.sink() = Sink::Writer(writer);
    }

    /// Delivers one frame to this port, counting what happens; a frame put into a guest's RX ring
    /// is published with `deliveries`. An offloaded frame the port does not take as it is goes
    /// through `finisher` first (checksummed, or cut into segments).
    fn deliver(self: &Arc<Self>, frame: &Frame, eth: &EthernetHeader, from: PortId, deliveries: &mut Deliveries, finisher: &mut Finisher) {
        if !offload::is_plain(frame.offload()) && !self.takes(frame.offload()) {
            let finished = finisher.finish(frame, frame.offload(), |piece| self.deliver_finished(piece, eth, from, deliveries));
            if finished.is_err() {
                // `Switch::forward` checked the frame; only a guest rewriting it meanwhile gets here.
                PortCounters::add(&self.counters.drop_bad_offload, 1);
            }
            return;
        }
        self.deliver_finished(frame, eth, from, deliveries);
    }

    /// Whether the port takes a frame with these offload requests as it is.
    fn takes(&self, offload: &vring::VirtioNetHdr) -> bool {
        match &*self.sink() {
            Sink::Detached => true, // dropped anyway
            Sink::Guest { rx, .. } => rx.accepts().takes(offload),
            Sink::Writer(writer) => writer.takes_offloads().takes(offload),
        }
    }

    /// `deliver` for a frame this port takes as it is.
    fn deliver_finished(self: &Arc<Self>, frame: &Frame, eth: &EthernetHeader, from: PortId, deliveries: &mut Deliveries) {
        let mut sink = self.sink();
        let outcome = match &mut *sink {
            Sink::Detached => Err(&self.counters.drop_not_ready),
            Sink::Guest { rx, on_fault } => match rx.deliver(frame) {
                Ok(()) => {
                    deliveries.note(self);
                    Ok(())
                }
                Err(DeliverError::NoBuffer) => Err(&self.counters.drop_no_buffer),
                Err(DeliverError::NotEnabled) => Err(&self.counters.drop_not_ready),
                Err(DeliverError::Fault(message)) => {
                    on_fault(message);
                    *sink = Sink::Detached;
                    Err(&self.counters.drop_not_ready)
                }
            },
            Sink::Writer(writer) => {
                if !writer.accepts(eth, frame) {
                    return;
                }
                writer.write_frame(frame, from).map_err(|_| &self.counters.drop_port_error)
            }
        };
        // Still under the sink lock, which every writer of these counters holds.
        match outcome {
            Ok(()) => {
                PortCounters::add_serialized(&self.counters.to_port_frames, 1);
                PortCounters::add_serialized(&self.counters.to_port_bytes, frame.len() as u64);
            }
            Err(counter) => PortCounters::add_serialized(counter, 1),
        }
    }
}

/// The port list as forwarders read it: replaced whole (copy on write) when a port comes or goes.
pub(crate) type PortList = Arc<Vec<Arc<SwitchPort>>>;

pub struct Switch {
    ports: RwLock<PortList>,
    /// Bumped after every change of `ports`, so a forwarder knows its copy is out of date.
    ports_generation: AtomicU64,
    macs: MacTable,
    /// Port security: MACs and IP addresses locked to ports.
    mac_locks: AddressLocks<Mac>,
    ip_locks: AddressLocks<IpKey>,
    next_id: AtomicU32,
    /// Largest frame (Ethernet header and one VLAN tag included) the segment carries.
    max_frame: usize,
}

impl Switch {
    /// A switch for frames up to `mtu` bytes of payload.
    pub fn new(mtu: u16, aging: Duration) -> Arc<Switch> {
        Arc::new(Switch {
            ports: RwLock::default(),
            ports_generation: AtomicU64::new(0),
            macs: MacTable::new(aging),
            mac_locks: AddressLocks::default(),
            ip_locks: AddressLocks::default(),
            next_id: AtomicU32::new(1),
            max_frame: mtu as usize + 18,
        })
    }

    /// Adds a port with nothing attached yet.
    pub fn add_port(&self, name: &str, kind: PortKind, vlan: u16) -> Arc<SwitchPort> {
        let port = Arc::new(SwitchPort {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            name: name.to_string(),
            kind,
            vlan,
            counters: PortCounters::default(),
            sink: Mutex::new(Sink::Detached),
        });
        self.change_ports(|ports| ports.push(port.clone()));
        port
    }

    /// Applies `change` to a copy of the port list and publishes the copy.
    fn change_ports<T>(&self, change: impl FnOnce(&mut Vec<Arc<SwitchPort>>) -> T) -> T {
        let mut ports = self.ports.write().unwrap_or_else(|e| e.into_inner());
        let mut copy = Vec::clone(&ports);
        let result = change(&mut copy);
        *ports = Arc::new(copy);
        self.ports_generation.fetch_add(1, Ordering::Release);
        result
    }

    /// The current port list, re-read into `cached` only if it changed since it was read there.
    fn port_list<'a>(&self, cached: &'a mut Option<(u64, PortList)>) -> &'a [Arc<SwitchPort>] {
        let generation = self.ports_generation.load(Ordering::Acquire);
        if !matches!(cached, Some((read_at, _)) if *read_at == generation) {
            // Generation first, then the list: a change in between only makes us re-read later.
            let list = self.ports.read().unwrap_or_else(|e| e.into_inner()).clone();
            *cached = Some((generation, list));
        }
        cached.as_ref().map_or(&[], |(_, list)| list.as_slice())
    }

    /// Adds a port whose frames go to `writer` (an uplink or the host port).
    pub fn add_writer_port(&self, name: &str, kind: PortKind, vlan: u16, writer: Box<dyn FrameWriter>) -> Arc<SwitchPort> {
        let port = self.add_port(name, kind, vlan);
        port.attach_writer(writer);
        port
    }

    /// Removes the port and forgets its stations. A forwarder may still hold the port in its copy
    /// of the list for a moment; its sink is detached here, so nothing reaches it afterwards.
    pub fn remove_port(&self, id: PortId) {
        let removed = self.change_ports(|ports| {
            let position = ports.iter().position(|p| p.id == id);
            position.map(|i| ports.remove(i))
        });
        if let Some(port) = removed {
            *port.sink() = Sink::Detached;
        }
        self.mac_locks.unlock(id);
        self.ip_locks.unlock(id);
        self.macs.forget_port(id);
    }

    pub fn ports(&self) -> Vec<Arc<SwitchPort>> {
        Vec::clone(&self.ports.read().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn mac_entries(&self) -> Vec<MacEntry> {
        self.macs.entries()
    }

    /// Points `mac` at `port` at once (a RARP/GARP announcing a moved guest), unless the port
    /// may not send from `mac` (`AddressLocks`): that counts as a spoofed frame.
    pub fn announce(&self, port: &SwitchPort, mac: Mac) {
        if !self.mac_locks.allows(port.id, mac) {
            PortCounters::add(&port.counters.drop_spoofed, 1);
            return;
        }
        self.macs.assign(port.vlan, mac, port.id);
    }

    /// Locks `port` to `mac` (port security, see `AddressLocks`).
    pub fn lock_mac(&self, port: PortId, mac: Mac) {
        self.mac_locks.lock(port, &[mac]);
    }

    /// Reserves `mac` for a port to lock later (see `AddressLocks`).
    pub fn reserve_mac(&self, mac: Mac) {
        self.mac_locks.reserve(mac);
    }

    /// Ends one `reserve_mac` of `mac`.
    pub fn release_mac(&self, mac: Mac) {
        self.mac_locks.release(mac);
    }

    /// The MAC `port` is locked to, if any.
    pub fn locked_mac(&self, port: PortId) -> Option<Mac> {
        self.mac_locks.of_port(port).and_then(|macs| macs.first().copied())
    }

    /// Locks `port` to the IP `addresses`, IPv4 and IPv6 (port security, see `ip_guard`).
    pub fn lock_ips(&self, port: PortId, addresses: &[IpAddr]) {
        let keys: Vec<IpKey> = addresses.iter().map(|&a| a.into()).collect();
        self.ip_locks.lock(port, &keys);
    }

    /// Reserves `address` for a port to lock later (see `AddressLocks`).
    pub fn reserve_ip(&self, address: IpAddr) {
        self.ip_locks.reserve(address.into());
    }

    /// Ends one `reserve_ip` of `address`.
    pub fn release_ip(&self, address: IpAddr) {
        self.ip_locks.release(address.into());
    }

    /// The IP addresses `port` is locked to (none if it is not locked).
    pub fn locked_ips(&self, port: PortId) -> Vec<IpAddr> {
        self.ip_locks.of_port(port).map_or_else(Vec::new, |keys| keys.iter().map(|&k| k.into()).collect())
    }

    /// Whether `from` may send the frame as far as port security goes: its source MAC (MAC
    /// locks) and the IP addresses it claims (IP locks, `ip_guard`). The answers are remembered
    /// in `sender` while the locks are unchanged. Inlined: on every frame, and without IP locks
    /// it is two loads and compares.
    #[inline(always)]
    fn source_allowed(&self, from: PortId, eth: &EthernetHeader, frame: &Frame, sender: &mut Sender) -> bool {
        self.mac_locks.allows_remembered(from, eth.src, &mut sender.allowed_mac)
            && (self.ip_locks.generation() == 0 || self.ip_claim_allowed(from, eth, frame, sender))
    }

    /// The IP locks' part of `source_allowed`, once any port is locked to IP addresses.
    #[inline(never)]
    fn ip_claim_allowed(&self, from: PortId, eth: &EthernetHeader, frame: &Frame, sender: &mut Sender) -> bool {
        let generation = self.ip_locks.generation();
        // Generation first, then the lock: a change in between only makes us look again later.
        if !matches!(sender.ip_locked, Some((read_at, _)) if read_at == generation) {
            sender.ip_locked = Some((generation, self.ip_locks.of_port(from).is_some()));
        }
        let locked = sender.ip_locked.is_some_and(|(_, locked)| locked);
        match Claim::of(eth, frame) {
            Claim::Addresses { source, advertised, other_mac, serves } => {
                !(locked && (other_mac || serves))
                    && self.ip_locks.allows_remembered(from, source, &mut sender.allowed_ip)
                    && advertised.is_none_or(|target| self.ip_locks.allows(from, target))
            }
            Claim::Unaddressed => true,
            Claim::Other => !locked,
        }
    }

    /// Forwards one frame (no virtio-net header) that arrived from `from`. `sender` is the
    /// calling thread's state for `from`; the caller publishes it at the end of its batch.
    pub fn forward(&self, from: &SwitchPort, frame: &Frame, sender: &mut Sender) {
        sender.from_frames += 1;
        sender.from_bytes += frame.len() as u64;
        let Some(eth) = frame.ethernet() else {
            PortCounters::add(&from.counters.drop_runt, 1);
            return;
        };
        if from.vlan != 0 && eth.is_vlan_tagged() {
            // An access port carries untagged frames only (as on OVS or a hardware switch): a tag
            // from a guest could select another VLAN on a VLAN-aware peer behind an uplink.
            PortCounters::add(&from.counters.drop_tagged, 1);
            return;
        }
        if !self.source_allowed(from.id, &eth, frame, sender) {
            PortCounters::add(&from.counters.drop_spoofed, 1);
            return;
        }
        let gso = frame.offload().gso_type != vring::net_hdr::VIRTIO_NET_HDR_GSO_NONE;
        if frame.len() > if gso { MAX_GSO_FRAME } else { self.max_frame } {
            PortCounters::add(&from.counters.drop_too_big, 1);
            return;
        }
        if !offload::is_plain(frame.offload()) {
            if let Err(refused) = offload::check(frame, self.max_frame) {
                let counter = match refused {
                    OffloadError::SegmentTooBig { .. } => &from.counters.drop_too_big,
                    _ => &from.counters.drop_bad_offload,
                };
                PortCounters::add(counter, 1);
                return;
            }
        }
        let now = *sender.batch_now.get_or_insert_with(|| self.macs.now_ms());
        let Sender { deliveries, memo, ports, finisher, .. } = sender;
        let ports = self.port_list(ports);
        memo.check_generation(&self.macs);
        if eth.src_is_unicast() && !memo.recently_learned(from.vlan, eth.src, from.id, now) {
            match self.macs.learn(from.vlan, eth.src, from.id) {
                Learned::TableFull => PortCounters::add(&from.counters.learn_table_full, 1),
                _ => memo.learned(&self.macs, from.vlan, eth.src, from.id, now),
            }
        }
        if !eth.dst_is_multicast() {
            if memo.destination(from.vlan, eth.dst, now).is_none() {
                let (port, live_until) = match self.macs.lookup_live(from.vlan, eth.dst, now) {
                    Some((id, live_until)) => {
                        let Some(port) = ports.iter().find(|p| p.id == id) else {
                            return; // the port is being removed
                        };
                        (Some(port.clone()), live_until)
                    }
                    // Unknown stays unknown until a station is learned, which changes the generation.
                    None => (None, u64::MAX),
                };
                memo.remember_destination(from.vlan, eth.dst, port, live_until);
            }
            if let Some(Some(port)) = memo.destination(from.vlan, eth.dst, now) {
                if port.id != from.id {
                    port.deliver(frame, &eth, from.id, deliveries, finisher);
                }
                return;
            }
        }
        for port in ports.iter().filter(|p| p.id != from.id && p.vlan == from.vlan) {
            port.deliver(frame, &eth, from.id, deliveries, finisher);
        }
    }

    /// Forwards a frame held in a buffer (uplinks, the host port) and publishes it at once.
    pub fn forward_bytes(&self, from: &SwitchPort, bytes: &[u8]) {
        let iov = [libc::iovec { iov_base: bytes.as_ptr() as *mut libc::c_void, iov_len: bytes.len() }];
        // SAFETY: `bytes` is a live slice for the whole call.
        let frame = unsafe { Frame::new(&iov) };
        let mut sender = Sender::default();
        self.forward(from, &frame, &mut sender);
        sender.publish(from);
    }
}

#[cfg(test)]
mod tests;
