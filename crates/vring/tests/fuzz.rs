//! Deterministic fuzzing of the device side against a hostile driver: random descriptor tables,
//! indirect tables, avail rings, indices and ring placements, for split and packed rings. The device must never panic and
//! never touch memory outside the guest regions (the mock's guard pages turn that into a crash).
//!
//! Cases, seeds and the environment that sets their number: `vring::fuzz_cases`.

use vring::fuzz_cases::run_cases;
use vring::mock::{MockDriver, MockGuest, XorShift64};
use vring::mock_packed::MockPackedDriver;
use vring::packed::{PackedDescriptor, VIRTQ_DESC_F_AVAIL, VIRTQ_DESC_F_USED};
use vring::{DescChain, Descriptor, GuestMemory, PackedQueue, QueueError, QueueState, SplitQueue, Virtqueue, VIRTQ_DESC_F_INDIRECT};

/// Two regions with a hole between them; rings live in the first.
const REGIONS: [(u64, u64); 2] = [(0, 0x10000), (0x20000, 0x4000)];

/// A guest address biased towards region edges, holes and overflow.
fn random_addr(rng: &mut XorShift64) -> u64 {
    match rng.below(8) {
        0 => u64::MAX - rng.below(64),
        1 => 0x10000 - rng.below(64),
        2 => 0x24000 - rng.below(64),
        3 => 0x10000 + rng.below(0x10000),
        4 => 0x20000 + rng.below(0x4000),
        5 => rng.next_u64(),
        _ => rng.below(0x10000),
    }
}

fn random_len(rng: &mut XorShift64) -> u32 {
    match rng.below(6) {
        0 => 0,
        1 => u32::MAX - rng.below(32) as u32,
        2 => rng.next_u64() as u32,
        3 => 16 * (1 + rng.below(8) as u32),
        _ => rng.below(4096) as u32,
    }
}

fn random_desc(rng: &mut XorShift64, size: u16, hostile: bool) -> Descriptor {
    if !hostile || rng.below(16) != 0 {
        // Mostly plausible: inside the first region, short, NEXT now and then, WRITE half the time.
        let flags = (rng.below(4) == 0) as u16 | (2 * rng.below(2) as u16);
        let next = rng.below(u64::from(size)) as u16;
        return Descriptor { addr: 0x8000 + rng.below(0x7000), len: rng.below(0x1000) as u32, flags, next };
    }
    let flags = match rng.below(4) {
        0 => rng.next_u64() as u16,
        _ => rng.below(8) as u16,
    };
    let next = match rng.below(4) {
        0 => rng.next_u64() as u16,
        _ => rng.below(u64::from(size) + 1) as u16,
    };
    Descriptor { addr: random_addr(rng), len: random_len(rng), flags, next }
}

/// Fills the descriptor table, some indirect tables and the avail ring with random content.
fn scribble(driver: &mut MockDriver, size: u16, rng: &mut XorShift64, hostile: bool) {
    for i in 0..size {
        driver.write_desc(i, random_desc(rng, size, hostile));
    }
    for _ in 0..rng.below(4) {
        let table = 0x8000 + 16 * rng.below(0x700);
        for i in 0..1 + rng.below(16) as u16 {
            driver.write_desc_at(table, i, random_desc(rng, size, hostile));
        }
        let slot = rng.below(u64::from(size)) as u16;
        let len = if rng.below(2) == 0 { 16 * (1 + rng.below(16) as u32) } else { random_len(rng) };
        driver.write_desc(slot, Descriptor { addr: table, len, flags: 4 | (rng.below(4) as u16 & 1), next: 0 });
    }
    for _ in 0..size {
        let head = if hostile && rng.below(8) == 0 { rng.next_u64() as u16 } else { rng.below(u64::from(size)) as u16 };
        driver.push_avail_head(head);
    }
}

