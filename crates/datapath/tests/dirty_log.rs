//! Dirty-page logging through the whole device: SET_LOG_BASE maps the log, VHOST_F_LOG_ALL makes
//! the workers log every RX buffer and used-ring write, clearing it stops logging, and setting it
//! again (a second migration, no new SET_LOG_BASE) logs again into the same log; and a copy of
//! guest memory kept up to date from the log while frames arrive, as QEMU keeps one, ends equal
//! to guest memory — with a TAP and on a switch port.

mod common;

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use datapath::device::{NetDevice, VringAddrs, VHOST_VRING_F_LOG};
use datapath::switch::{Switch, TapUplink};
use datapath::Tap;
use vring::features::{VHOST_F_LOG_ALL, VIRTIO_F_VERSION_1, VIRTIO_NET_F_MRG_RXBUF};
use vring::mmap::Mmap;
use vring::mock::{memfd, MockDriver, MOCK_USER_BASE};
use vring::{GuestMemory, MemoryRegion, QueueState, RegionSpec, VHOST_LOG_PAGE};

/// 8 MiB of guest memory = 2048 pages = 256 bytes of log.
const LOG_SIZE: u64 = MEM_SIZE / VHOST_LOG_PAGE / 8;

fn dup(fd: &OwnedFd) -> OwnedFd {
    fd.try_clone().expect("dup")
}

/// The pages whose bits are set, read as native-endian u64 words; the log is cleared after
/// reading (what QEMU's log sync does).
fn collect_dirty(view: &Mmap) -> Vec<u64> {
    let mut pages = Vec::new();
    for w in 0..view.len() / 8 {
        // SAFETY: 8-byte aligned word inside the mapping (page-aligned base, w * 8 + 8 <= len).
        let word = unsafe { &*view.as_ptr().add(8 * w).cast::<AtomicU64>() };
        let bits = word.swap(0, Ordering::SeqCst);
        pages.extend((0..64).filter(|b| bits & (1 << b) != 0).map(|b| w as u64 * 64 + b));
    }
    pages
}

/// A device whose RX ring (ring 0, driven by `rx`) runs with a dirty log: the device, the
/// guest's memory as the front-end maps it, and the log.
struct LoggedRx {
    device: NetDevice,
    rx: MockDriver,
    state: QueueState,
    memory: Mmap,
    log: Arc<Mmap>,
    kick: Arc<OwnedFd>,
    _call: Arc<OwnedFd>,
}

impl LoggedRx {
    /// Everything set up but the features (LOG_ALL is the caller's). On the way it checks that
    /// a log file shorter than SET_LOG_BASE claims is refused before it is mapped.
    fn on(mut device: NetDevice) -> LoggedRx {
        let guest_fd = memfd(MEM_SIZE);
        let spec = RegionSpec { guest_phys_addr: 0, memory_size: MEM_SIZE, userspace_addr: MOCK_USER_BASE, mmap_offset: 0 };
        let driver_view = GuestMemory::new(vec![MemoryRegion::map(spec, guest_fd.as_raw_fd()).unwrap()]).unwrap();
        let memory = Mmap::map_shared(guest_fd.as_raw_fd(), 0, MEM_SIZE as usize, 0).unwrap();
        let rx = MockDriver::with_layout(&driver_view, QUEUE_SIZE, RX_BASE, RX_DATA_END, 1);
        let state = rx.state(false);
        device.set_mem_table(vec![(spec, dup(&guest_fd))]).unwrap();

        // A log that is too short for what it claims is refused before it is mapped.
        let short = memfd(LOG_SIZE - 1);
        let err = device.set_log_base(LOG_SIZE, 0, short).unwrap_err();
        assert_eq!(err.code(), "VU_ERR_DIRTY_LOG");
        let log_fd = memfd(LOG_SIZE);
        let log = Arc::new(Mmap::map_shared(log_fd.as_raw_fd(), 0, LOG_SIZE as usize, 0).unwrap());
        device.set_log_base(LOG_SIZE, 0, dup(&log_fd)).unwrap();

        let call = new_eventfd();
        let kick = new_eventfd();
        device.set_vring_num(0, QUEUE_SIZE).unwrap();
        let addrs = VringAddrs {
            desc_user_addr: MOCK_USER_BASE + state.desc_addr,
            avail_user_addr: MOCK_USER_BASE + state.avail_addr,
            used_user_addr: MOCK_USER_BASE + state.used_addr,
            flags: 1 << VHOST_VRING_F_LOG,
            log_guest_addr: state.used_addr,
        };
        device.set_vring_addr(0, addrs).unwrap();
        device.set_vring_base(0, 0).unwrap();
        device.set_vring_call(0, Some(dup(&call))).unwrap();
        device.set_vring_kick(0, dup(&kick)).unwrap();
        device.set_vring_enable(0, true).unwrap();
        LoggedRx { device, rx, state, memory, log, kick, _call: call }
    }
}

