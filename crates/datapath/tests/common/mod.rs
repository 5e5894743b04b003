//! Test rig for the data path: a mock guest (vring::mock) with an RX and a TX ring, a real TAP in a
//! fresh network namespace private to the test thread (so nothing leaks, even when a test fails),
//! an AF_PACKET socket on that TAP to see what the guest sent and to inject frames towards it, and
//! the eventfds a front-end would hand over.
#![allow(dead_code)] // each test binary uses a different part of the rig

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use datapath::{Counters, RingSetup, Tap, Worker, WorkerConfig};
pub use vring::mock::RecordingLog;
use vring::mock::{MockDriver, MockGuest};
use vring::GuestMemory;

pub const QUEUE_SIZE: u16 = 256;
pub const MEM_SIZE: u64 = 8 << 20;
pub const RX_BASE: u64 = 0;
pub const RX_DATA_END: u64 = 0x40_0000;
pub const TX_BASE: u64 = 0x40_0000;
pub const TX_DATA_END: u64 = 0x80_0000;

/// Source MAC of frames the guest sends / destination of frames injected for the guest.
pub const GUEST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
/// Source MAC of frames injected from the host side.
pub const HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// IEEE 802 local experimental ethertype: nothing else on the TAP uses it.
pub const TEST_ETHERTYPE: u16 = 0x88b5;

/// Runs `f` on a new thread inside a fresh network namespace, which disappears (with every TAP in
/// it) when the thread ends and its fds are closed. Panics in `f` are re-raised.
pub fn in_fresh_netns<F: FnOnce() + Send + 'static>(f: F) {
    let handle = std::thread::spawn(move || {
        // SAFETY: unshare(CLONE_NEWNET) only changes this thread's network namespace.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "unshare(CLONE_NEWNET): {} (tests need root)",
            std::io::Error::last_os_error()
        );
        // No IPv6 autoconfiguration chatter (router solicitations, MLD) on the test TAP: it would
        // land in the guest's RX ring.
        std::fs::write("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1").ok();
        f();
    });
    if let Err(panic) = handle.join() {
        std::panic::resume_unwind(panic);
    }
}

/// A TAP name unique to this process and call.
pub fn unique_tap_name() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "vutst{}{}",
        std::process::id() % 100_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Polls `cond` every millisecond for up to 5 s (test-side only; the worker itself never polls).
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

pub fn new_eventfd() -> Arc<OwnedFd> {
    // SAFETY: plain syscall; the fd is owned right below.
    let raw = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    assert!(raw >= 0);
    // SAFETY: fresh fd owned by nobody else.
    Arc::new(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// A front-end kick: eventfd += 1.
pub fn kick(fd: &OwnedFd) {
    let one = 1u64;
    // SAFETY: writes 8 bytes from a live u64.
    let n = unsafe { libc::write(fd.as_raw_fd(), &one as *const u64 as *const libc::c_void, 8) };
    assert_eq!(n, 8);
}

/// Reads and resets a (non-blocking) call eventfd: how many interrupts were signalled since.
pub fn take_calls(fd: &OwnedFd) -> u64 {
    let mut v = 0u64;
    // SAFETY: reads 8 bytes into a live u64.
    let n = unsafe { libc::read(fd.as_raw_fd(), &mut v as *mut u64 as *mut libc::c_void, 8) };
    if n == 8 {
        v
    } else {
        0
    }
}

/// An Ethernet frame of `len` bytes with our test ethertype and a recognisable payload.
pub fn test_frame(dst: [u8; 6], src: [u8; 6], len: usize, seed: u8) -> Vec<u8> {
    assert!(len >= 14);
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&TEST_ETHERTYPE.to_be_bytes());
    f.extend((0..len - 14).map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed)));
    f
}

/// AF_PACKET socket bound to one interface: receives what arrives on it, sends out of it.
pub struct PacketSocket {
    fd: OwnedFd,
    /// Received frames start with a 10-byte virtio_net_hdr.
    vnet_hdr: bool,
}

