//! Guest memory table: mapping, overlap rules, translation, iovecs, the dirty-log seam.

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use vring::mock::{memfd, MockGuest, MOCK_USER_BASE};
use vring::{GuestMemory, MemoryError, MemoryRegion, RegionSpec, WriteLog, MAX_REGIONS};

const PAGE: u64 = 4096;

fn spec(gpa: u64, size: u64) -> RegionSpec {
    RegionSpec { guest_phys_addr: gpa, memory_size: size, userspace_addr: MOCK_USER_BASE + gpa, mmap_offset: 0 }
}

#[test]
fn map_refuses_region_beyond_short_memfd() {
    let fd = memfd(PAGE);
    let err = MemoryRegion::map(spec(0, 2 * PAGE), fd.as_raw_fd()).unwrap_err();
    assert_eq!(err, MemoryError::RegionBeyondFile { mmap_offset: 0, memory_size: 2 * PAGE, file_size: PAGE });
    let offset = RegionSpec { mmap_offset: 1, ..spec(0, PAGE) };
    assert!(matches!(MemoryRegion::map(offset, fd.as_raw_fd()), Err(MemoryError::RegionBeyondFile { .. })));
}

#[test]
fn map_refuses_zero_size_and_overflow() {
    let fd = memfd(PAGE);
    assert_eq!(MemoryRegion::map(spec(0, 0), fd.as_raw_fd()).unwrap_err(), MemoryError::ZeroSize);
    let wrap = RegionSpec { guest_phys_addr: u64::MAX - 10, ..spec(0, PAGE) };
    assert!(matches!(MemoryRegion::map(wrap, fd.as_raw_fd()), Err(MemoryError::RegionOverflow { .. })));
    let wrap = RegionSpec { mmap_offset: u64::MAX, ..spec(0, PAGE) };
    assert!(matches!(MemoryRegion::map(wrap, fd.as_raw_fd()), Err(MemoryError::RegionOverflow { .. })));
}

#[test]
fn unaligned_mmap_offset_keeps_the_delta() {
    let fd = memfd(2 * PAGE);
    let writer = GuestMemory::new(vec![MemoryRegion::map(spec(0, 2 * PAGE), fd.as_raw_fd()).unwrap()]).unwrap();
    writer.write_bytes(PAGE + 100, b"hello").unwrap();
    let offset = RegionSpec { mmap_offset: PAGE + 100, ..spec(0x10000, 16) };
    let reader = GuestMemory::new(vec![MemoryRegion::map(offset, fd.as_raw_fd()).unwrap()]).unwrap();
    let mut buf = [0u8; 5];
    reader.read_bytes(0x10000, &mut buf).unwrap();
    assert_eq!(&buf, b"hello");
    assert!(reader.translate(0x10000 + 16, 1).is_err());
}

#[test]
fn regions_overlapping_in_gpa_or_user_space_are_rejected() {
    let a = MockGuest::map_region(0, 2 * PAGE);
    let b = MockGuest::map_region(PAGE, PAGE);
    assert!(matches!(
        GuestMemory::new(vec![a, b]),
        Err(MemoryError::RegionOverlap { what: "guest_phys_addr", .. })
    ));
    let fd = memfd(PAGE);
    let a = MockGuest::map_region(0, PAGE);
    let same_user = RegionSpec { userspace_addr: MOCK_USER_BASE, ..spec(0x100000, PAGE) };
    let b = MemoryRegion::map(same_user, fd.as_raw_fd()).unwrap();
    assert!(matches!(
        GuestMemory::new(vec![a, b]),
        Err(MemoryError::RegionOverlap { what: "userspace_addr", .. })
    ));
    // ADD_MEM_REG checks the same rules.
    let mem = GuestMemory::new(vec![MockGuest::map_region(0, 2 * PAGE)]).unwrap();
    assert!(mem.with_region_added(MockGuest::map_region(PAGE, PAGE)).is_err());
}

#[test]
fn too_many_regions_are_rejected() {
    let regions: Vec<MemoryRegion> = (0..=MAX_REGIONS as u64).map(|i| MockGuest::map_region(i * PAGE * 2, PAGE)).collect();
    assert_eq!(
        GuestMemory::new(regions).unwrap_err(),
        MemoryError::TooManyRegions { count: MAX_REGIONS + 1, max: MAX_REGIONS }
    );
}

#[test]
fn add_and_remove_regions() {
    let mem = GuestMemory::empty();
    assert!(mem.translate(0, 1).is_err());
    let mem = mem.with_region_added(MockGuest::map_region(0x20000, PAGE)).unwrap();
    let mem = mem.with_region_added(MockGuest::map_region(0, PAGE)).unwrap();
    assert_eq!(mem.regions().map(|r| r.guest_phys_addr).collect::<Vec<_>>(), vec![0, 0x20000]);
    mem.write_obj(0x20000, 7u32).unwrap();
    let err = mem.with_region_removed(&spec(0x20000, 2 * PAGE)).unwrap_err();
    assert!(matches!(err, MemoryError::RegionNotFound { .. }));
    let smaller = mem.with_region_removed(&spec(0x20000, PAGE)).unwrap();
    assert!(smaller.translate(0x20000, 4).is_err());
    // The old table still works: regions are shared, not moved.
    assert_eq!(mem.read_obj::<u32>(0x20000).unwrap(), 7);
}

