//! Packed virtqueue, device side, driven by the mock packed driver (virtio 1.2 §2.8): chains and
//! buffer ids, wrap counters over many laps of rings of any size, indirect tables, malformed
//! rings, event suppression both ways, dirty logging.

use std::sync::Arc;

use vring::mock::{MockGuest, RecordingLog};
use vring::mock_packed::MockPackedDriver;
use vring::packed::{advance, PackedDescriptor, RING_EVENT_FLAGS_DESC, RING_EVENT_FLAGS_DISABLE, RING_EVENT_FLAGS_ENABLE, VIRTQ_DESC_F_AVAIL, VIRTQ_DESC_F_USED};
use vring::{Buf, DescChain, PackedQueue, QueueError, QueueState, Virtqueue, PACKED_RING_START, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE};

const MEM: u64 = 0x40000;
const WRAP: u16 = 1 << 15;

fn setup(size: u16, event_idx: bool) -> (MockGuest, MockPackedDriver, PackedQueue) {
    let guest = MockGuest::new(MEM);
    let driver = MockPackedDriver::with_layout(guest.memory(), size, 0, MEM, 42);
    let queue = PackedQueue::new(guest.memory().clone(), driver.state(event_idx)).unwrap();
    (guest, driver, queue)
}

fn pop(queue: &mut PackedQueue) -> DescChain {
    let mut chain = DescChain::default();
    assert!(queue.pop_chain_into(&mut chain).unwrap(), "a chain is available");
    chain
}

fn pop_err(queue: &mut PackedQueue) -> QueueError {
    queue.pop_chain_into(&mut DescChain::default()).expect_err("the chain must be rejected")
}

fn nothing(queue: &mut PackedQueue) -> bool {
    !queue.pop_chain_into(&mut DescChain::default()).unwrap()
}

#[test]
fn a_chain_is_available_once_its_head_flags_say_so_and_carries_the_last_descriptors_id() {
    let (_g, mut driver, mut queue) = setup(16, false);
    let (id, bufs) = driver.add_alloc_chain(&[(12, false), (1500, false), (2048, true)]);
    assert!(nothing(&mut queue), "written but not made available");
    driver.publish();
    let chain = pop(&mut queue);
    assert_eq!(chain.head, id);
    assert_eq!(chain.readable(), bufs[..2].to_vec());
    assert_eq!(chain.writable(), bufs[2..].to_vec());
    assert_eq!((chain.popped_at, chain.slots), (PACKED_RING_START, 3));
    assert!(nothing(&mut queue));
    assert_eq!(queue.state().next_avail, 3 | WRAP);

    queue.add_used(chain.head, chain.slots, 2048);
    assert_eq!(driver.take_used(), Some((id, 2048)));
    assert_eq!(driver.take_used(), None);
    assert_eq!(queue.state().next_used, 3 | WRAP);
    let used = driver.desc_at(0);
    assert_eq!(used.flags, VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED | VIRTQ_DESC_F_WRITE, "a used descriptor of the first lap");
}

#[test]
fn the_buffer_id_is_returned_as_the_driver_gave_it() {
    let (_g, mut driver, mut queue) = setup(8, false);
    driver.add_descs(&[PackedDescriptor { addr: 0x8000, len: 64, id: 0xfffe, flags: 0 }]);
    driver.publish();
    let chain = pop(&mut queue);
    assert_eq!(chain.head, 0xfffe, "any id: the device never indexes with it");
    queue.add_used(chain.head, chain.slots, 0);
    let used = driver.desc_at(0);
    assert_eq!((used.id, used.len, used.flags), (0xfffe, 0, VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED));
}