impl PacketSocket {
    /// Like `bind`, with PACKET_VNET_HDR: every received frame is preceded by the 10-byte
    /// `struct virtio_net_hdr` the kernel derived from the skb (shows checksum/GSO metadata).
    pub fn bind_vnet_hdr(ifname: &str) -> PacketSocket {
        const PACKET_VNET_HDR: libc::c_int = 15;
        let mut sock = PacketSocket::bind(ifname);
        let one: libc::c_int = 1;
        // SAFETY: setsockopt reads one int from a live value.
        let rc = unsafe {
            libc::setsockopt(
                sock.fd.as_raw_fd(),
                libc::SOL_PACKET,
                PACKET_VNET_HDR,
                &one as *const libc::c_int as *const libc::c_void,
                4,
            )
        };
        assert_eq!(
            rc,
            0,
            "PACKET_VNET_HDR: {}",
            std::io::Error::last_os_error()
        );
        sock.vnet_hdr = true;
        sock
    }

    pub fn bind(ifname: &str) -> PacketSocket {
        let proto = (libc::ETH_P_ALL as u16).to_be() as i32;
        // SAFETY: plain syscall; the fd is owned right below.
        let raw =
            unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, proto) };
        assert!(
            raw >= 0,
            "AF_PACKET socket: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: fresh fd owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let cname = std::ffi::CString::new(ifname).unwrap();
        // SAFETY: NUL-terminated name.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) } as i32;
        assert!(ifindex > 0, "no interface {ifname}");
        // SAFETY: zeroed sockaddr_ll is a valid value; fields set below.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto as u16;
        sll.sll_ifindex = ifindex;
        // SAFETY: `sll` is a valid sockaddr_ll of the given size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(rc, 0, "bind AF_PACKET: {}", std::io::Error::last_os_error());
        PacketSocket {
            fd,
            vnet_hdr: false,
        }
    }

    /// Sends `frame` out of the interface (towards the TAP fd, i.e. towards the guest).
    pub fn send(&self, frame: &[u8]) {
        // SAFETY: `frame` is a live buffer of frame.len() bytes.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        assert_eq!(
            n,
            frame.len() as isize,
            "AF_PACKET send: {}",
            std::io::Error::last_os_error()
        );
    }

    /// The next frame that arrived on the interface (sent by the guest) with source MAC `src`,
    /// waiting up to `timeout`.
    pub fn recv_from(&self, src: [u8; 6], timeout: Duration) -> Option<Vec<u8>> {
        const PACKET_OUTGOING: u8 = 4;
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 70_000];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            if unsafe { libc::poll(&mut pfd, 1, left.as_millis().max(1) as i32) } <= 0 {
                continue;
            }
            // SAFETY: zeroed sockaddr_ll is valid; recvfrom writes at most `len` bytes into each buffer.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut sll_len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            // SAFETY: `buf` and `sll` are live and sized as passed.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                    &mut sll as *mut libc::sockaddr_ll as *mut libc::sockaddr,
                    &mut sll_len,
                )
            };
            let mac = if self.vnet_hdr { 10 } else { 0 } + 6;
            if (n as usize) < mac + 8
                || sll.sll_pkttype == PACKET_OUTGOING
                || buf[mac..mac + 6] != src
            {
                continue;
            }
            return Some(buf[..n as usize].to_vec());
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Variant {
    pub vnet_hdr_len: usize,
    pub mrg_rxbuf: bool,
    pub event_idx: bool,
}

pub const PLAIN: Variant = Variant {
    vnet_hdr_len: 12,
    mrg_rxbuf: false,
    event_idx: false,
};
pub const MERGEABLE: Variant = Variant {
    vnet_hdr_len: 12,
    mrg_rxbuf: true,
    event_idx: false,
};
pub const MERGEABLE_EVENT_IDX: Variant = Variant {
    vnet_hdr_len: 12,
    mrg_rxbuf: true,
    event_idx: true,
};
pub const LEGACY_HDR: Variant = Variant {
    vnet_hdr_len: 10,
    mrg_rxbuf: false,
    event_idx: false,
};

