//! Split virtqueue, device side, driven by the mock driver (virtio 1.2 §2.7).

use std::sync::Arc;

use vring::mock::{MockDriver, MockGuest, RecordingLog};
use vring::{
    vring_need_event, Buf, Descriptor, GuestMemory, QueueError, QueueState, SplitQueue,
    VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VRING_AVAIL_F_NO_INTERRUPT, VRING_USED_F_NO_NOTIFY,
};

const MEM: u64 = 0x40000;

/// A 256 KiB guest with the rings at GPA 0 and buffers after them.
fn setup(size: u16, event_idx: bool) -> (MockGuest, MockDriver, SplitQueue) {
    let guest = MockGuest::new(MEM);
    let driver = MockDriver::with_layout(guest.memory(), size, 0, MEM, 42);
    let queue = SplitQueue::new(guest.memory().clone(), driver.state(event_idx)).unwrap();
    (guest, driver, queue)
}

fn pop(queue: &mut SplitQueue) -> vring::DescChain {
    queue.pop_chain().unwrap().expect("a chain is available")
}

fn pop_err(queue: &mut SplitQueue) -> QueueError {
    queue.pop_chain().expect_err("the chain must be rejected")
}

#[test]
fn single_readable_descriptor() {
    let (_g, mut driver, mut queue) = setup(16, false);
    let head = driver.add_desc_chain(&[(0x8000, 100, false)]);
    assert_eq!(queue.pop_chain().unwrap(), None, "not published yet");
    driver.publish_avail();
    let chain = pop(&mut queue);
    assert_eq!(chain.head, head);
    assert_eq!(chain.readable(), vec![Buf::new(0x8000, 100)]);
    assert!(chain.writable().is_empty());
    assert_eq!((chain.readable_len(), chain.writable_len()), (100, 0));
    assert_eq!(queue.pop_chain().unwrap(), None);
    assert_eq!(queue.state().next_avail, 1);
}

#[test]
fn chain_of_readable_then_writable_buffers() {
    let (_g, mut driver, mut queue) = setup(16, false);
    let (head, bufs) = driver.add_alloc_chain(&[(12, false), (1500, false), (2048, true), (100, true)]);
    driver.publish_avail();
    let chain = pop(&mut queue);
    assert_eq!(chain.head, head);
    assert_eq!(chain.readable(), bufs[..2].to_vec());
    assert_eq!(chain.writable(), bufs[2..].to_vec());
    assert_eq!((chain.readable_len(), chain.writable_len()), (1512, 2148));
    let mut iov = Vec::new();
    chain.iovecs(queue.memory(), true, &mut iov).unwrap();
    assert_eq!(iov.len(), 2);
    assert_eq!(iov[0].iov_base as *mut u8, queue.memory().translate(bufs[2].addr, 2048).unwrap());
}

#[test]
fn indirect_chain() {
    let (_g, mut driver, mut queue) = setup(16, false);
    let bufs = [(0x9000, 10, false), (0x9100, 20, true), (0x9200, 30, true)];
    let head = driver.add_indirect_chain(0xa000, &bufs);
    let plain = driver.add_desc_chain(&[(0x9300, 40, true)]);
    driver.publish_avail();
    let chain = pop(&mut queue);
    assert_eq!(chain.head, head);
    assert_eq!(chain.readable(), vec![Buf::new(0x9000, 10)]);
    assert_eq!(chain.writable(), vec![Buf::new(0x9100, 20), Buf::new(0x9200, 30)]);
    assert_eq!(pop(&mut queue).head, plain);
}

#[test]
fn used_elements_become_visible_on_publish() {
    let (_g, mut driver, mut queue) = setup(8, false);
    let a = driver.add_desc_chain(&[(0x8000, 64, true)]);
    let b = driver.add_desc_chain(&[(0x8100, 64, true)]);
    driver.publish_avail();
    assert_eq!(pop(&mut queue).head, a);
    assert_eq!(pop(&mut queue).head, b);
    queue.add_used(b, 60).unwrap();
    queue.add_used(a, 0).unwrap();
    assert_eq!(driver.used_idx(), 0, "add_used does not publish");
    queue.publish_used();
    assert_eq!(driver.used_idx(), 2);
    assert_eq!(driver.used_elem(0), (u32::from(b), 60));
    assert_eq!(driver.used_elem(1), (u32::from(a), 0));
    assert_eq!(queue.state().next_used, 2);
    assert_eq!(queue.add_used(8, 0).unwrap_err(), QueueError::UsedHeadOutOfRange { head: 8, size: 8 });
}