/// Checks the chain's buffers really are guest memory and touches their first and last bytes;
/// the iovecs the data path builds from the chain (host addresses found when it was popped) are
/// exactly those looked up buffer by buffer.
fn touch(mem: &GuestMemory, chain: &vring::DescChain) {
    for (bufs, writable) in [(chain.readable(), false), (chain.writable(), true)] {
        let mut looked_up = Vec::new();
        for b in bufs {
            assert!(b.len > 0);
            mem.iovecs(b.addr, b.len as usize, &mut looked_up).expect("popped buffers are inside guest memory");
            let mut byte = [0u8];
            mem.read_bytes(b.addr, &mut byte).unwrap();
            mem.read_bytes(b.addr + u64::from(b.len) - 1, &mut byte).unwrap();
            if writable {
                mem.write_bytes(b.addr + u64::from(b.len) - 1, &[0xab]).unwrap();
            }
        }
        let mut built = Vec::new();
        chain.iovecs(mem, writable, &mut built).expect("popped buffers are inside guest memory");
        let pairs = |v: &[libc::iovec]| v.iter().map(|i| (i.iov_base as usize, i.iov_len)).collect::<Vec<_>>();
        assert_eq!(pairs(&built), pairs(&looked_up));
    }
}

#[test]
fn hostile_rings_never_panic_or_escape_guest_memory() {
    let guest = MockGuest::with_regions(&REGIONS);
    let (mut popped, mut rejected) = (0u64, 0u64);
    let cases = run_cases("hostile_rings", 0x5eed, |rng, seed| {
        let size = 1u16 << rng.below(9);
        let mut driver = MockDriver::with_layout(guest.memory(), size, 0, 0x8000, seed);
        let hostile = rng.below(2) == 0;
        scribble(&mut driver, size, rng, hostile);
        let next_avail = rng.next_u64() as u16;
        let state = QueueState {
            next_avail,
            next_used: rng.next_u64() as u16,
            event_idx: rng.below(2) == 0,
            ..driver.state(false)
        };
        let ahead = if hostile && rng.below(8) == 0 { rng.next_u64() as u16 } else { rng.below(u64::from(size) + 1) as u16 };
        driver.set_avail_idx(next_avail.wrapping_add(ahead));
        driver.set_used_event(rng.next_u64() as u16);
        driver.set_avail_flags(rng.below(4) as u16);
        let mut queue = SplitQueue::new(guest.memory().clone(), state).expect("the layout is valid");
        for _ in 0..2 * u32::from(size) + 2 {
            match rng.below(10) {
                0 => {
                    queue.publish_used();
                    let _ = queue.needs_notification();
                }
                1 => {
                    let _ = queue.enable_notification();
                }
                2 => {
                    let _ = queue.disable_notification();
                }
                3 => queue.rewind_to(queue.state().next_avail.wrapping_sub(rng.below(3) as u16)),
                4 => {
                    // The guest rewrites a descriptor under our feet.
                    let slot = rng.below(u64::from(size)) as u16;
                    driver.write_desc(slot, random_desc(rng, size, hostile));
                }
                _ => match queue.pop_chain() {
                    Ok(Some(chain)) => {
                        popped += 1;
                        assert!(chain.head < size);
                        assert!(chain.readable().len() + chain.writable().len() <= 2 * usize::from(size));
                        touch(queue.memory(), &chain);
                        let written = chain.writable_len().min(u64::from(u32::MAX)) as u32;
                        queue.add_used(chain.head, written).unwrap();
                    }
                    Ok(None) => {}
                    Err(_) => {
                        rejected += 1;
                        break;
                    }
                },
            }
        }
    });
    // The generator must exercise both outcomes, or the test proves little (20 000 cases pop
    // about 4 chains and meet about 1 rejection per 1.3 cases).
    if cases >= 1000 {
        assert!(popped > cases * 5 / 2 && rejected > cases / 2, "{cases} cases: popped {popped}, rejected {rejected}");
    }
}

