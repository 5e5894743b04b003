//! The dirty-page log: mapping checks, exactly the pages written are marked (read back the way the
//! front-end reads them: as 64-bit words of a separate mapping of the same memfd), the used ring
//! at `log_guest_addr`, and nothing at all without a log.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use vring::mmap::Mmap;
use vring::mock::{memfd, MockDriver, MockGuest};
use vring::{DirtyLog, DirtyLogError, GuestMemory, QueueState, SplitQueue, VHOST_LOG_PAGE};

const MEM: u64 = 0x80000;
/// One log byte covers 8 pages: 64 bytes cover 2 MiB of guest memory.
const LOG_SIZE: u64 = 64;

/// A log memfd plus the front-end's own view of it.
struct FrontendLog {
    fd: OwnedFd,
    view: Mmap,
}

impl FrontendLog {
    fn new(size: u64) -> FrontendLog {
        let fd = memfd(size);
        let view = Mmap::map_shared(fd.as_raw_fd(), 0, size as usize, 0).unwrap();
        FrontendLog { fd, view }
    }

    fn map(&self, size: u64, offset: u64) -> Arc<DirtyLog> {
        Arc::new(DirtyLog::map(self.fd.as_raw_fd(), size, offset).unwrap())
    }

    /// Every page whose bit is set, reading the bitmap as native-endian u64 words from `offset`.
    fn dirty_pages(&self, offset: usize) -> Vec<u64> {
        let words = (self.view.len() - offset) / 8;
        let mut pages = Vec::new();
        for w in 0..words {
            let mut bytes = [0u8; 8];
            // SAFETY: offset + 8 * (w + 1) <= len: the 8 bytes are inside the mapping.
            unsafe { std::ptr::copy_nonoverlapping(self.view.as_ptr().add(offset + 8 * w), bytes.as_mut_ptr(), 8) };
            let word = u64::from_ne_bytes(bytes);
            pages.extend((0..64).filter(|bit| word & (1 << bit) != 0).map(|bit| w as u64 * 64 + bit));
        }
        pages
    }
}

#[test]
fn map_refuses_short_file_zero_size_and_overflow() {
    let fd = memfd(LOG_SIZE);
    let err = DirtyLog::map(fd.as_raw_fd(), LOG_SIZE + 1, 0).unwrap_err();
    assert_eq!(err, DirtyLogError::BeyondFile { mmap_offset: 0, mmap_size: LOG_SIZE + 1, file_size: LOG_SIZE });
    assert!(matches!(DirtyLog::map(fd.as_raw_fd(), LOG_SIZE, 1), Err(DirtyLogError::BeyondFile { .. })));
    assert_eq!(DirtyLog::map(fd.as_raw_fd(), 0, 0).unwrap_err(), DirtyLogError::ZeroSize);
    assert!(matches!(DirtyLog::map(fd.as_raw_fd(), 2, u64::MAX), Err(DirtyLogError::RangeOverflow { .. })));
    assert!(matches!(DirtyLog::map(-1, LOG_SIZE, 0), Err(DirtyLogError::Fstat { .. })));
}

#[test]
fn marks_exactly_the_pages_a_buffer_covers() {
    let frontend = FrontendLog::new(LOG_SIZE);
    let log = frontend.map(LOG_SIZE, 0);
    let guest = MockGuest::new(MEM);
    let mem = guest.memory().with_write_log(log.clone());

    // First byte of page 3 … last byte of page 5: straddles two page boundaries.
    mem.write_bytes(3 * VHOST_LOG_PAGE, &vec![0xab; 3 * VHOST_LOG_PAGE as usize]).unwrap();
    assert_eq!(frontend.dirty_pages(0), vec![3, 4, 5]);
    // The last byte of page 9 and the first byte of page 10, nothing else.
    mem.write_bytes(10 * VHOST_LOG_PAGE - 1, &[1, 2]).unwrap();
    assert_eq!(frontend.dirty_pages(0), vec![3, 4, 5, 9, 10]);
    // A single byte in the middle of page 63 and the first of page 64 (next 64-bit word).
    mem.write_obj(63 * VHOST_LOG_PAGE + 100, 7u8).unwrap();
    mem.write_obj(64 * VHOST_LOG_PAGE, 7u8).unwrap();
    assert_eq!(frontend.dirty_pages(0), vec![3, 4, 5, 9, 10, 63, 64]);
    // A zero-length write marks nothing.
    mem.note_write(20 * VHOST_LOG_PAGE, 0);
    assert_eq!(frontend.dirty_pages(0), vec![3, 4, 5, 9, 10, 63, 64]);
    assert_eq!(log.missed_pages(), 0);
}