/// A device on a TAP (call in a fresh netns) and a socket on the TAP's far side.
fn tap_device() -> (NetDevice, PacketSocket) {
    let tap = Tap::open(&unique_tap_name(), 1).expect("open TAP");
    tap.set_link_up().expect("link up");
    let sock = PacketSocket::bind(tap.name());
    (NetDevice::new(tap, Arc::new(|_| {})), sock)
}

#[test]
fn log_all_logs_rx_buffers_and_used_ring_and_survives_a_second_migration() {
    in_fresh_netns(|| {
        let (device, sock) = tap_device();
        let LoggedRx { mut device, mut rx, state, log, .. } = LoggedRx::on(device);

        let used_page = state.used_addr / VHOST_LOG_PAGE;
        let mut delivered = 0u16;
        let mut deliver_one = |rx: &mut MockDriver, seed: u8| -> Vec<u64> {
            // One chain of two buffers: the frame fills the first and spills into the second.
            let (_, bufs) = rx.add_alloc_chain(&[(600, true), (2000, true)]);
            rx.publish_avail();
            sock.send(&test_frame(GUEST_MAC, HOST_MAC, 1000, seed));
            delivered += 1;
            wait_until("used element", || rx.used_idx() == delivered);
            let mut left = 12 + 1000;
            let mut pages = vec![used_page];
            for buf in &bufs {
                let n = left.min(u64::from(buf.len));
                pages.extend(buf.addr / VHOST_LOG_PAGE..=(buf.addr + n - 1) / VHOST_LOG_PAGE);
                left -= n;
            }
            pages.sort();
            pages.dedup();
            pages
        };

        for round in 0..2u8 {
            device.set_features(1 << VIRTIO_F_VERSION_1 | 1 << VHOST_F_LOG_ALL).unwrap();
            collect_dirty(&log);
            let expected = deliver_one(&mut rx, 2 * round);
            // The worker published used.idx after logging; stopping it orders the rest.
            std::thread::sleep(Duration::from_millis(20));
            assert_eq!(collect_dirty(&log), expected, "migration {round}: exactly the pages written");

            device.set_features(1 << VIRTIO_F_VERSION_1).unwrap();
            deliver_one(&mut rx, 2 * round + 1);
            std::thread::sleep(Duration::from_millis(20));
            assert_eq!(collect_dirty(&log), Vec::<u64>::new(), "logging off after migration {round}");
        }
        drop(device);
    });
}

/// QEMU's half of the log while a migration runs: it clears the dirty bits with atomic swaps and
/// copies those pages of guest memory into the copy that the destination would get.
fn copy_dirty_pages(log: &Mmap, memory: &Mmap, copy: &mut [u8]) {
    let page = VHOST_LOG_PAGE as usize;
    for p in collect_dirty(log) {
        let at = p as usize * page;
        // SAFETY: `memory` maps all MEM_SIZE bytes of guest memory and the log covers only those
        // pages. The device may be writing the page while it is copied (as with QEMU): a torn copy
        // is made good by the next pass, because the device sets a page's bit after writing it.
        unsafe { std::ptr::copy_nonoverlapping(memory.as_ptr().add(at), copy[at..at + page].as_mut_ptr(), page) };
    }
}