#[test]
fn translate_requires_the_whole_range_in_one_region() {
    let guest = MockGuest::with_regions(&[(0, PAGE), (PAGE, PAGE), (0x10000, PAGE)]);
    let mem = guest.memory();
    assert!(mem.translate(0, PAGE as usize).is_ok());
    assert!(mem.translate(PAGE - 1, 1).is_ok());
    assert!(mem.translate(PAGE - 1, 2).is_err(), "spans two regions");
    assert!(mem.translate(2 * PAGE, 1).is_err(), "hole");
    assert!(mem.translate(0x10000 + PAGE, 0).is_err(), "one past the end");
    assert!(mem.translate(u64::MAX, 2).is_err(), "overflow");
}

#[test]
fn user_to_guest_translates_front_end_addresses() {
    let guest = MockGuest::with_regions(&[(0, PAGE), (0x100000, 4 * PAGE)]);
    let mem = guest.memory();
    assert_eq!(mem.user_to_guest(MOCK_USER_BASE + 0x100010, 16).unwrap(), 0x100010);
    assert_eq!(mem.user_to_guest(MOCK_USER_BASE + 8, 8).unwrap(), 8);
    assert!(mem.user_to_guest(MOCK_USER_BASE + PAGE - 8, 16).is_err(), "runs off the region");
    assert!(mem.user_to_guest(MOCK_USER_BASE + 0x50000, 1).is_err(), "hole");
    assert!(mem.user_to_guest(u64::MAX, 2).is_err(), "overflow");
}

#[test]
fn buffer_spanning_two_adjacent_regions_gives_two_iovecs() {
    let guest = MockGuest::with_regions(&[(0, PAGE), (PAGE, PAGE), (4 * PAGE, PAGE)]);
    let mem = guest.memory();
    let mut iov = Vec::new();
    mem.iovecs(PAGE - 100, 300, &mut iov).unwrap();
    assert_eq!(iov.iter().map(|v| v.iov_len).collect::<Vec<_>>(), vec![100, 200]);
    assert_eq!(iov[0].iov_base as *mut u8, mem.translate(PAGE - 100, 100).unwrap());
    assert_eq!(iov[1].iov_base as *mut u8, mem.translate(PAGE, 200).unwrap());
    // Bytes written across the boundary read back whole.
    let data: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
    mem.write_bytes(PAGE - 100, &data).unwrap();
    let mut back = vec![0u8; 300];
    mem.read_bytes(PAGE - 100, &mut back).unwrap();
    assert_eq!(back, data);
    // Running into a hole appends nothing.
    let mut iov = Vec::new();
    assert!(mem.iovecs(2 * PAGE - 10, 20, &mut iov).is_err());
    assert!(iov.is_empty());
    assert!(mem.iovecs(u64::MAX - 4, 10, &mut iov).is_err());
}

#[test]
fn read_and_write_objects_at_any_alignment() {
    let guest = MockGuest::new(PAGE);
    let mem = guest.memory();
    mem.write_obj(3, 0x1122_3344_5566_7788u64).unwrap();
    assert_eq!(mem.read_obj::<u64>(3).unwrap(), 0x1122_3344_5566_7788);
    assert!(mem.read_obj::<u64>(PAGE - 7).is_err());
    assert!(mem.write_obj(PAGE - 1, 0u16).is_err());
}

/// Records every range the device reports as written.
#[derive(Default)]
pub struct RecordingLog(Mutex<Vec<(u64, usize)>>, AtomicUsize);

impl WriteLog for RecordingLog {
    fn log_write(&self, gpa: u64, len: usize) {
        self.0.lock().unwrap().push((gpa, len));
        self.1.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn every_device_write_is_noted() {
    let guest = MockGuest::new(PAGE);
    let log = Arc::new(RecordingLog::default());
    let mem = guest.memory().with_write_log(log.clone());
    mem.write_obj(8, 1u32).unwrap();
    mem.write_bytes(100, &[1, 2, 3]).unwrap();
    mem.note_write(200, 50);
    assert!(mem.write_obj(PAGE, 1u32).is_err());
    assert_eq!(*log.0.lock().unwrap(), vec![(8, 4), (100, 3), (200, 50)]);
    // Tables derived from a logged table keep logging.
    let bigger = mem.with_region_added(MockGuest::map_region(PAGE, PAGE)).unwrap();
    bigger.write_obj(PAGE, 1u8).unwrap();
    assert_eq!(log.1.load(Ordering::Relaxed), 4);
}

/// Reads one byte at `ptr` in a forked child; returns the signal that killed it, if any.
fn probe_in_child(ptr: *const u8) -> Option<i32> {
    // SAFETY: the child only performs a volatile read and _exit(2), both async-signal-safe.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: deliberately probing a possibly unmapped address; a fault only kills the child.
        unsafe {
            std::ptr::read_volatile(ptr);
            libc::_exit(0);
        }
    }
    let mut status = 0;
    // SAFETY: waiting for the child we just forked.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status))
}

#[test]
fn mock_regions_have_guard_pages_on_both_sides() {
    let guest = MockGuest::new(4 * PAGE);
    let mem = guest.memory();
    let first = mem.translate(0, 1).unwrap();
    let last = mem.translate(4 * PAGE - 1, 1).unwrap();
    assert_eq!(probe_in_child(first), None);
    assert_eq!(probe_in_child(last), None);
    assert_eq!(probe_in_child(first.wrapping_sub(1)), Some(libc::SIGSEGV));
    assert_eq!(probe_in_child(last.wrapping_add(1)), Some(libc::SIGSEGV));
}