#[test]
fn free_running_indices_wrap_around_u16() {
    let guest = MockGuest::new(MEM);
    let mut driver = MockDriver::with_layout(guest.memory(), 4, 0, MEM, 7);
    driver.set_avail_idx(65534);
    let state = QueueState { next_avail: 65534, next_used: 65534, ..driver.state(false) };
    let mut queue = SplitQueue::new(guest.memory().clone(), state).unwrap();
    let heads: Vec<u16> = (0..4).map(|i| driver.add_desc_chain(&[(0x8000 + i * 0x100, 16, true)])).collect();
    driver.publish_avail();
    assert_eq!(queue.avail_pending().unwrap(), 4);
    for (i, &head) in heads.iter().enumerate() {
        assert_eq!(pop(&mut queue).head, head);
        queue.add_used(head, i as u32).unwrap();
    }
    queue.publish_used();
    assert_eq!(queue.state().next_avail, 2);
    assert_eq!(driver.used_idx(), 2);
    for (i, &head) in heads.iter().enumerate() {
        assert_eq!(driver.used_elem(65534u16.wrapping_add(i as u16)), (u32::from(head), i as u32));
    }
    assert_eq!(queue.pop_chain().unwrap(), None);
}

#[test]
fn many_rounds_through_a_small_ring() {
    let (_g, mut driver, mut queue) = setup(2, false);
    for round in 0..70_000u32 {
        let (head, bufs) = driver.add_alloc_chain(&[(1 + round % 200, round % 3 == 0)]);
        driver.publish_avail();
        let chain = pop(&mut queue);
        assert_eq!(chain.head, head);
        assert_eq!(chain.readable_len() + chain.writable_len(), u64::from(bufs[0].len));
        queue.add_used(head, round).unwrap();
        queue.publish_used();
        assert_eq!(driver.used_elem(driver.used_idx().wrapping_sub(1)), (u32::from(head), round));
    }
}

#[test]
fn rewind_to_puts_chains_back() {
    let (_g, mut driver, mut queue) = setup(8, false);
    let heads: Vec<u16> = (0..3).map(|i| driver.add_desc_chain(&[(0x8000 + i * 0x100, 16, true)])).collect();
    driver.publish_avail();
    let popped: Vec<_> = heads.iter().map(|_| pop(&mut queue)).collect();
    assert_eq!(popped.iter().map(|c| (c.head, c.popped_at, c.slots)).collect::<Vec<_>>(), vec![(heads[0], 0, 1), (heads[1], 1, 1), (heads[2], 2, 1)]);
    queue.rewind_to(popped[1].popped_at);
    assert_eq!(queue.state().next_avail, 1);
    assert_eq!(queue.avail_pending().unwrap(), 2);
    assert_eq!(pop(&mut queue).head, heads[1]);
    assert_eq!(pop(&mut queue).head, heads[2]);
}

#[test]
fn rejects_avail_idx_more_than_size_ahead() {
    let (_g, mut driver, mut queue) = setup(8, false);
    driver.set_avail_idx(8);
    assert_eq!(queue.avail_pending().unwrap(), 8, "exactly size ahead is allowed");
    driver.set_avail_idx(9);
    let expected = QueueError::AvailIdxTooFarAhead { avail_idx: 9, next_avail: 0, size: 8 };
    assert_eq!(queue.avail_pending().unwrap_err(), expected);
    assert_eq!(pop_err(&mut queue), expected);
    assert_eq!(queue.enable_notification().unwrap_err(), expected);
}

