//! The data-plane side of one vhost-user-net device: guest memory, the configuration of every
//! virtqueue, and the worker of each started queue pair. The control plane calls one method per
//! ring or memory request.
//!
//! Invariant: a running worker owns copies of everything it reads (memory table, ring state, fds).
//! Every change is made with the affected queue pair's worker stopped — stop (which hands back the
//! rings' `next_avail`/`next_used`), change, restart — so a worker never sees a half-made change
//! and nothing a ring has consumed is processed twice.
//!
//! Threat model: the front-end chooses every address, size and index passed here (hostile input,
//! see DESIGN.md); the guest chooses what the rings contain. Errors here are for the front-end
//! (a failure reply); guest faults reach `on_event` from the worker thread.

use std::fmt;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use vring::features::*;
use vring::{DirtyLog, DirtyLogError, GuestMemory, MemoryError, MemoryRegion, QueueError, QueueState, RegionSpec, Virtqueue, PACKED_RING_START, VIRTIO_NET_HDR_LEN};

use crate::counters::{Counters, CountersSnapshot};
use crate::eventfd;
use crate::pair_fault::PairFault;
use crate::rarp::rarp_announce;
use crate::attachment::Attachment;
use crate::switch::{Accepts, GuestRx, PortKind, Switch, SwitchPort};
use crate::tap::{AppliedOffloads, Tap, TapError};
use crate::worker::{RingSetup, Worker, WorkerConfig, WorkerError, WorkerReport};

/// Ethernet header plus one 802.1Q tag: what a frame adds on top of the MTU.
const L2_OVERHEAD: usize = 14 + 4;
/// Largest GSO frame a TAP hands over (64 KiB IP packet + Ethernet header).
const MAX_GSO_FRAME: usize = 65535 + 14;
/// Legacy virtio-net header without `num_buffers` (neither VERSION_1 nor MRG_RXBUF).
const LEGACY_HDR_LEN: usize = 10;
pub const DEFAULT_MTU: u16 = 1500;
/// SET_VRING_ADDR flags bit: `log_guest_addr` is valid, log the used ring's writes there.
pub const VHOST_VRING_F_LOG: u32 = 0;

/// SET_VRING_ADDR as the front-end sent it: ring addresses are front-end virtual addresses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VringAddrs {
    pub desc_user_addr: u64,
    pub avail_user_addr: u64,
    pub used_user_addr: u64,
    pub flags: u32,
    pub log_guest_addr: u64,
}

/// What a device tells the control plane from its workers' threads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceEvent {
    /// **hostile** (guest): a queue pair stopped because the driver broke a ring.
    Fault { queue_pair: u16, message: String },
    /// A queue pair stopped because something failed on the host side (the TAP deleted under it).
    HostFailure { queue_pair: u16, message: String },
    /// Something worth a log line that needs no action (e.g. a ring resumed at the used index).
    Notice { message: String },
}

pub type EventSink = Arc<dyn Fn(DeviceEvent) + Send + Sync>;

fn guest_fault(queue_pair: u16, message: String) -> DeviceEvent {
    DeviceEvent::Fault { queue_pair, message }
}

fn host_failure(queue_pair: u16, message: String) -> DeviceEvent {
    DeviceEvent::HostFailure { queue_pair, message }
}