/// Many laps through rings of sizes that are and are not powers of two, with chains of 1–3
/// descriptors that cross the end of the ring: every buffer and id comes back, in order.
#[test]
fn wrap_counters_flip_at_the_end_of_rings_of_any_size() {
    for size in [1u16, 2, 3, 5, 8, 13] {
        let (_g, mut driver, mut queue) = setup(size, false);
        for round in 0..200u32 {
            let descs = 1 + (round % 3) as u16;
            let descs = descs.min(size);
            let lens: Vec<(u32, bool)> = (0..descs).map(|i| (16 + round + u32::from(i), i == descs - 1)).collect();
            let (id, bufs) = driver.add_alloc_chain(&lens);
            driver.publish();
            let chain = pop(&mut queue);
            assert_eq!((chain.head, chain.slots), (id, descs), "size {size} round {round}");
            assert_eq!(chain.readable(), bufs[..bufs.len() - 1].to_vec());
            assert_eq!(chain.writable(), bufs[bufs.len() - 1..].to_vec());
            assert!(nothing(&mut queue), "size {size} round {round}: the used descriptors are not available");
            queue.add_used(chain.head, chain.slots, round);
            assert_eq!(driver.take_used(), Some((id, round)), "size {size} round {round}");
        }
        assert_eq!(queue.state().next_avail, queue.state().next_used);
    }
}

#[test]
fn chains_used_in_a_batch_come_back_in_order() {
    let (_g, mut driver, mut queue) = setup(8, false);
    let ids: Vec<u16> = (0..3).map(|i| driver.add_chain(&[(0x8000 + i * 0x100, 16, true), (0x9000 + i * 0x100, 16, true)])).collect();
    driver.publish();
    let chains: Vec<DescChain> = (0..3).map(|_| pop(&mut queue)).collect();
    assert!(nothing(&mut queue));
    for chain in &chains {
        queue.add_used(chain.head, chain.slots, 32);
    }
    let used: Vec<_> = std::iter::from_fn(|| driver.take_used()).collect();
    assert_eq!(used, ids.iter().map(|&id| (id, 32)).collect::<Vec<_>>());
}

#[test]
fn rewind_to_puts_chains_back() {
    let (_g, mut driver, mut queue) = setup(5, false);
    let ids: Vec<u16> = (0..2).map(|i| driver.add_chain(&[(0x8000 + i * 0x100, 16, true), (0x8800, 8, true)])).collect();
    driver.publish();
    let first = pop(&mut queue);
    let second = pop(&mut queue);
    assert_eq!(second.popped_at, 2 | WRAP);
    queue.rewind_to(second.popped_at);
    let again = pop(&mut queue);
    assert_eq!((again.head, again.popped_at, again.slots), (ids[1], second.popped_at, 2));
    assert_eq!(again, second);
    queue.rewind_to(first.popped_at);
    assert_eq!(pop(&mut queue).head, ids[0]);
}

#[test]
fn indirect_chain() {
    let (_g, mut driver, mut queue) = setup(16, false);
    let bufs = [(0x9000, 10, false), (0x9100, 20, true), (0x9200, 30, true)];
    let id = driver.add_indirect_chain(0xa000, &bufs);
    let plain = driver.add_chain(&[(0x9300, 40, true)]);
    driver.publish();
    let chain = pop(&mut queue);
    assert_eq!((chain.head, chain.slots), (id, 1));
    assert_eq!(chain.readable(), vec![Buf::new(0x9000, 10)]);
    assert_eq!(chain.writable(), vec![Buf::new(0x9100, 20), Buf::new(0x9200, 30)]);
    assert_eq!(pop(&mut queue).head, plain);
}