/// The invariant a migration relies on, under a log read concurrently as QEMU reads it: every
/// byte the device writes lands in guest memory before its page's bit is set, and all of it
/// before GET_VRING_BASE returns. A copy of guest memory kept up to date from the log alone must
/// then equal guest memory once the ring is stopped and the log read one last time.
/// A write the device never logs fails this on every run (checked by deleting the RX path's
/// `note_written`); a bit set before its write is caught only when the copier happens to run
/// between the two: by chance, in 6 of 8 runs on a busy 2-CPU machine with 400 rounds.
fn assert_a_copy_kept_from_the_log_equals_guest_memory(rig: LoggedRx, sock: &PacketSocket) {
    const ROUNDS: u16 = 400;
    const FRAMES_PER_ROUND: u16 = 128;
    // Past the rings of `MockDriver::with_layout` (desc 0x0, avail 0x1000, used 0x2000).
    const HEADERS: u64 = 0x3000;
    const FIRST_DATA_PAGE: u64 = 0x4000;
    const DATA_PAGES: u64 = (RX_DATA_END - FIRST_DATA_PAGE) / VHOST_LOG_PAGE;
    let LoggedRx { mut device, mut rx, state, memory, log, kick: kick_fd, .. } = rig;
    device.set_features(1 << VIRTIO_F_VERSION_1 | 1 << VIRTIO_NET_F_MRG_RXBUF | 1 << VHOST_F_LOG_ALL).unwrap();

    // The bulk stage: the log is cleared, then every page is copied once.
    collect_dirty(&log);
    let mut copy = vec![0u8; MEM_SIZE as usize];
    // SAFETY: `memory` maps MEM_SIZE bytes; nothing writes guest memory yet.
    unsafe { std::ptr::copy_nonoverlapping(memory.as_ptr(), copy.as_mut_ptr(), copy.len()) };
    let memory = Arc::new(memory);
    let stop = Arc::new(AtomicBool::new(false));
    let copier = {
        let (log, memory, stop) = (log.clone(), memory.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut passes = 0u64;
            while !stop.load(Ordering::Relaxed) {
                copy_dirty_pages(&log, &memory, &mut copy);
                passes += 1;
            }
            (copy, passes)
        })
    };

    // The driver's own writes (descriptors, avail ring) are the guest's: logged by "QEMU" here.
    let driver_pages = 0..state.used_addr / VHOST_LOG_PAGE;
    let mut delivered = 0u16;
    for round in 0..ROUNDS {
        for i in 0..FRAMES_PER_ROUND {
            // The header in a buffer of its own, the frame in a page no other buffer shares:
            // a data page is then marked only for the frame written into it.
            let header = HEADERS + u64::from(i) * 16;
            let page = (u64::from(round) * u64::from(FRAMES_PER_ROUND) + u64::from(i)) % DATA_PAGES;
            rx.add_desc_chain(&[(header, 12, true), (FIRST_DATA_PAGE + page * VHOST_LOG_PAGE, 2048, true)]);
        }
        rx.publish_avail();
        // Buffers after the ring ran dry: the driver kicks (the device asks for it then).
        kick(&kick_fd);
        for page in driver_pages.clone() {
            mark_dirty(&log, page);
        }
        for i in 0..FRAMES_PER_ROUND {
            let seed = (round * FRAMES_PER_ROUND + i) as u8;
            sock.send(&test_frame(GUEST_MAC, HOST_MAC, 1514 - usize::from(seed) * 2, seed));
        }
        delivered = delivered.wrapping_add(FRAMES_PER_ROUND);
        // The last round's frames are still arriving when the ring is stopped.
        if round + 1 < ROUNDS {
            wait_until("the round's frames in the used ring", || rx.used_idx() == delivered);
        }
    }
    // Migration's end: stop the ring, stop copying, read the log a last time.
    device.get_vring_base(0).unwrap();
    stop.store(true, Ordering::Relaxed);
    let (mut copy, passes) = copier.join().unwrap();
    copy_dirty_pages(&log, &memory, &mut copy);
    assert!(passes > 1, "the log was read while frames arrived ({passes} passes)");

    let page = VHOST_LOG_PAGE as usize;
    let stale_pages = |copy: &[u8]| -> Vec<usize> {
        // SAFETY: `memory` maps MEM_SIZE bytes; reading while nothing should write any more.
        let now = unsafe { std::slice::from_raw_parts(memory.as_ptr(), MEM_SIZE as usize) };
        (0..MEM_SIZE as usize / page).filter(|p| copy[p * page..(p + 1) * page] != now[p * page..(p + 1) * page]).collect()
    };
    assert_eq!(stale_pages(&copy), Vec::<usize>::new(), "pages whose last write the log missed ({passes} passes over the log)");
    // Frames left in the TAP or the switch are not written once GET_VRING_BASE has returned.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(stale_pages(&copy), Vec::<usize>::new(), "pages written after the ring stopped");
    drop(device);
}

#[test]
fn a_copy_kept_from_the_log_equals_guest_memory_with_a_tap() {
    in_fresh_netns(|| {
        let (device, sock) = tap_device();
        assert_a_copy_kept_from_the_log_equals_guest_memory(LoggedRx::on(device), &sock);
    });
}

/// On a switch the frames are written into the guest's RX ring by the thread of the port they
/// came in on (here a TAP uplink's), not by the guest's own worker.
#[test]
fn a_copy_kept_from_the_log_equals_guest_memory_on_a_switch_port() {
    in_fresh_netns(|| {
        let switch = Switch::new(1500, Duration::from_secs(300));
        let uplink_name = unique_tap_name();
        let _uplink = TapUplink::open(&switch, &uplink_name, 0).expect("open the TAP uplink");
        let up = std::process::Command::new("ip").args(["link", "set", &uplink_name, "up"]).status().expect("run ip");
        assert!(up.success());
        let sock = PacketSocket::bind(&uplink_name);
        let device = NetDevice::new_switch_port(&switch, "guest", 0, Arc::new(|_| {}));
        assert_a_copy_kept_from_the_log_equals_guest_memory(LoggedRx::on(device), &sock);
    });
}

/// Sets page `page`'s bit (what QEMU records for the guest's own writes).
fn mark_dirty(log: &Mmap, page: u64) {
    // SAFETY: 8-byte aligned word inside the mapping (the test's pages are all covered by the log).
    let word = unsafe { &*log.as_ptr().add(8 * (page / 64) as usize).cast::<AtomicU64>() };
    word.fetch_or(1 << (page % 64), Ordering::SeqCst);
}