#[test]
fn pops_the_chains_it_saw_published_then_reads_avail_idx_again() {
    let (_g, mut driver, mut queue) = setup(8, false);
    let heads = [driver.add_desc_chain(&[(0x8000, 100, false)]), driver.add_desc_chain(&[(0x9000, 100, false)])];
    driver.publish_avail();
    assert_eq!(pop(&mut queue).head, heads[0]);
    // avail.idx is not read again while chains it published are left: a bad index written
    // meanwhile is seen (and rejected) at the next read, once those are popped.
    driver.set_avail_idx(100);
    assert_eq!(pop(&mut queue).head, heads[1]);
    assert_eq!(pop_err(&mut queue), QueueError::AvailIdxTooFarAhead { avail_idx: 100, next_avail: 2, size: 8 });
}

#[test]
fn rejects_descriptor_loop() {
    let (_g, mut driver, mut queue) = setup(8, false);
    driver.write_desc(0, Descriptor { addr: 0x8000, len: 1, flags: VIRTQ_DESC_F_NEXT, next: 1 });
    driver.write_desc(1, Descriptor { addr: 0x8000, len: 1, flags: VIRTQ_DESC_F_NEXT, next: 0 });
    driver.push_avail_head(0);
    driver.publish_avail();
    assert_eq!(pop_err(&mut queue), QueueError::ChainTooLong { head: 0, max: 8 });
}

#[test]
fn chain_of_exactly_queue_size_is_accepted_and_longer_is_not() {
    let (_g, mut driver, mut queue) = setup(4, false);
    for i in 0..4u16 {
        let flags = if i < 3 { VIRTQ_DESC_F_NEXT } else { 0 };
        driver.write_desc(i, Descriptor { addr: 0x8000, len: 8, flags, next: i + 1 });
    }
    driver.push_avail_head(0);
    driver.publish_avail();
    assert_eq!(pop(&mut queue).readable().len(), 4);
    // Same table, but the last one points back: 5 descriptors visited.
    driver.write_desc(3, Descriptor { addr: 0x8000, len: 8, flags: VIRTQ_DESC_F_NEXT, next: 0 });
    driver.push_avail_head(0);
    driver.publish_avail();
    assert_eq!(pop_err(&mut queue), QueueError::ChainTooLong { head: 0, max: 4 });
}

#[test]
fn rejects_next_and_head_out_of_range() {
    let (_g, mut driver, mut queue) = setup(8, false);
    driver.write_desc(0, Descriptor { addr: 0x8000, len: 1, flags: VIRTQ_DESC_F_NEXT, next: 8 });
    driver.push_avail_head(0);
    driver.publish_avail();
    assert_eq!(pop_err(&mut queue), QueueError::DescIndexOutOfRange { index: 8, table_len: 8 });

    let (_g, mut driver, mut queue) = setup(8, false);
    driver.push_avail_head(0xffff);
    driver.publish_avail();
    assert_eq!(pop_err(&mut queue), QueueError::DescIndexOutOfRange { index: 0xffff, table_len: 8 });
    assert_eq!(queue.state().next_avail, 0, "a rejected chain is not consumed");
}

#[test]
fn rejects_nested_indirect_and_indirect_with_next() {
    let (_g, mut driver, mut queue) = setup(8, false);
    driver.write_desc_at(0xa000, 0, Descriptor { addr: 0xb000, len: 16, flags: VIRTQ_DESC_F_INDIRECT, next: 0 });
    driver.add_raw_indirect(0xa000, 16);
    driver.publish_avail();
    assert_eq!(pop_err(&mut queue), QueueError::NestedIndirect { head: 0 });

    let (_g, mut driver, mut queue) = setup(8, false);
    driver.write_desc(0, Descriptor { addr: 0xa000, len: 16, flags: VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, next: 1 });
    driver.push_avail_head(0);
    driver.publish_avail();
    assert_eq!(pop_err(&mut queue), QueueError::IndirectWithNext { head: 0 });
}

