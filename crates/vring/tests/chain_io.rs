//! Moving packet bytes in and out of a popped chain: iovecs, header copies, dirty-log notes.

use std::sync::Arc;

use vring::mock::{MockDriver, MockGuest, RecordingLog};
use vring::{SplitQueue, VirtioNetHdr, NUM_BUFFERS_OFFSET, VIRTIO_NET_HDR_LEN};

#[test]
fn tx_header_and_payload_from_readable_buffers() {
    let guest = MockGuest::new(0x40000);
    let mut driver = MockDriver::with_layout(guest.memory(), 16, 0, 0x40000, 9);
    let mut queue = SplitQueue::new(guest.memory().clone(), driver.state(false)).unwrap();
    // Header split over two descriptors, then the payload.
    let (_, bufs) = driver.add_alloc_chain(&[(4, false), (8, false), (100, false)]);
    let hdr = VirtioNetHdr { flags: 1, gso_type: 1, hdr_len: 54, gso_size: 1448, csum_start: 34, csum_offset: 16, num_buffers: 0 };
    let bytes = hdr.to_le_bytes();
    driver.write_bytes(bufs[0].addr, &bytes[..4]);
    driver.write_bytes(bufs[1].addr, &bytes[4..]);
    driver.write_bytes(bufs[2].addr, &[0x5a; 100]);
    driver.publish_avail();
    let chain = queue.pop_chain().unwrap().unwrap();

    let mut raw = [0u8; VIRTIO_NET_HDR_LEN];
    assert_eq!(chain.copy_from_readable(queue.memory(), &mut raw).unwrap(), VIRTIO_NET_HDR_LEN);
    assert_eq!(VirtioNetHdr::from_le_bytes(raw), hdr);

    let mut iov = Vec::new();
    chain.iovecs_skip(queue.memory(), false, VIRTIO_NET_HDR_LEN as u64, &mut iov).unwrap();
    assert_eq!(iov.len(), 1);
    assert_eq!(iov[0].iov_len, 100);
    assert_eq!(iov[0].iov_base as *mut u8, queue.memory().translate(bufs[2].addr, 100).unwrap());
    let mut iov = Vec::new();
    chain.iovecs_skip(queue.memory(), false, 6, &mut iov).unwrap();
    assert_eq!(iov.iter().map(|v| v.iov_len).collect::<Vec<_>>(), vec![6, 100]);

    let mut big = [0u8; 200];
    assert_eq!(chain.copy_from_readable(queue.memory(), &mut big).unwrap(), 112);
}

#[test]
fn rx_header_num_buffers_and_dirty_notes() {
    let guest = MockGuest::new(0x40000);
    let mut driver = MockDriver::with_layout(guest.memory(), 16, 0, 0x40000, 10);
    let log = Arc::new(RecordingLog::default());
    let mem = Arc::new(guest.memory().with_write_log(log.clone()));
    let mut queue = SplitQueue::new(mem, driver.state(false)).unwrap();
    let (_, bufs) = driver.add_alloc_chain(&[(10, true), (1000, true)]);
    driver.publish_avail();
    let chain = queue.pop_chain().unwrap().unwrap();

    let hdr = VirtioNetHdr { num_buffers: 0, flags: 2, ..Default::default() };
    assert_eq!(chain.copy_to_writable(queue.memory(), &hdr.to_le_bytes()).unwrap(), VIRTIO_NET_HDR_LEN);
    queue.memory().write_obj(bufs[1].addr + NUM_BUFFERS_OFFSET - 10, 3u16.to_le()).unwrap();
    let mut back = [0u8; VIRTIO_NET_HDR_LEN];
    back[..10].copy_from_slice(&driver.read_bytes(bufs[0].addr, 10));
    back[10..].copy_from_slice(&driver.read_bytes(bufs[1].addr, 2));
    assert_eq!(VirtioNetHdr::from_le_bytes(back), VirtioNetHdr { num_buffers: 3, ..hdr });

    log.0.lock().unwrap().clear();
    chain.note_written(queue.memory(), 500);
    assert_eq!(*log.0.lock().unwrap(), vec![(bufs[0].addr, 10), (bufs[1].addr, 490)]);
}

#[test]
fn a_chain_used_with_another_memory_table_has_its_buffers_looked_up_there() {
    let guest = MockGuest::new(0x40000);
    let mut driver = MockDriver::with_layout(guest.memory(), 16, 0, 0x40000, 9);
    let mut queue = SplitQueue::new(guest.memory().clone(), driver.state(false)).unwrap();
    let (_, bufs) = driver.add_alloc_chain(&[(64, false)]);
    driver.publish_avail();
    let chain = queue.pop_chain().unwrap().unwrap();
    let iovec_base = |mem: &vring::GuestMemory| {
        let mut iov = Vec::new();
        chain.iovecs(mem, false, &mut iov).unwrap();
        assert_eq!(iov.len(), 1);
        iov[0].iov_base as *mut u8
    };
    assert_eq!(iovec_base(queue.memory()), queue.memory().translate(bufs[0].addr, 64).unwrap(), "found when popped");
    // The same guest-physical layout mapped anew (SET_MEM_TABLE after a memory update).
    let remapped = MockGuest::new(0x40000);
    assert_ne!(remapped.memory().id(), queue.memory().id());
    assert_eq!(iovec_base(remapped.memory()), remapped.memory().translate(bufs[0].addr, 64).unwrap(), "looked up in the new table");
}