#[test]
fn bits_set_by_the_frontend_stay_set_and_cleared_bits_are_set_again() {
    let frontend = FrontendLog::new(LOG_SIZE);
    let log = frontend.map(LOG_SIZE, 0);
    log.mark(0, 1);
    // The front-end collects the word (clears it) while the device keeps writing.
    // SAFETY: the first 8 bytes of the front-end's mapping.
    unsafe { std::ptr::write_volatile(frontend.view.as_ptr().cast::<u64>(), 1 << 40) };
    log.mark(2 * VHOST_LOG_PAGE, 1);
    assert_eq!(frontend.dirty_pages(0), vec![2, 40]);
}

#[test]
fn an_offset_log_is_read_from_its_offset() {
    let frontend = FrontendLog::new(3 * 4096);
    let offset = 4096 + 16;
    let log = frontend.map(LOG_SIZE, offset);
    log.mark(VHOST_LOG_PAGE * 70, 1);
    assert_eq!(frontend.dirty_pages(offset as usize), vec![70]);
    assert_eq!(frontend.dirty_pages(0), vec![(4096 + 16) * 8 + 70]);
}

#[test]
fn pages_beyond_the_log_are_counted_not_written() {
    let frontend = FrontendLog::new(4096);
    // A one-byte log covers pages 0..8; the rest of the memfd must stay untouched.
    let log = frontend.map(1, 0);
    log.mark(6 * VHOST_LOG_PAGE, 3 * VHOST_LOG_PAGE as usize);
    assert_eq!(frontend.dirty_pages(0), vec![6, 7]);
    assert_eq!(log.missed_pages(), 1);
    log.mark(u64::MAX - 1, 2);
    assert_eq!(log.missed_pages(), 2);
    assert_eq!(frontend.dirty_pages(0), vec![6, 7]);
}

#[test]
fn used_ring_is_logged_at_log_guest_addr() {
    let guest = MockGuest::new(MEM);
    let mut driver = MockDriver::with_layout(guest.memory(), 8, 0, MEM, 5);
    let frontend = FrontendLog::new(LOG_SIZE);
    let log = frontend.map(LOG_SIZE, 0);
    let mem = Arc::new(guest.memory().with_write_log(log));
    let used = driver.state(false).used_addr;
    assert_eq!(used % VHOST_LOG_PAGE, 0);

    // Same address (what QEMU sends: log_guest_addr is the used ring's guest-physical address).
    let state = QueueState { used_log_addr: Some(used), ..driver.state(false) };
    let mut queue = SplitQueue::new(mem.clone(), state).unwrap();
    driver.add_desc_chain(&[(0x8000, 1, true)]);
    driver.publish_avail();
    let chain = queue.pop_chain().unwrap().unwrap();
    queue.add_used(chain.head, 1).unwrap();
    queue.publish_used();
    assert_eq!(frontend.dirty_pages(0), vec![used / VHOST_LOG_PAGE]);

    // A different log address: the used ring's writes are logged there, not at used_addr.
    let log_addr = 0x1f_0000;
    let state = QueueState { used_log_addr: Some(log_addr), ..queue.state() };
    let mut queue = SplitQueue::new(mem, state).unwrap();
    // SAFETY: clearing the front-end's own mapping, as it does after collecting the log.
    unsafe { std::ptr::write_bytes(frontend.view.as_ptr(), 0, LOG_SIZE as usize) };
    driver.add_desc_chain(&[(0x8100, 1, true)]);
    driver.publish_avail();
    let chain = queue.pop_chain().unwrap().unwrap();
    queue.add_used(chain.head, 1).unwrap();
    queue.publish_used();
    assert_eq!(frontend.dirty_pages(0), vec![log_addr / VHOST_LOG_PAGE]);
    assert_eq!(driver.used_idx(), 2);

    let overflowing = QueueState { used_log_addr: Some(u64::MAX - 8), ..queue.state() };
    assert!(SplitQueue::new(queue.memory_arc().clone(), overflowing).is_err());
}

#[test]
fn nothing_is_logged_without_a_log() {
    let guest = MockGuest::new(MEM);
    let frontend = FrontendLog::new(LOG_SIZE);
    let logged = guest.memory().with_write_log(frontend.map(LOG_SIZE, 0));
    let unlogged: GuestMemory = logged.without_write_log();
    unlogged.write_bytes(0, &[1; 0x3000]).unwrap();
    unlogged.write_obj(0x5000, 1u64).unwrap();
    let mut driver = MockDriver::with_layout(&unlogged, 8, 0, MEM, 9);
    let mut queue = SplitQueue::new(Arc::new(unlogged), driver.state(true)).unwrap();
    driver.add_desc_chain(&[(0x8000, 4, true)]);
    driver.publish_avail();
    let chain = queue.pop_chain().unwrap().unwrap();
    chain.copy_to_writable(queue.memory(), &[1, 2, 3, 4]).unwrap();
    queue.add_used(chain.head, 4).unwrap();
    queue.publish_used();
    queue.enable_notification().unwrap();
    assert_eq!(frontend.dirty_pages(0), Vec::<u64>::new());
}