#[test]
fn hostile_ring_placement_is_rejected_or_safe() {
    let guest = MockGuest::with_regions(&REGIONS);
    run_cases("hostile_ring_placement", 0xfeed, |rng, _| {
        let state = QueueState {
            packed: false,
            size: if rng.below(4) == 0 { rng.next_u64() as u16 } else { 1 << rng.below(16) },
            desc_addr: random_addr(rng) & !(rng.below(2) * 15),
            avail_addr: random_addr(rng) & !(rng.below(2)),
            used_addr: random_addr(rng) & !(rng.below(2) * 3),
            next_avail: rng.next_u64() as u16,
            next_used: rng.next_u64() as u16,
            event_idx: rng.below(2) == 0,
            used_log_addr: (rng.below(2) == 0).then(|| rng.next_u64()),
        };
        if let Ok(mut queue) = SplitQueue::new(guest.memory().clone(), state) {
            for _ in 0..8 {
                if let Ok(Some(chain)) = queue.pop_chain() {
                    touch(queue.memory(), &chain);
                    let _ = queue.add_used(chain.head, 0);
                }
                queue.publish_used();
                let _ = queue.needs_notification();
                let _ = queue.enable_notification();
                let _ = queue.disable_notification();
            }
        }
    });
}

/// AVAIL/USED flags: mostly "available in a lap of wrap counter 1" (what `random_position`
/// mostly starts at, so that chains get popped), else of the other lap, used, or nonsense.
fn random_lap(rng: &mut XorShift64) -> u16 {
    [VIRTQ_DESC_F_AVAIL, VIRTQ_DESC_F_AVAIL, VIRTQ_DESC_F_AVAIL, VIRTQ_DESC_F_AVAIL, VIRTQ_DESC_F_USED, VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED, 0, 0][rng.below(8) as usize]
}

fn random_packed_desc(rng: &mut XorShift64, hostile: bool) -> PackedDescriptor {
    let id = rng.next_u64() as u16;
    // Hostile rings: one descriptor in four is hostile.
    if !hostile || rng.below(4) != 0 {
        // Mostly plausible: inside the first region, short, NEXT now and then, WRITE half the time.
        let flags = random_lap(rng) | (rng.below(3) == 0) as u16 | (2 * rng.below(2) as u16);
        return PackedDescriptor { addr: 0x8000 + rng.below(0x7000), len: rng.below(0x1000) as u32, id, flags };
    }
    let flags = match rng.below(4) {
        0 => rng.next_u64() as u16,
        _ => random_lap(rng) | rng.below(8) as u16,
    };
    PackedDescriptor { addr: random_addr(rng), len: random_len(rng), id, flags }
}

/// Fills the descriptor ring and some indirect tables with random content.
fn scribble_packed(driver: &MockPackedDriver, size: u16, rng: &mut XorShift64, hostile: bool) {
    for i in 0..size {
        driver.write_desc(i, random_packed_desc(rng, hostile));
    }
    for _ in 0..rng.below(4) {
        let table = 0x8000 + 16 * rng.below(0x700);
        for i in 0..1 + rng.below(16) {
            driver.write_bytes(table + 16 * i, &random_packed_desc(rng, hostile).to_le_bytes());
        }
        let position = rng.below(u64::from(size)) as u16;
        let len = if rng.below(2) == 0 { 16 * (1 + rng.below(16) as u32) } else { random_len(rng) };
        let flags = VIRTQ_DESC_F_INDIRECT | random_lap(rng) | (rng.below(4) == 0) as u16;
        driver.write_desc(position, PackedDescriptor { addr: table, len, id: rng.next_u64() as u16, flags });
    }
}

/// A random packed ring index: a position below `size`, wrap counter 1 three times in four.
fn random_position(rng: &mut XorShift64, size: u16) -> u16 {
    rng.below(u64::from(size)) as u16 | ((rng.below(4) != 0) as u16) << 15
}