/// A malformed buffer: what it is, its descriptors, and the error it must meet.
type Malformed = (&'static str, Vec<PackedDescriptor>, fn(&QueueError) -> bool);

#[test]
fn rejects_malformed_chains() {
    let table = 0xa000;
    let cases: Vec<Malformed> = vec![
        ("indirect and next", vec![PackedDescriptor { addr: table, len: 16, id: 0, flags: VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT }, PackedDescriptor::default()], |e| matches!(e, QueueError::IndirectWithNext { .. })),
        ("indirect table of 0 bytes", vec![PackedDescriptor { addr: table, len: 0, id: 0, flags: VIRTQ_DESC_F_INDIRECT }], |e| matches!(e, QueueError::BadIndirectLen { len: 0, .. })),
        ("indirect table not of whole descriptors", vec![PackedDescriptor { addr: table, len: 24, id: 0, flags: VIRTQ_DESC_F_INDIRECT }], |e| matches!(e, QueueError::BadIndirectLen { len: 24, .. })),
        ("indirect table longer than the queue", vec![PackedDescriptor { addr: table, len: 16 * 9, id: 0, flags: VIRTQ_DESC_F_INDIRECT }], |e| matches!(e, QueueError::BadIndirectLen { .. })),
        ("indirect table outside memory", vec![PackedDescriptor { addr: MEM - 8, len: 16, id: 0, flags: VIRTQ_DESC_F_INDIRECT }], |e| matches!(e, QueueError::Memory { .. })),
        ("buffer outside memory", vec![PackedDescriptor { addr: MEM - 8, len: 16, id: 0, flags: 0 }], |e| matches!(e, QueueError::Memory { .. })),
        ("buffer overflowing the address space", vec![PackedDescriptor { addr: u64::MAX - 4, len: 16, id: 0, flags: 0 }], |e| matches!(e, QueueError::Memory { .. })),
        (
            "readable after writable",
            vec![PackedDescriptor { addr: 0x8000, len: 8, id: 0, flags: VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT }, PackedDescriptor { addr: 0x8100, len: 8, id: 0, flags: 0 }],
            |e| matches!(e, QueueError::ReadableAfterWritable { .. }),
        ),
    ];
    for (what, descs, expected) in cases {
        let (_g, mut driver, mut queue) = setup(8, false);
        driver.add_descs(&descs);
        driver.publish();
        let error = pop_err(&mut queue);
        assert!(expected(&error), "{what}: {error:?}");
    }

    let (_g, mut driver, mut queue) = setup(8, false);
    driver.write_bytes(table, &PackedDescriptor { addr: table, len: 16, id: 0, flags: VIRTQ_DESC_F_INDIRECT }.to_le_bytes());
    driver.add_descs(&[PackedDescriptor { addr: table, len: 16, id: 0, flags: VIRTQ_DESC_F_INDIRECT }]);
    driver.publish();
    assert!(matches!(pop_err(&mut queue), QueueError::NestedIndirect { .. }));
}

#[test]
fn a_chain_of_exactly_queue_size_is_accepted_and_a_longer_one_is_not() {
    let (_g, mut driver, mut queue) = setup(4, false);
    let bufs: Vec<(u64, u32, bool)> = (0..4).map(|i| (0x8000 + i * 0x100, 8, true)).collect();
    let id = driver.add_chain(&bufs);
    driver.publish();
    let chain = pop(&mut queue);
    assert_eq!((chain.head, chain.slots, chain.writable().len()), (id, 4, 4));
    assert_eq!(queue.state().next_avail, 0, "a whole lap: position 0, wrap counter 0");
    queue.add_used(chain.head, chain.slots, 0);
    assert_eq!(driver.take_used(), Some((id, 0)));

    // Every descriptor chained to the next, around and around: a loop.
    let (_g, mut driver, mut queue) = setup(4, false);
    let looping: Vec<PackedDescriptor> = (0..4).map(|i| PackedDescriptor { addr: 0x8000 + i * 0x100, len: 8, id: 0, flags: VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT }).collect();
    driver.add_descs(&looping);
    driver.publish();
    assert!(matches!(pop_err(&mut queue), QueueError::ChainTooLong { max: 4, .. }));
}

#[test]
fn new_validates_size_positions_alignment_and_placement() {
    let guest = MockGuest::with_regions(&[(0, 0x10000), (0x40000, 0x10000)]);
    let mem = guest.memory();
    let good = QueueState { packed: true, size: 256, desc_addr: 0, avail_addr: 0x1000, used_addr: 0x1004, next_avail: WRAP, next_used: WRAP, ..Default::default() };
    assert!(PackedQueue::new(mem.clone(), good).is_ok());
    assert!(PackedQueue::new(mem.clone(), QueueState { size: 100, ..good }).is_ok(), "any size, not only powers of two");
    for size in [0u16, 32769, 65535] {
        assert_eq!(PackedQueue::new(mem.clone(), QueueState { size, ..good }).unwrap_err(), QueueError::InvalidSize { size });
    }
    for (state, what) in [(QueueState { next_avail: 256 | WRAP, ..good }, "avail"), (QueueState { next_used: 300, ..good }, "used")] {
        assert!(matches!(PackedQueue::new(mem.clone(), state), Err(QueueError::RingIndexOutOfRange { what: w, .. }) if w == what));
    }
    for (state, ring, align) in [
        (QueueState { desc_addr: 8, ..good }, "descriptor", 16),
        (QueueState { avail_addr: 0x1002, ..good }, "driver event", 4),
        (QueueState { used_addr: 0x1006, ..good }, "device event", 4),
    ] {
        assert!(matches!(PackedQueue::new(mem.clone(), state), Err(QueueError::MisalignedRing { ring: r, align: a, .. }) if r == ring && a == align));
    }
    for state in [QueueState { desc_addr: 0x10000 - 0x800, ..good }, QueueState { used_addr: 0x20000, ..good }, QueueState { avail_addr: u64::MAX - 3, ..good }] {
        assert!(matches!(PackedQueue::new(mem.clone(), state), Err(QueueError::RingOutOfMemory { .. })), "{state:?}");
    }
    assert!(matches!(Virtqueue::new(mem.clone(), good), Ok(Virtqueue::Packed(_))), "the layout follows `packed`");
}

#[test]
fn kicks_are_asked_for_and_refused_through_the_device_event_structure() {
    let (_g, mut driver, mut queue) = setup(8, false);
    queue.disable_notification();
    assert_eq!(driver.device_event().1, RING_EVENT_FLAGS_DISABLE);
    assert!(!queue.enable_notification().unwrap(), "nothing available");
    assert_eq!(driver.device_event().1, RING_EVENT_FLAGS_ENABLE);
    driver.add_chain(&[(0x8000, 8, true)]);
    driver.publish();
    assert!(queue.enable_notification().unwrap(), "a buffer became available: process it, do not sleep");

    let (_g, mut driver, mut queue) = setup(8, true);
    driver.add_chain(&[(0x8000, 8, true)]);
    driver.publish();
    let chain = pop(&mut queue);
    queue.add_used(chain.head, chain.slots, 0);
    assert!(!queue.enable_notification().unwrap());
    assert_eq!(driver.device_event(), (1 | WRAP, RING_EVENT_FLAGS_DESC), "EVENT_IDX: kick me when the next descriptor is made available");
}

#[test]
fn interrupts_follow_the_driver_event_structure() {
    let (_g, mut driver, mut queue) = setup(8, false);
    let use_one = |driver: &mut MockPackedDriver, queue: &mut PackedQueue| {
        driver.add_chain(&[(0x8000, 8, true)]);
        driver.publish();
        let chain = pop(queue);
        queue.add_used(chain.head, chain.slots, 8);
        driver.take_used().unwrap();
    };
    use_one(&mut driver, &mut queue);
    assert!(queue.needs_notification(), "ENABLE (the initial zero)");
    driver.set_driver_event(RING_EVENT_FLAGS_DISABLE, 0);
    use_one(&mut driver, &mut queue);
    assert!(!queue.needs_notification());
    driver.set_driver_event(RING_EVENT_FLAGS_DESC, 0);
    use_one(&mut driver, &mut queue);
    assert!(queue.needs_notification(), "DESC without EVENT_IDX is not valid: notify");
}

/// With EVENT_IDX the driver names the descriptor (position and wrap counter) after whose use it
/// wants an interrupt; the device interrupts exactly when it uses that one, also across laps.
#[test]
fn event_idx_interrupts_at_the_named_descriptor_across_laps() {
    let size = 5;
    let (_g, mut driver, mut queue) = setup(size, true);
    let mut used_position = PACKED_RING_START;
    let mut notified_at = Vec::new();
    for round in 0..40u16 {
        // Ask for an interrupt after the descriptor 3 uses ahead (as Linux does with a budget).
        if round % 4 == 0 {
            driver.set_driver_event(RING_EVENT_FLAGS_DESC, advance(used_position, 3, size));
        }
        driver.add_chain(&[(0x8000, 8, true)]);
        driver.publish();
        let chain = pop(&mut queue);
        queue.add_used(chain.head, chain.slots, 8);
        driver.take_used().unwrap();
        used_position = advance(used_position, 1, size);
        if queue.needs_notification() {
            notified_at.push(round);
        }
    }
    // The first decision always notifies; then the 4th use after each request (rounds 3, 7, …).
    let expected: Vec<u16> = std::iter::once(0).chain((0..10).map(|k| 4 * k + 3)).collect();
    assert_eq!(notified_at, expected);
}

#[test]
fn used_descriptors_and_device_event_writes_are_noted_for_dirty_logging() {
    let guest = MockGuest::new(MEM);
    let mut driver = MockPackedDriver::with_layout(guest.memory(), 8, 0, MEM, 3);
    let log = Arc::new(RecordingLog::default());
    let mem = Arc::new(guest.memory().with_write_log(log.clone()));
    let state = driver.state(false);
    let mut queue = PackedQueue::new(mem, state).unwrap();
    driver.add_chain(&[(0x8000, 1, true)]);
    driver.add_chain(&[(0x8100, 1, true), (0x8200, 1, true)]);
    driver.publish();
    assert!(log.0.lock().unwrap().is_empty(), "driver writes are not device writes");
    for _ in 0..2 {
        let chain = pop(&mut queue);
        queue.add_used(chain.head, chain.slots, 1);
    }
    queue.disable_notification();
    let desc = state.desc_addr;
    let device = state.used_addr;
    assert_eq!(*log.0.lock().unwrap(), vec![(desc + 8, 8), (desc + 16 + 8, 8), (device + 2, 2)]);
}

/// A ring set to start at its start when its first descriptor shows it has moved on (what QEMU 7.2
/// replays after a back-end restart) is refused; a true start is not, however many laps came
/// before it.
#[test]
fn a_start_the_ring_has_visibly_moved_past_is_refused() {
    let (g, mut driver, mut queue) = setup(4, false);
    let start = driver.state(false);
    let restart = |g: &MockGuest| PackedQueue::new(g.memory().clone(), start);
    assert!(restart(&g).is_ok(), "fresh, nothing posted");
    let cycle = |driver: &mut MockPackedDriver, queue: &mut PackedQueue, descs: u64| {
        let bufs: Vec<(u64, u32, bool)> = (0..descs).map(|i| (0x8000 + i * 0x100, 8, true)).collect();
        driver.add_chain(&bufs);
        driver.publish();
        let chain = pop(queue);
        queue.add_used(chain.head, chain.slots, 8);
        driver.take_used().unwrap();
    };
    cycle(&mut driver, &mut queue, 1);
    assert_eq!(restart(&g).unwrap_err(), QueueError::PackedRingPositionLost, "position 0 used in the first lap");
    for _ in 0..3 {
        cycle(&mut driver, &mut queue, 1);
    }
    driver.add_chain(&[(0x8000, 8, true)]);
    driver.publish();
    assert_eq!(restart(&g).unwrap_err(), QueueError::PackedRingPositionLost, "position 0 made available in the second lap");
    let chain = pop(&mut queue);
    queue.add_used(chain.head, chain.slots, 8);
    driver.take_used().unwrap();
    for _ in 0..3 {
        cycle(&mut driver, &mut queue, 1);
    }
    assert_eq!(queue.state().next_avail, PACKED_RING_START, "two whole laps");
    assert!(restart(&g).is_ok(), "a true start after two laps");

    // Two laps of two-descriptor chains: the second descriptors keep their available flags.
    let (g, mut driver, mut queue) = setup(4, false);
    for _ in 0..4 {
        cycle(&mut driver, &mut queue, 2);
    }
    assert_eq!(queue.state().next_avail, PACKED_RING_START);
    assert!(restart(&g).is_ok());
}