/// One guest, one queue pair, one TAP. Must be created inside `in_fresh_netns`.
pub struct Rig {
    pub variant: Variant,
    pub guest: MockGuest,
    /// What the worker sees: the guest memory with a recording write log.
    pub device_memory: Arc<GuestMemory>,
    pub log: Arc<RecordingLog>,
    pub rx: MockDriver,
    pub tx: MockDriver,
    pub rx_kick: Arc<OwnedFd>,
    pub rx_call: Arc<OwnedFd>,
    pub tx_kick: Arc<OwnedFd>,
    pub tx_call: Arc<OwnedFd>,
    pub tap: Arc<Tap>,
    /// The TAP queue (= queue pair) this rig's worker serves.
    pub queue: u16,
    pub sock: PacketSocket,
    pub counters: Arc<Counters>,
    pub faults: Arc<Mutex<Vec<String>>>,
    pub host_failures: Arc<Mutex<Vec<String>>>,
    /// Largest frame the TAP may deliver, header included.
    pub max_rx_frame: usize,
}

impl Rig {
    /// A rig on a new single-queue TAP.
    pub fn new(variant: Variant) -> Rig {
        let tap = Tap::open(&unique_tap_name(), 1).expect("open TAP");
        Rig::on_queue(variant, Arc::new(tap), 0)
    }

    /// A rig (its own guest memory and rings) served through queue `queue` of `tap`.
    pub fn on_queue(variant: Variant, tap: Arc<Tap>, queue: u16) -> Rig {
        let name = tap.name().to_string();
        Rig::with_network(variant, tap, queue, &name)
    }

    /// As `on_queue`, with the network side played on interface `network` (for a TAP, the TAP
    /// itself; for a macvtap, the other end of the link it sits on).
    pub fn with_network(variant: Variant, tap: Arc<Tap>, queue: u16, network: &str) -> Rig {
        let guest = MockGuest::new(MEM_SIZE);
        let log = Arc::new(RecordingLog::default());
        let device_memory = Arc::new(guest.memory().with_write_log(log.clone()));
        let rx = MockDriver::with_layout(guest.memory(), QUEUE_SIZE, RX_BASE, RX_DATA_END, 1);
        let tx = MockDriver::with_layout(guest.memory(), QUEUE_SIZE, TX_BASE, TX_DATA_END, 2);
        tap.set_vnet_hdr_len(variant.vnet_hdr_len)
            .expect("TUNSETVNETHDRSZ");
        tap.set_link_up().expect("link up");
        let sock = PacketSocket::bind(network);
        Rig {
            variant,
            guest,
            device_memory,
            log,
            rx,
            tx,
            rx_kick: new_eventfd(),
            rx_call: new_eventfd(),
            tx_kick: new_eventfd(),
            tx_call: new_eventfd(),
            tap,
            queue,
            sock,
            counters: Arc::new(Counters::new()),
            faults: Arc::new(Mutex::new(Vec::new())),
            host_failures: Arc::new(Mutex::new(Vec::new())),
            max_rx_frame: 1500 + 26,
        }
    }

    /// A worker configuration; `rx` / `tx`: None = ring not started, Some(enabled).
    pub fn config(&self, rx: Option<bool>, tx: Option<bool>) -> WorkerConfig {
        let faults = self.faults.clone();
        let host_failures = self.host_failures.clone();
        WorkerConfig {
            memory: self.device_memory.clone(),
            rx: rx.map(|enabled| RingSetup {
                state: self.rx.state(self.variant.event_idx),
                kick: self.rx_kick.clone(),
                call: Some(self.rx_call.clone()),
                enabled,
            }),
            tx: tx.map(|enabled| RingSetup {
                state: self.tx.state(self.variant.event_idx),
                kick: self.tx_kick.clone(),
                call: Some(self.tx_call.clone()),
                enabled,
            }),
            port: datapath::port::Port::Tap(self.tap.queue_fd(self.queue).unwrap()),
            mrg_rxbuf: self.variant.mrg_rxbuf,
            vnet_hdr_len: self.variant.vnet_hdr_len,
            max_rx_frame: self.max_rx_frame,
            counters: self.counters.clone(),
            on_fault: Box::new(move |reason| faults.lock().unwrap().push(reason)),
            on_host_failure: Box::new(move |reason| host_failures.lock().unwrap().push(reason)),
            pair_fault: Arc::default(),
            busy_poll: std::time::Duration::ZERO,
        }
    }