#[test]
fn rejects_bad_indirect_table_length() {
    for len in [0u32, 15, 17, 16 * 9] {
        let (_g, mut driver, mut queue) = setup(8, false);
        driver.add_raw_indirect(0xa000, len);
    driver.publish_avail();
        assert_eq!(pop_err(&mut queue), QueueError::BadIndirectLen { head: 0, len }, "len {len}");
    }
    // An indirect table that leaves guest memory.
    let (_g, mut driver, mut queue) = setup(8, false);
    driver.add_raw_indirect(MEM - 16, 32);
    driver.publish_avail();
    assert!(matches!(pop_err(&mut queue), QueueError::Memory { head: 0, .. }));
    // A loop inside the indirect table.
    let (_g, mut driver, mut queue) = setup(8, false);
    driver.write_desc_at(0xa000, 0, Descriptor { addr: 0x8000, len: 1, flags: VIRTQ_DESC_F_NEXT, next: 1 });
    driver.write_desc_at(0xa000, 1, Descriptor { addr: 0x8000, len: 1, flags: VIRTQ_DESC_F_NEXT, next: 0 });
    driver.add_raw_indirect(0xa000, 32);
    driver.publish_avail();
    assert_eq!(pop_err(&mut queue), QueueError::ChainTooLong { head: 0, max: 2 });
    // next beyond the indirect table.
    let (_g, mut driver, mut queue) = setup(8, false);
    driver.write_desc_at(0xa000, 0, Descriptor { addr: 0x8000, len: 1, flags: VIRTQ_DESC_F_NEXT, next: 2 });
    driver.add_raw_indirect(0xa000, 32);
    driver.publish_avail();
    assert_eq!(pop_err(&mut queue), QueueError::DescIndexOutOfRange { index: 2, table_len: 2 });
}

#[test]
fn rejects_buffers_outside_memory_and_overflowing() {
    for (addr, len) in [(MEM - 10, 20u32), (MEM, 1), (u64::MAX - 5, 10), (u64::MAX, u32::MAX)] {
        let (_g, mut driver, mut queue) = setup(8, false);
        driver.add_desc_chain(&[(0x8000, 10, false), (addr, len, true)]);
        driver.publish_avail();
        assert!(matches!(pop_err(&mut queue), QueueError::Memory { head: 0, .. }), "{addr:#x}+{len}");
    }
}

#[test]
fn rejects_readable_after_writable() {
    let (_g, mut driver, mut queue) = setup(8, false);
    driver.add_desc_chain(&[(0x8000, 10, true), (0x8100, 10, false)]);
    driver.publish_avail();
    assert_eq!(pop_err(&mut queue), QueueError::ReadableAfterWritable { head: 0 });
}

#[test]
fn zero_length_descriptors_are_dropped() {
    let (_g, mut driver, mut queue) = setup(8, false);
    driver.add_desc_chain(&[(0x8000, 0, false), (u64::MAX, 0, true), (0x8100, 10, true)]);
    driver.publish_avail();
    let chain = pop(&mut queue);
    assert!(chain.readable().is_empty());
    assert_eq!(chain.writable(), vec![Buf::new(0x8100, 10)]);
}

#[test]
fn new_validates_size_alignment_and_placement() {
    let guest = MockGuest::with_regions(&[(0, 0x10000), (0x10000, 0x10000), (0x40000, 0x10000)]);
    let mem = guest.memory();
    let good = QueueState { size: 256, desc_addr: 0, avail_addr: 0x1000, used_addr: 0x2000, ..Default::default() };
    assert!(SplitQueue::new(mem.clone(), good).is_ok());
    assert!(SplitQueue::new(mem.clone(), QueueState { size: 32768, ..good }).is_err());
    for size in [0u16, 3, 100, 65535] {
        assert_eq!(
            SplitQueue::new(mem.clone(), QueueState { size, ..good }).unwrap_err(),
            QueueError::InvalidSize { size }
        );
    }
    let misaligned = [
        (QueueState { desc_addr: 8, ..good }, "desc", 16),
        (QueueState { avail_addr: 0x1001, ..good }, "avail", 2),
        (QueueState { used_addr: 0x2002, ..good }, "used", 4),
    ];
    for (state, ring, align) in misaligned {
        let addr = match ring {
            "desc" => state.desc_addr,
            "avail" => state.avail_addr,
            _ => state.used_addr,
        };
        assert_eq!(SplitQueue::new(mem.clone(), state).unwrap_err(), QueueError::MisalignedRing { ring, addr, align });
    }
    let outside = [
        (QueueState { desc_addr: 0x20000, ..good }, "desc"),       // hole
        (QueueState { desc_addr: 0x10000 - 0x800, ..good }, "desc"), // spans two regions
        (QueueState { avail_addr: 0x50000 - 0x200, ..good }, "avail"), // runs off the end
        (QueueState { used_addr: u64::MAX - 3, ..good }, "used"),   // overflow
    ];
    for (state, ring) in outside {
        assert!(
            matches!(SplitQueue::new(mem.clone(), state), Err(QueueError::RingOutOfMemory { ring: r, .. }) if r == ring),
            "{state:?}"
        );
    }
}