#[test]
fn hostile_packed_rings_never_panic_or_escape_guest_memory() {
    let guest = MockGuest::with_regions(&REGIONS);
    let (mut popped, mut rejected) = (0u64, 0u64);
    let cases = run_cases("hostile_packed_rings", 0xbacced, |rng, seed| {
        // Any size (a packed ring's need not be a power of two); the ring and event structures
        // fit below the data area at 0x2000 for up to 500 descriptors.
        let most = if rng.below(2) == 0 { 8 } else { 500 };
        let size = 1 + rng.below(most) as u16;
        let driver = MockPackedDriver::with_layout(guest.memory(), size, 0, 0x8000, seed);
        let hostile = rng.below(2) == 0;
        scribble_packed(&driver, size, rng, hostile);
        let state = QueueState { next_avail: random_position(rng, size), next_used: random_position(rng, size), ..driver.state(rng.below(2) == 0) };
        driver.set_driver_event(rng.below(4) as u16, rng.next_u64() as u16);
        let mut queue = match PackedQueue::new(guest.memory().clone(), state) {
            Ok(queue) => queue,
            // A start at a first descriptor the ring has visibly moved past.
            Err(QueueError::PackedRingPositionLost) => {
                rejected += 1;
                return;
            }
            Err(e) => panic!("the layout is valid: {e}"),
        };
        let mut chain = DescChain::default();
        let mut popped_at = Vec::new();
        for _ in 0..2 * u32::from(size) + 2 {
            match rng.below(10) {
                0 => {
                    let _ = queue.needs_notification();
                }
                1 => {
                    let _ = queue.enable_notification();
                }
                2 => queue.disable_notification(),
                3 => {
                    // Back to where an earlier chain was popped, or to anything at all.
                    let to = match popped_at.len() {
                        0 => rng.next_u64() as u16,
                        n => popped_at[rng.below(n as u64) as usize],
                    };
                    queue.rewind_to(to);
                }
                4 => {
                    // The guest rewrites a descriptor under our feet.
                    let position = rng.below(u64::from(size)) as u16;
                    driver.write_desc(position, random_packed_desc(rng, hostile));
                }
                _ => match queue.pop_chain_into(&mut chain) {
                    Ok(true) => {
                        popped += 1;
                        popped_at.push(chain.popped_at);
                        assert!((1..=size).contains(&chain.slots));
                        assert!(chain.readable().len() + chain.writable().len() <= 2 * usize::from(size));
                        touch(queue.memory(), &chain);
                        let written = chain.writable_len().min(u64::from(u32::MAX)) as u32;
                        queue.add_used(chain.head, chain.slots, written);
                    }
                    Ok(false) => {}
                    Err(_) => {
                        rejected += 1;
                        break;
                    }
                },
            }
            let state = queue.state();
            assert!(state.next_avail & 0x7fff < size && state.next_used & 0x7fff < size, "{state:?}");
        }
    });
    // The generator must exercise both outcomes, or the test proves little (20 000 cases pop
    // about 7 chains and meet about 1 rejection per 5 cases).
    if cases >= 1000 {
        assert!(popped > cases * 3 && rejected > cases / 10, "{cases} cases: popped {popped}, rejected {rejected}");
    }
}

#[test]
fn hostile_packed_ring_placement_is_rejected_or_safe() {
    let guest = MockGuest::with_regions(&REGIONS);
    run_cases("hostile_packed_ring_placement", 0xfade, |rng, _| {
        let state = QueueState {
            packed: true,
            size: if rng.below(4) == 0 { rng.next_u64() as u16 } else { 1 + rng.below(1024) as u16 },
            desc_addr: random_addr(rng) & !(rng.below(2) * 15),
            avail_addr: random_addr(rng) & !(rng.below(2) * 3),
            used_addr: random_addr(rng) & !(rng.below(2) * 3),
            next_avail: rng.next_u64() as u16,
            next_used: rng.next_u64() as u16,
            event_idx: rng.below(2) == 0,
            used_log_addr: (rng.below(2) == 0).then(|| rng.next_u64()),
        };
        if let Ok(mut queue) = Virtqueue::new(guest.memory().clone(), state) {
            let mut chain = DescChain::default();
            for _ in 0..8 {
                if let Ok(true) = queue.pop_chain_into(&mut chain) {
                    touch(queue.memory(), &chain);
                    let _ = queue.add_used(&chain, 0);
                }
                queue.publish_used();
                let _ = queue.needs_notification();
                let _ = queue.enable_notification();
                queue.disable_notification();
            }
        }
    });
}