    /// Starts a worker with both rings started and enabled.
    pub fn start(&self) -> Worker {
        Worker::start(self.config(Some(true), Some(true))).expect("worker start")
    }

    /// The guest sends `frame` behind `hdr` (vnet_hdr_len bytes), split into pieces of the given
    /// sizes (the last piece takes the rest). Returns the head.
    pub fn guest_send(&mut self, hdr: &[u8], frame: &[u8], split: &[usize]) -> u16 {
        assert_eq!(hdr.len(), self.variant.vnet_hdr_len);
        let mut bytes = hdr.to_vec();
        bytes.extend_from_slice(frame);
        let mut bufs = Vec::new();
        let mut at = 0;
        let last = bytes.len();
        for end in split
            .iter()
            .scan(0, |sum, &p| {
                *sum += p;
                Some((*sum).min(last))
            })
            .chain(std::iter::once(last))
        {
            if end > at {
                let addr = self.tx.alloc((end - at) as u32);
                self.tx.write_bytes(addr, &bytes[at..end]);
                bufs.push((addr, (end - at) as u32, false));
                at = end;
            }
        }
        let head = self.tx.add_desc_chain(&bufs);
        self.tx.publish_avail();
        head
    }

    /// The guest posts RX chains (each a list of writable buffer sizes), publishes them once and
    /// kicks the way a real driver does: only if the device asked for it (used.flags NO_NOTIFY
    /// clear, or with EVENT_IDX when avail.idx crosses avail_event, §2.7.10). Returns, per chain,
    /// the head and its buffers.
    pub fn guest_post_rx(&mut self, chains: &[&[u32]]) -> Vec<(u16, Vec<vring::Buf>)> {
        let avail_idx_gpa = self.rx.state(false).avail_addr + 2;
        let read_avail_idx = |rx: &MockDriver| {
            let b = rx.read_bytes(avail_idx_gpa, 2);
            u16::from_le_bytes([b[0], b[1]])
        };
        let old = read_avail_idx(&self.rx);
        let posted = chains
            .iter()
            .map(|lens| {
                let spec: Vec<(u32, bool)> = lens.iter().map(|&l| (l, true)).collect();
                self.rx.add_alloc_chain(&spec)
            })
            .collect();
        self.rx.publish_avail();
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        let new = read_avail_idx(&self.rx);
        let wanted = if self.variant.event_idx {
            vring::vring_need_event(self.rx.avail_event(), new, old)
        } else {
            self.rx.used_flags() & vring::VRING_USED_F_NO_NOTIFY == 0
        };
        if wanted {
            kick(&self.rx_kick);
        }
        posted
    }

    /// Sends `frame` from the host side of the TAP towards the guest.
    pub fn host_send(&self, frame: &[u8]) {
        self.sock.send(frame);
    }

    /// Reads back the first `len` bytes written into an RX chain's buffers.
    pub fn read_chain(&self, bufs: &[vring::Buf], len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for b in bufs {
            let take = (len - out.len()).min(b.len as usize);
            out.extend(self.rx.read_bytes(b.addr, take));
            if out.len() == len {
                break;
            }
        }
        out
    }

    pub fn faults(&self) -> Vec<String> {
        self.faults.lock().unwrap().clone()
    }

    pub fn host_failures(&self) -> Vec<String> {
        self.host_failures.lock().unwrap().clone()
    }
}