#[test]
fn empty_memory_has_no_rings() {
    let state = QueueState { size: 1, ..Default::default() };
    assert!(matches!(
        SplitQueue::new(Arc::new(GuestMemory::empty()), state),
        Err(QueueError::RingOutOfMemory { ring: "desc", .. })
    ));
}

#[test]
fn buffer_spanning_adjacent_regions() {
    let guest = MockGuest::with_regions(&[(0, 0x10000), (0x10000, 0x10000)]);
    let mut driver = MockDriver::with_layout(guest.memory(), 8, 0, 0x20000, 1);
    let mut queue = SplitQueue::new(guest.memory().clone(), driver.state(false)).unwrap();
    driver.add_desc_chain(&[(0x10000 - 100, 1000, true)]);
    driver.publish_avail();
    let chain = pop(&mut queue);
    let mut iov = Vec::new();
    chain.iovecs(queue.memory(), true, &mut iov).unwrap();
    assert_eq!(iov.iter().map(|v| v.iov_len).collect::<Vec<_>>(), vec![100, 900]);
}

// §2.7.7.1 / §2.7.10.1: flag-based suppression.
#[test]
fn no_interrupt_and_no_notify_flags() {
    let (_g, mut driver, mut queue) = setup(8, false);
    assert!(queue.needs_notification());
    driver.set_avail_flags(VRING_AVAIL_F_NO_INTERRUPT);
    assert!(!queue.needs_notification());
    driver.set_avail_flags(0);
    assert!(queue.needs_notification());

    queue.disable_notification();
    assert_eq!(driver.used_flags(), VRING_USED_F_NO_NOTIFY);
    assert!(!queue.enable_notification().unwrap(), "nothing pending");
    assert_eq!(driver.used_flags(), 0);
    queue.disable_notification();
    driver.add_desc_chain(&[(0x8000, 1, false)]);
    driver.publish_avail();
    assert!(queue.enable_notification().unwrap(), "a chain arrived while kicks were off");
}

// §2.7.7.2 / §2.7.10.2: used_event / avail_event.
#[test]
fn event_idx_suppression() {
    let (_g, mut driver, mut queue) = setup(8, true);
    for _ in 0..8 {
        driver.add_desc_chain(&[(0x8000, 1, true)]);
    }
    driver.publish_avail();
    let complete_one = |queue: &mut SplitQueue| {
        let chain = pop(queue);
        queue.add_used(chain.head, 1).unwrap();
        queue.publish_used();
    };
    driver.set_used_event(0);
    complete_one(&mut queue);
    assert!(queue.needs_notification(), "first decision always notifies");
    assert!(!queue.needs_notification(), "nothing new since");
    driver.set_used_event(1);
    complete_one(&mut queue); // used.idx 1 -> 2 crosses used_event 1
    assert!(queue.needs_notification());
    driver.set_used_event(4);
    complete_one(&mut queue); // 2 -> 3
    assert!(!queue.needs_notification());
    complete_one(&mut queue); // 3 -> 4
    complete_one(&mut queue); // 4 -> 5 crosses 4 (two elements in one decision)
    assert!(queue.needs_notification());
    // Flags are ignored with EVENT_IDX.
    driver.set_avail_flags(VRING_AVAIL_F_NO_INTERRUPT);
    driver.set_used_event(5);
    complete_one(&mut queue);
    assert!(queue.needs_notification());

    queue.disable_notification();
    assert_eq!(driver.used_flags(), 0, "EVENT_IDX does not use the NO_NOTIFY flag");
    assert!(queue.enable_notification().unwrap(), "two chains still pending");
    assert_eq!(driver.avail_event(), queue.state().next_avail);
}