#[derive(Debug)]
pub enum DeviceError {
    /// **hostile** (front-end): a queue index past the device's queues.
    BadQueueIndex { index: u16, count: u16 },
    /// **hostile** (front-end): a region table that cannot be mapped (overlap, short file, …).
    Memory(MemoryError),
    /// **hostile** (front-end): a ring whose addresses or size do not fit guest memory.
    Ring { index: u16, source: QueueError },
    /// **hostile** (front-end): ring addresses outside every memory region.
    RingAddress { index: u16, what: &'static str, source: MemoryError },
    /// The TAP refused a setting (vnet header size, offloads).
    Tap(TapError),
    /// A queue pair's worker could not be started.
    Worker { queue_pair: u16, source: WorkerError },
    /// **hostile** (front-end): SET_LOG_BASE with a log that cannot be mapped (short file, …).
    DirtyLog(DirtyLogError),
}

impl DeviceError {
    /// The stable code JavaScript sees on the thrown Error.
    pub fn code(&self) -> &'static str {
        match self {
            DeviceError::BadQueueIndex { .. } => "VU_ERR_BAD_QUEUE_INDEX",
            DeviceError::Memory(_) => "VU_ERR_GUEST_MEMORY",
            DeviceError::Ring { .. } | DeviceError::RingAddress { .. } => "VU_ERR_BAD_RING",
            DeviceError::Tap(_) => "VU_ERR_TAP",
            DeviceError::Worker { .. } => "VU_ERR_WORKER",
            DeviceError::DirtyLog(_) => "VU_ERR_DIRTY_LOG",
        }
    }
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceError::BadQueueIndex { index, count } => write!(f, "queue {index} does not exist (the device has {count})"),
            DeviceError::Memory(e) => write!(f, "memory table refused: {e}"),
            DeviceError::Ring { index, source } => write!(f, "queue {index}: {source}"),
            DeviceError::RingAddress { index, what, source } => write!(f, "queue {index}: {what} ring: {source}"),
            DeviceError::Tap(e) => write!(f, "{e}"),
            DeviceError::Worker { queue_pair, source } => write!(f, "queue pair {queue_pair}: {source}"),
            DeviceError::DirtyLog(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for DeviceError {}

impl From<MemoryError> for DeviceError {
    fn from(e: MemoryError) -> Self {
        DeviceError::Memory(e)
    }
}

impl From<TapError> for DeviceError {
    fn from(e: TapError) -> Self {
        DeviceError::Tap(e)
    }
}

/// One virtqueue's configuration as the front-end set it.
#[derive(Default)]
struct VringSlot {
    num: u16,
    addrs: Option<VringAddrs>,
    /// In `QueueState` form (a packed ring's carries its wrap counter in bit 15); None: no
    /// SET_VRING_BASE since the reset, the start of the ring.
    next_avail: Option<u16>,
    /// Exact while the ring has run since the last SET_VRING_BASE; None means "work it out at
    /// start" (`ring_setup`): a split ring takes the driver's used.idx (a fresh ring, a restored one
    /// after migration or reconnect), a packed ring continues where its avail index is.
    next_used: Option<u16>,
    /// Some ⇔ the ring is started (spec "Ring states").
    kick: Option<Arc<OwnedFd>>,
    call: Option<Arc<OwnedFd>>,
    err: Option<Arc<OwnedFd>>,
    enabled: bool,
}

pub struct NetDevice {
    attachment: Attachment,
    memory: Arc<GuestMemory>,
    /// How many times each region of `memory` was added. QEMU with multiqueue runs one vhost
    /// device per queue pair over the same connection, and each adds (and removes) the same
    /// regions with ADD_MEM_REG / REM_MEM_REG: a region is unmapped when its last user removes it.
    region_refs: Vec<(RegionSpec, u32)>,
    vrings: Vec<VringSlot>,
    workers: Vec<Option<Worker>>,
    counters: Vec<Arc<Counters>>,
    features: u64,
    /// The dirty-page log of the last SET_LOG_BASE. Kept while VHOST_F_LOG_ALL is off, so logging
    /// resumes when the next migration sets it again; replaced by the next SET_LOG_BASE.
    dirty_log: Option<Arc<DirtyLog>>,
    mtu: u16,
    /// Workers' busy-poll budget (zero: event-driven).
    busy_poll: Duration,
    on_event: EventSink,
}

fn has(features: u64, bit: u32) -> bool {
    features & (1u64 << bit) != 0
}

impl NetDevice {
    /// A device with `tap.queue_count()` queue pairs and no memory, no rings.
    pub fn new(tap: Tap, on_event: EventSink) -> NetDevice {
        NetDevice::attached(Attachment::Tap(tap), on_event)
    }

    /// A device on a new port of `switch` (one queue pair); the port goes when the device does.
    pub fn new_switch_port(switch: &Arc<Switch>, name: &str, vlan: u16, on_event: EventSink) -> NetDevice {
        let port = switch.add_port(name, PortKind::VhostUser, vlan);
        NetDevice::attached(Attachment::Switch { switch: switch.clone(), port }, on_event)
    }

    fn attached(attachment: Attachment, on_event: EventSink) -> NetDevice {
        let pairs = attachment.queue_pairs() as usize;
        NetDevice {
            attachment,
            memory: Arc::new(GuestMemory::empty()),
            region_refs: Vec::new(),
            vrings: (0..pairs * 2).map(|_| VringSlot::default()).collect(),
            workers: (0..pairs).map(|_| None).collect(),
            counters: (0..pairs).map(|_| Arc::new(Counters::new())).collect(),
            features: 0,
            dirty_log: None,
            mtu: DEFAULT_MTU,
            busy_poll: Duration::ZERO,
            on_event,
        }
    }

    pub fn queue_pairs(&self) -> u16 {
        self.workers.len() as u16
    }

    /// The TAP's interface name, or the switch port's name.
    pub fn port_name(&self) -> &str {
        self.attachment.name()
    }

    /// The switch port this device is, in switch mode.
    pub fn switch_port(&self) -> Option<&Arc<SwitchPort>> {
        self.attachment.switch_port()
    }

    /// SET_FEATURES: header length, MRG_RXBUF, EVENT_IDX and the TAP offloads follow the driver;
    /// with VHOST_F_LOG_ALL every write into guest memory is logged (workers restart either way).
    /// LOG_ALL before any SET_LOG_BASE is accepted (QEMU with multiqueue may send a second queue
    /// pair's SET_FEATURES first): logging then starts when the log arrives.
    pub fn set_features(&mut self, features: u64) -> Result<AppliedOffloads, DeviceError> {
        let logging = has(features, VHOST_F_LOG_ALL);
        if logging != has(self.features, VHOST_F_LOG_ALL) {
            let message = match &self.dirty_log {
                Some(log) if logging => format!("dirty-page logging on ({} bytes of log)", log.size()),
                None if logging => "dirty-page logging on, waiting for SET_LOG_BASE".to_string(),
                _ => "dirty-page logging off".to_string(),
            };
            (self.on_event)(DeviceEvent::Notice { message });
        }
        self.stop_all();
        let applied = self.apply_features(features);
        let restarted = self.start_all();
        let applied = applied?;
        restarted?;
        Ok(applied)
    }

    fn apply_features(&mut self, features: u64) -> Result<AppliedOffloads, DeviceError> {
        let applied = self.attachment.apply_features(vnet_hdr_len(features), features)?;
        self.features = features;
        Ok(applied)
    }

    /// NET_SET_MTU (or the configured MTU): bounds the RX frames expected without guest GSO.
    /// How long a worker keeps polling after it last found work (see worker.rs); applies to the
    /// queue pairs (re)started from now on.
    pub fn set_busy_poll(&mut self, budget: Duration) {
        self.busy_poll = budget;
    }

    pub fn set_mtu(&mut self, mtu: u16) -> Result<(), DeviceError> {
        self.with_all_stopped(|d| {
            d.mtu = mtu;
            Ok(())
        })
    }

    /// SET_MEM_TABLE: maps every region (the fds are closed once mapped, also on failure) and
    /// replaces the table; running rings are re-translated against the new table.
    pub fn set_mem_table(&mut self, regions: Vec<(RegionSpec, OwnedFd)>) -> Result<(), DeviceError> {
        let mapped = regions
            .into_iter()
            .map(|(spec, fd)| MemoryRegion::map(spec, fd.as_raw_fd()))
            .collect::<Result<Vec<_>, _>>()?;
        let memory = GuestMemory::new(mapped)?;
        self.region_refs = memory.regions().map(|spec| (spec, 1)).collect();
        self.replace_memory(memory)
    }

    /// ADD_MEM_REG. Adding a region identical to one already mapped only counts a new user.
    pub fn add_mem_region(&mut self, spec: RegionSpec, fd: OwnedFd) -> Result<(), DeviceError> {
        if let Some((_, users)) = self.region_refs.iter_mut().find(|(known, _)| *known == spec) {
            *users += 1;
            return Ok(());
        }
        let region = MemoryRegion::map(spec, fd.as_raw_fd())?;
        let memory = self.memory.with_region_added(region)?;
        self.region_refs.push((spec, 1));
        self.replace_memory(memory)
    }

    /// REM_MEM_REG: the region is unmapped when its last user removes it and no worker uses it.
    pub fn remove_mem_region(&mut self, spec: RegionSpec) -> Result<(), DeviceError> {
        let position = self.region_refs.iter().position(|(known, _)| known.guest_phys_addr == spec.guest_phys_addr && known.memory_size == spec.memory_size && known.userspace_addr == spec.userspace_addr);
        let Some(position) = position else {
            return Err(MemoryError::RegionNotFound { guest_phys_addr: spec.guest_phys_addr, memory_size: spec.memory_size }.into());
        };
        self.region_refs[position].1 -= 1;
        if self.region_refs[position].1 > 0 {
            return Ok(());
        }
        let (known, _) = self.region_refs.remove(position);
        let memory = self.memory.with_region_removed(&known)?;
        self.replace_memory(memory)
    }

    /// SET_LOG_BASE: maps the dirty-page log (`fd` is closed once mapped, also on failure). It is
    /// used while VHOST_F_LOG_ALL is negotiated and replaces the previous log.
    pub fn set_log_base(&mut self, mmap_size: u64, mmap_offset: u64, fd: OwnedFd) -> Result<(), DeviceError> {
        let log = DirtyLog::map(fd.as_raw_fd(), mmap_size, mmap_offset).map_err(DeviceError::DirtyLog)?;
        self.with_all_stopped(|d| {
            if let Some(old) = d.dirty_log.replace(Arc::new(log)) {
                if old.missed_pages() > 0 {
                    (d.on_event)(DeviceEvent::Notice {
                        message: format!("the previous dirty log was too small: {} page marks lost", old.missed_pages()),
                    });
                }
            }
            Ok(())
        })
    }

    /// SEND_RARP: broadcasts a RARP announcement from `mac` out of the TAP, so that switches
    /// learn where the guest now is (sent after live migration). No ring is touched.
    /// See `Attachment::stations`.
    pub fn stations(&self, max: usize) -> Vec<[u8; 6]> {
        self.attachment.stations(max)
    }

    /// See `Attachment::adopt_stations`.
    pub fn adopt_stations(&self, macs: &[[u8; 6]]) {
        self.attachment.adopt_stations(macs);
    }

    pub fn send_rarp(&self, mac: [u8; 6]) -> Result<(), DeviceError> {
        Ok(self.attachment.send_frame(vnet_hdr_len(self.features), &rarp_announce(mac))?)
    }

    fn replace_memory(&mut self, memory: GuestMemory) -> Result<(), DeviceError> {
        self.with_all_stopped(|d| {
            d.memory = Arc::new(memory);
            Ok(())
        })
    }

    pub fn set_vring_num(&mut self, index: u16, num: u16) -> Result<(), DeviceError> {
        self.with_ring_stopped(index, |slot| slot.num = num)
    }

    /// SET_VRING_ADDR: the addresses are checked against the memory table now, so a bad one fails
    /// this request rather than a later SET_VRING_KICK.
    pub fn set_vring_addr(&mut self, index: u16, addrs: VringAddrs) -> Result<(), DeviceError> {
        self.check_index(index)?;
        let num = self.vrings[index as usize].num.max(1);
        translate_rings(&self.memory, index, &addrs, num, self.packed())?;
        self.with_ring_stopped(index, |slot| slot.addrs = Some(addrs))
    }

    /// SET_VRING_BASE: where the ring resumes. Split: `base` is the next avail index (16 bits); the
    /// used index is taken from the driver's ring. Packed (vhost-user spec, "Vring descriptor
    /// indices for packed virtqueues"): bits 0–15 are the avail position and wrap counter; the used
    /// index continues from the same place, as in DPDK (every buffer taken was used when the ring
    /// stopped; front-ends differ in what they put in bits 16–31).
    pub fn set_vring_base(&mut self, index: u16, base: u32) -> Result<(), DeviceError> {
        self.with_ring_stopped(index, |slot| {
            slot.next_avail = Some(base as u16);
            slot.next_used = None;
        })
    }

    /// GET_VRING_BASE: stops the ring and returns where it would have gone on: split, the next
    /// avail index; packed, the avail position and wrap counter in bits 0–15 and the used ones in
    /// bits 16–31. Everything the ring consumed is in the used ring and published. The enable state
    /// is kept: it is a separate property of the ring (spec "Ring states"), so a ring restarted by
    /// SET_VRING_KICK is not drained as "disabled" before the front-end re-enables it.
    pub fn get_vring_base(&mut self, index: u16) -> Result<u32, DeviceError> {
        self.with_ring_stopped(index, |slot| slot.kick = None)?;
        let slot = &self.vrings[index as usize];
        let avail = slot.next_avail.unwrap_or(self.ring_start());
        Ok(if self.packed() { u32::from(avail) | u32::from(slot.next_used.unwrap_or(avail)) << 16 } else { u32::from(avail) })
    }

    /// VIRTIO_F_RING_PACKED was negotiated.
    fn packed(&self) -> bool {
        has(self.features, VIRTIO_F_RING_PACKED)
    }

    /// The index of a ring's first buffer in the negotiated layout.
    fn ring_start(&self) -> u16 {
        if self.packed() {
            PACKED_RING_START
        } else {
            0
        }
    }

    /// SET_VRING_KICK: the ring is started and processed from now on (what is already available
    /// is processed at once: a kick sent before the ring started is not lost).
    pub fn set_vring_kick(&mut self, index: u16, kick: OwnedFd) -> Result<(), DeviceError> {
        self.with_ring_stopped(index, |slot| slot.kick = Some(Arc::new(kick)))
    }

    pub fn set_vring_call(&mut self, index: u16, call: Option<OwnedFd>) -> Result<(), DeviceError> {
        self.with_ring_stopped(index, |slot| slot.call = call.map(Arc::new))
    }

    pub fn set_vring_err(&mut self, index: u16, err: Option<OwnedFd>) -> Result<(), DeviceError> {
        self.with_ring_stopped(index, |slot| slot.err = err.map(Arc::new))
    }

    pub fn set_vring_enable(&mut self, index: u16, enabled: bool) -> Result<(), DeviceError> {
        self.with_ring_stopped(index, |slot| slot.enabled = enabled)
    }

    /// Back to a fresh device: rings stopped, memory unmapped, every fd closed. The TAP stays open.
    pub fn reset(&mut self) {
        self.stop_all();
        self.memory = Arc::new(GuestMemory::empty());
        self.region_refs.clear();
        self.vrings.iter_mut().for_each(|slot| *slot = VringSlot::default());
        self.features = 0;
        self.dirty_log = None;
    }

    pub fn counters(&self) -> Vec<CountersSnapshot> {
        self.counters.iter().map(|c| c.snapshot()).collect()
    }

    fn check_index(&self, index: u16) -> Result<(), DeviceError> {
        if (index as usize) < self.vrings.len() {
            Ok(())
        } else {
            Err(DeviceError::BadQueueIndex { index, count: self.vrings.len() as u16 })
        }
    }

    fn with_ring_stopped(&mut self, index: u16, change: impl FnOnce(&mut VringSlot)) -> Result<(), DeviceError> {
        self.check_index(index)?;
        let pair = index / 2;
        self.stop_pair(pair);
        change(&mut self.vrings[index as usize]);
        self.start_pair(pair)
    }

    fn with_all_stopped(&mut self, change: impl FnOnce(&mut Self) -> Result<(), DeviceError>) -> Result<(), DeviceError> {
        self.stop_all();
        let changed = change(self);
        let restarted = self.start_all();
        changed?;
        restarted
    }

    fn stop_all(&mut self) {
        (0..self.queue_pairs()).for_each(|pair| self.stop_pair(pair));
    }

    /// Starts every pair that can run; the first error is returned, the other pairs still start.
    fn start_all(&mut self) -> Result<(), DeviceError> {
        let mut first_error = None;
        for pair in 0..self.queue_pairs() {
            if let Err(e) = self.start_pair(pair) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn stop_pair(&mut self, pair: u16) {
        // In switch mode the RX ring is attached to the switch port, not to the worker.
        let switch_rx = self.attachment.switch_port().and_then(|port| port.detach_guest_rx());
        let report = match self.workers[pair as usize].take() {
            Some(worker) => worker.stop(),
            None => WorkerReport { rx: None, tx: None, fault: None },
        };
        for (state, index) in [(report.rx.or(switch_rx), pair * 2), (report.tx, pair * 2 + 1)] {
            if let Some(state) = state {
                let slot = &mut self.vrings[index as usize];
                slot.next_avail = Some(state.next_avail);
                slot.next_used = Some(state.next_used);
            }
        }
    }

    /// Starts the pair's worker if at least one of its rings is started and fully configured.
    fn start_pair(&mut self, pair: u16) -> Result<(), DeviceError> {
        debug_assert!(self.workers[pair as usize].is_none());
        let mut rx = self.ring_setup(pair * 2)?;
        let tx = self.ring_setup(pair * 2 + 1)?;
        let hdr_len = vnet_hdr_len(self.features);
        let pair_fault = Arc::new(PairFault::default());
        // In switch mode the RX ring goes to the switch port, which fills it from any sender.
        let switch_rx = if self.attachment.switch_port().is_some() { rx.take() } else { None };
        if let Some(setup) = switch_rx {
            let port = self.attachment.switch_port().expect("switch mode");
            let queue = Virtqueue::new(self.worker_memory(), setup.state).map_err(|source| DeviceError::Ring { index: pair * 2, source })?;
            let mrg_rxbuf = has(self.features, VIRTIO_NET_F_MRG_RXBUF);
            // The port detaches a ring that broke itself (and calls this under its lock).
            let accepts = Accepts::guest(self.features);
            let on_fault = self.stop_reporter(pair, &pair_fault, None, guest_fault);
            port.attach_guest_rx(GuestRx::new(queue, setup.call, setup.enabled, mrg_rxbuf, hdr_len, accepts), on_fault);
        }
        if rx.is_none() && tx.is_none() {
            return Ok(());
        }
        let config = WorkerConfig {
            memory: self.worker_memory(),
            rx,
            tx,
            port: self.attachment.worker_port(pair, hdr_len),
            mrg_rxbuf: has(self.features, VIRTIO_NET_F_MRG_RXBUF),
            vnet_hdr_len: hdr_len,
            max_rx_frame: max_rx_frame(self.features, self.mtu, hdr_len),
            counters: self.counters[pair as usize].clone(),
            // A TX fault cuts off the RX ring the switch port serves, too.
            on_fault: self.stop_reporter(pair, &pair_fault, self.attachment.switch_port().cloned(), guest_fault),
            on_host_failure: self.stop_reporter(pair, &pair_fault, self.attachment.switch_port().cloned(), host_failure),
            pair_fault,
            busy_poll: self.busy_poll,
        };
        let worker = Worker::start(config).map_err(|source| DeviceError::Worker { queue_pair: pair, source })?;
        self.workers[pair as usize] = Some(worker);
        Ok(())
    }

    /// The memory a worker writes through: with VHOST_F_LOG_ALL, every write is logged.
    fn worker_memory(&self) -> Arc<GuestMemory> {
        match &self.dirty_log {
            Some(log) if has(self.features, VHOST_F_LOG_ALL) => Arc::new(self.memory.with_write_log(log.clone())),
            _ => self.memory.clone(),
        }
    }

    /// On the first stop of the pair (a guest fault or a host failure, either ring, any thread):
    /// detach `switch_rx`'s RX ring if given, signal the pair's error eventfds (SET_VRING_ERR) and
    /// tell the control plane with `event`. Later stops of the same pair are not reported again.
    fn stop_reporter(&self, pair: u16, pair_fault: &Arc<PairFault>, switch_rx: Option<Arc<SwitchPort>>, event: fn(u16, String) -> DeviceEvent) -> Box<dyn Fn(String) + Send> {
        let err_fds: Vec<Arc<OwnedFd>> =
            [pair * 2, pair * 2 + 1].iter().filter_map(|&i| self.vrings[i as usize].err.clone()).collect();
        let on_event = self.on_event.clone();
        let pair_fault = pair_fault.clone();
        Box::new(move |message| {
            if !pair_fault.trip() {
                return;
            }
            // Called on the worker thread, which holds no port lock (it never forwards to its own port).
            if let Some(port) = &switch_rx {
                port.detach_guest_rx();
            }
            err_fds.iter().for_each(|fd| eventfd::signal(fd));
            on_event(event(pair, message));
        })
    }

    /// The ring's saved state, if it is started and configured (None: not started yet).
    fn ring_setup(&mut self, index: u16) -> Result<Option<RingSetup>, DeviceError> {
        let slot = &self.vrings[index as usize];
        let (Some(kick), Some(addrs)) = (slot.kick.clone(), slot.addrs) else { return Ok(None) };
        if slot.num == 0 || self.memory.regions().next().is_none() {
            return Ok(None);
        }
        let packed = self.packed();
        let (desc_addr, avail_addr, used_addr) = translate_rings(&self.memory, index, &addrs, slot.num, packed)?;
        let next_avail = slot.next_avail.unwrap_or(self.ring_start());
        let (next_avail, next_used) = match slot.next_used {
            Some(used) => (next_avail, used),
            // No used index in guest memory: every buffer taken was used when the ring stopped.
            None if packed => (next_avail, next_avail),
            None => self.resume_used_index(index, used_addr, next_avail)?,
        };
        let slot = &mut self.vrings[index as usize];
        (slot.next_avail, slot.next_used) = (Some(next_avail), Some(next_used));
        let state = QueueState {
            packed,
            size: slot.num,
            desc_addr,
            avail_addr,
            used_addr,
            next_avail,
            next_used,
            event_idx: has(self.features, VIRTIO_RING_F_EVENT_IDX),
            used_log_addr: (addrs.flags & (1 << VHOST_VRING_F_LOG) != 0).then_some(addrs.log_guest_addr),
        };
        Ok(Some(RingSetup { state, kick, call: slot.call.clone(), enabled: slot.enabled }))
    }

    /// A split ring (re)started from SET_VRING_BASE (`base`) continues at the driver's used.idx,
    /// returned as the next avail and used indices. If the base differs, chains between them were
    /// taken by a previous back-end but never completed: like DPDK we resume at used.idx (TX frames
    /// among them may be sent twice; RX buffers are reused).
    fn resume_used_index(&self, index: u16, used_addr: u64, base: u16) -> Result<(u16, u16), DeviceError> {
        let used_idx: u16 = self
            .memory
            .read_obj(used_addr + 2)
            .map_err(|source| DeviceError::RingAddress { index, what: "used", source })?;
        if used_idx != base {
            (self.on_event)(DeviceEvent::Notice {
                message: format!("queue {index}: base {base} differs from the driver's used index {used_idx}; resuming at {used_idx} (in-flight chains are redone)"),
            });
        }
        Ok((used_idx, used_idx))
    }
}

impl Drop for NetDevice {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// virtio 1.2 §5.1.6: the header has `num_buffers` (12 bytes) with VERSION_1 or MRG_RXBUF.
pub fn vnet_hdr_len(features: u64) -> usize {
    if has(features, VIRTIO_F_VERSION_1) || has(features, VIRTIO_NET_F_MRG_RXBUF) {
        VIRTIO_NET_HDR_LEN
    } else {
        LEGACY_HDR_LEN
    }
}

/// The largest frame (header included) the TAP may hand to this guest: a whole GSO super-frame
/// when the guest accepts TSO/UFO, otherwise one MTU-sized frame.
pub fn max_rx_frame(features: u64, mtu: u16, hdr_len: usize) -> usize {
    let gso = [VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6, VIRTIO_NET_F_GUEST_UFO, VIRTIO_NET_F_GUEST_USO4, VIRTIO_NET_F_GUEST_USO6]
        .iter()
        .any(|&bit| has(features, bit));
    hdr_len + if gso { MAX_GSO_FRAME } else { mtu as usize + L2_OVERHEAD }
}

/// Front-end virtual ring addresses → guest-physical, each whole ring inside one region
/// (sizes from virtio 1.2 §2.7: desc 16·n, avail 6 + 2·n, used 6 + 8·n).
fn translate_rings(memory: &GuestMemory, index: u16, addrs: &VringAddrs, num: u16, packed: bool) -> Result<(u64, u64, u64), DeviceError> {
    let n = num as usize;
    let gpa = |what, user_addr, len| {
        memory.user_to_guest(user_addr, len).map_err(|source| DeviceError::RingAddress { index, what, source })
    };
    // Split: descriptor table, avail ring, used ring. Packed: descriptor ring, then the driver's
    // and the device's event suppression structures (4 bytes each) in the avail/used places.
    let (avail_len, used_len) = if packed { (4, 4) } else { (6 + 2 * n, 6 + 8 * n) };
    Ok((
        gpa("descriptor", addrs.desc_user_addr, 16 * n)?,
        gpa("available", addrs.avail_user_addr, avail_len)?,
        gpa("used", addrs.used_user_addr, used_len)?,
    ))
}
