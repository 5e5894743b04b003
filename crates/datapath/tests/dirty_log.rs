//! Dirty-page logging through the whole device: SET_LOG_BASE maps the log, VHOST_F_LOG_ALL makes
//! the workers log every RX buffer and used-ring write, clearing it stops logging, and setting it
//! again (a second migration, no new SET_LOG_BASE) logs again into the same log.

mod common;

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use datapath::device::{NetDevice, VringAddrs, VHOST_VRING_F_LOG};
use datapath::Tap;
use vring::features::{VHOST_F_LOG_ALL, VIRTIO_F_VERSION_1};
use vring::mmap::Mmap;
use vring::mock::{memfd, MockDriver, MOCK_USER_BASE};
use vring::{GuestMemory, MemoryRegion, RegionSpec, VHOST_LOG_PAGE};

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
        let word = unsafe { &*view.as_ptr().add(8 * w).cast::<std::sync::atomic::AtomicU64>() };
        let bits = word.swap(0, std::sync::atomic::Ordering::SeqCst);
        pages.extend((0..64).filter(|b| bits & (1 << b) != 0).map(|b| w as u64 * 64 + b));
    }
    pages
}

#[test]
fn log_all_logs_rx_buffers_and_used_ring_and_survives_a_second_migration() {
    in_fresh_netns(|| {
        let tap = Tap::open(&unique_tap_name(), 1).expect("open TAP");
        tap.set_link_up().expect("link up");
        let sock = PacketSocket::bind(tap.name());
        let mut device = NetDevice::new(tap, Arc::new(|_| {}));

        let guest_fd = memfd(MEM_SIZE);
        let spec = RegionSpec { guest_phys_addr: 0, memory_size: MEM_SIZE, userspace_addr: MOCK_USER_BASE, mmap_offset: 0 };
        let driver_view = GuestMemory::new(vec![MemoryRegion::map(spec, guest_fd.as_raw_fd()).unwrap()]).unwrap();
        let mut rx = MockDriver::with_layout(&driver_view, QUEUE_SIZE, RX_BASE, RX_DATA_END, 1);
        let state = rx.state(false);
        device.set_mem_table(vec![(spec, dup(&guest_fd))]).unwrap();

        // A log that is too short for what it claims is refused before it is mapped.
        let short = memfd(LOG_SIZE - 1);
        let err = device.set_log_base(LOG_SIZE, 0, short).unwrap_err();
        assert_eq!(err.code(), "VU_ERR_DIRTY_LOG");
        let log_fd = memfd(LOG_SIZE);
        let view = Mmap::map_shared(log_fd.as_raw_fd(), 0, LOG_SIZE as usize, 0).unwrap();
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
            collect_dirty(&view);
            let expected = deliver_one(&mut rx, 2 * round);
            // The worker published used.idx after logging; stopping it orders the rest.
            std::thread::sleep(Duration::from_millis(20));
            assert_eq!(collect_dirty(&view), expected, "migration {round}: exactly the pages written");

            device.set_features(1 << VIRTIO_F_VERSION_1).unwrap();
            deliver_one(&mut rx, 2 * round + 1);
            std::thread::sleep(Duration::from_millis(20));
            assert_eq!(collect_dirty(&view), Vec::<u64>::new(), "logging off after migration {round}");
        }
        drop(device);
    });
}