#[test]
fn need_event_across_wrap() {
    assert!(vring_need_event(0, 1, 0));
    assert!(!vring_need_event(1, 1, 0));
    assert!(vring_need_event(65535, 1, 65534));
    assert!(vring_need_event(0, 1, 65535));
    assert!(!vring_need_event(2, 1, 65535));
    assert!(!vring_need_event(5, 5, 5));
}

#[test]
fn used_ring_writes_are_noted_for_dirty_logging() {
    let guest = MockGuest::new(MEM);
    let mut driver = MockDriver::with_layout(guest.memory(), 8, 0, MEM, 3);
    let log = Arc::new(RecordingLog::default());
    let mem = Arc::new(guest.memory().with_write_log(log.clone()));
    let state = driver.state(false);
    let used = state.used_addr;
    let mut queue = SplitQueue::new(mem, state).unwrap();
    driver.add_desc_chain(&[(0x8000, 1, true)]);
    driver.add_desc_chain(&[(0x8100, 1, true)]);
    driver.publish_avail();
    assert!(log.0.lock().unwrap().is_empty(), "driver writes are not device writes");
    for _ in 0..2 {
        let chain = pop(&mut queue);
        queue.add_used(chain.head, 1).unwrap();
    }
    queue.publish_used();
    queue.disable_notification();
    queue.enable_notification().unwrap();
    assert_eq!(*log.0.lock().unwrap(), vec![(used + 4, 8), (used + 12, 8), (used + 2, 2), (used, 2), (used, 2)]);

    let mut queue = SplitQueue::new(queue.memory_arc().clone(), QueueState { event_idx: true, ..state }).unwrap();
    log.0.lock().unwrap().clear();
    queue.enable_notification().unwrap();
    assert_eq!(*log.0.lock().unwrap(), vec![(used + 4 + 8 * 8, 2)]);
}

#[test]
fn pop_chain_into_replaces_the_previous_chain_whole() {
    let (_g, mut driver, mut queue) = setup(16, false);
    let (first, first_bufs) = driver.add_alloc_chain(&[(12, false), (100, false), (2048, true)]);
    let (second, second_bufs) = driver.add_alloc_chain(&[(64, true)]);
    driver.publish_avail();
    let mut chain = vring::DescChain::default();
    assert!(queue.pop_chain_into(&mut chain).unwrap());
    assert_eq!((chain.head, chain.readable().to_vec(), chain.writable().to_vec()), (first, first_bufs[..2].to_vec(), first_bufs[2..].to_vec()));
    assert_eq!((chain.readable_len(), chain.writable_len()), (112, 2048));
    assert!(queue.pop_chain_into(&mut chain).unwrap());
    assert_eq!((chain.head, chain.readable().to_vec(), chain.writable().to_vec()), (second, vec![], second_bufs.to_vec()));
    assert_eq!((chain.readable_len(), chain.writable_len()), (0, 64), "the lengths start again from zero too");
    assert!(!queue.pop_chain_into(&mut chain).unwrap(), "empty ring");
    assert_eq!(chain.head, second, "left as it was");
}

#[test]
fn an_indirect_table_across_two_adjacent_regions_is_read_whole() {
    const HALF: u64 = MEM / 2;
    let guest = MockGuest::with_regions(&[(0, HALF), (HALF, HALF)]);
    let mut driver = MockDriver::with_layout(guest.memory(), 16, 0, HALF, 7);
    let mut queue = SplitQueue::new(guest.memory().clone(), driver.state(false)).unwrap();
    // Three descriptors: the first in the low region, the other two in the high one.
    let bufs = [(0x9000, 12, false), (0x9100, 60, false), (0x9200, 1500, true)];
    let head = driver.add_indirect_chain(HALF - 16, &bufs);
    driver.publish_avail();
    let chain = pop(&mut queue);
    assert_eq!(chain.head, head);
    assert_eq!(chain.readable(), vec![Buf::new(0x9000, 12), Buf::new(0x9100, 60)]);
    assert_eq!(chain.writable(), vec![Buf::new(0x9200, 1500)]);
}
