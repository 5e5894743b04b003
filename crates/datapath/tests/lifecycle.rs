//! Ring states (vhost-user spec "Ring states"), start/stop, notification suppression and hostile
//! drivers.

mod common;

use std::time::Duration;

use common::*;
use datapath::Worker;
use vring::{Descriptor, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE};

const WAIT: Duration = Duration::from_secs(3);
const QUIET: Duration = Duration::from_millis(150);

#[test]
fn work_queued_before_start_is_not_lost() {
    in_fresh_netns(|| {
        let mut rig = Rig::new(PLAIN);
        let out = test_frame([0xff; 6], GUEST_MAC, 80, 1);
        rig.guest_send(&[0; 12], &out, &[]);
        kick(&rig.tx_kick);
        let posted = rig.guest_post_rx(&[&[2048]]);
        let inbound = test_frame(GUEST_MAC, HOST_MAC, 90, 2);
        rig.host_send(&inbound);

        let worker = rig.start();
        assert_eq!(
            rig.sock
                .recv_from(GUEST_MAC, WAIT)
                .expect("TX kicked before start"),
            out
        );
        wait_until("RX frame queued before start", || rig.rx.used_idx() == 1);
        assert_eq!(&rig.read_chain(&posted[0].1, 102)[12..], &inbound[..]);
        worker.stop();
    });
}

#[test]
fn disabled_tx_ring_drains_and_drops() {
    in_fresh_netns(|| {
        let mut rig = Rig::new(PLAIN);
        let worker = Worker::start(rig.config(None, Some(false))).unwrap();
        let heads: Vec<u16> = (0..3)
            .map(|i| rig.guest_send(&[0; 12], &test_frame([0xff; 6], GUEST_MAC, 64, i), &[]))
            .collect();
        kick(&rig.tx_kick);
        wait_until("chains returned", || rig.tx.used_idx() == 3);
        for (i, head) in heads.iter().enumerate() {
            assert_eq!(rig.tx.used_elem(i as u16), (u32::from(*head), 0));
        }
        assert!(
            rig.sock.recv_from(GUEST_MAC, QUIET).is_none(),
            "nothing reaches the TAP"
        );
        let c = rig.counters.snapshot();
        assert_eq!((c.tx_frames, c.tx_dropped), (0, 3));
        let report = worker.stop();
        assert_eq!(report.rx, None, "RX was not started");
        assert_eq!(report.tx.map(|s| (s.next_avail, s.next_used)), Some((3, 3)));
    });
}

#[test]
fn disabled_rx_ring_gets_nothing() {
    in_fresh_netns(|| {
        let mut rig = Rig::new(PLAIN);
        rig.guest_post_rx(&[&[2048]]);
        let worker = Worker::start(rig.config(Some(false), Some(true))).unwrap();
        rig.host_send(&test_frame(GUEST_MAC, HOST_MAC, 64, 1));
        kick(&rig.rx_kick);
        std::thread::sleep(QUIET);
        assert_eq!(rig.rx.used_idx(), 0);
        let report = worker.stop();
        assert_eq!(report.rx.map(|s| (s.next_avail, s.next_used)), Some((0, 0)));

        // Enabled later (a new worker from the saved state): the queued frame arrives.
        let worker = Worker::start(rig.config(Some(true), Some(true))).unwrap();
        wait_until("frame after enable", || rig.rx.used_idx() == 1);
        worker.stop();
    });
}

#[test]
fn stop_returns_the_ring_state_and_a_restarted_worker_continues() {
    in_fresh_netns(|| {
        let mut rig = Rig::new(PLAIN);
        let worker = rig.start();
        for i in 0..5 {
            rig.guest_send(&[0; 12], &test_frame([0xff; 6], GUEST_MAC, 64, i), &[]);
        }
        kick(&rig.tx_kick);
        wait_until("five used", || rig.tx.used_idx() == 5);
        let report = worker.stop();
        let tx_state = report.tx.unwrap();
        assert_eq!((tx_state.next_avail, tx_state.next_used), (5, 5));
        assert_eq!(report.rx.map(|s| (s.next_avail, s.next_used)), Some((0, 0)));

        // GET_VRING_BASE answered; the ring is started again from that base (e.g. after a memory
        // table change): the used ring continues where it was.
        let mut cfg = rig.config(None, Some(true));
        cfg.tx.as_mut().unwrap().state = tx_state;
        let worker = Worker::start(cfg).unwrap();
        let head = rig.guest_send(&[0; 12], &test_frame([0xff; 6], GUEST_MAC, 64, 9), &[]);
        kick(&rig.tx_kick);
        wait_until("sixth used", || rig.tx.used_idx() == 6);
        assert_eq!(rig.tx.used_elem(5), (u32::from(head), 0));
        let report = worker.stop();
        assert_eq!(report.tx.map(|s| (s.next_avail, s.next_used)), Some((6, 6)));
        assert_eq!(rig.counters.snapshot().tx_frames, 6);
    });
}

#[test]
fn call_is_signalled_only_when_the_driver_wants_it() {
    in_fresh_netns(|| {
        let mut rig = Rig::new(PLAIN);
        let worker = rig.start();
        rig.tx.set_avail_flags(vring::VRING_AVAIL_F_NO_INTERRUPT);
        rig.guest_send(&[0; 12], &test_frame([0xff; 6], GUEST_MAC, 64, 1), &[]);
        kick(&rig.tx_kick);
        wait_until("used", || rig.tx.used_idx() == 1);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(take_calls(&rig.tx_call), 0, "NO_INTERRUPT respected");

        rig.tx.set_avail_flags(0);
        rig.guest_send(&[0; 12], &test_frame([0xff; 6], GUEST_MAC, 64, 2), &[]);
        kick(&rig.tx_kick);
        wait_until("interrupt", || take_calls(&rig.tx_call) == 1);
        worker.stop();
    });
}

#[test]
fn call_follows_used_event_with_event_idx() {
    in_fresh_netns(|| {
        let mut rig = Rig::new(Variant {
            event_idx: true,
            ..PLAIN
        });
        let worker = rig.start();
        let send = |rig: &mut Rig, n: u8| {
            rig.guest_send(&[0; 12], &test_frame([0xff; 6], GUEST_MAC, 64, n), &[]);
            kick(&rig.tx_kick);
        };
        // The first notification decision always interrupts.
        send(&mut rig, 0);
        wait_until("first interrupt", || take_calls(&rig.tx_call) == 1);
        // used_event = 3: interrupt only once used.idx moves past 3 (after the 4th element).
        rig.tx.set_used_event(3);
        for n in 1..3 {
            send(&mut rig, n);
            wait_until("used", || rig.tx.used_idx() == u16::from(n) + 1);
        }
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            take_calls(&rig.tx_call),
            0,
            "used.idx has not passed used_event"
        );
        send(&mut rig, 3);
        wait_until("interrupt at used_event", || take_calls(&rig.tx_call) == 1);
        worker.stop();
    });
}

/// A descriptor whose NEXT points at itself (a loop).
fn post_looping_chain(driver: &mut vring::mock::MockDriver, writable: bool) {
    let addr = driver.alloc(64);
    let flags = VIRTQ_DESC_F_NEXT | if writable { VIRTQ_DESC_F_WRITE } else { 0 };
    driver.write_desc(
        7,
        Descriptor {
            addr,
            len: 64,
            flags,
            next: 7,
        },
    );
    driver.push_avail_head(7);
    driver.publish_avail();
}

#[test]
fn looping_tx_chain_faults_once_and_parks() {
    in_fresh_netns(|| {
        let mut rig = Rig::new(PLAIN);
        let worker = rig.start();
        post_looping_chain(&mut rig.tx, false);
        kick(&rig.tx_kick);
        wait_until("fault report", || !rig.faults().is_empty());
        // More kicks and traffic: nothing is touched, no second report.
        rig.guest_send(&[0; 12], &test_frame([0xff; 6], GUEST_MAC, 64, 1), &[]);
        kick(&rig.tx_kick);
        kick(&rig.rx_kick);
        rig.host_send(&test_frame(GUEST_MAC, HOST_MAC, 64, 2));
        std::thread::sleep(QUIET);
        let faults = rig.faults();
        assert_eq!(faults.len(), 1, "{faults:?}");
        assert!(
            faults[0].starts_with("TX virtqueue:") && faults[0].contains("loop"),
            "{}",
            faults[0]
        );
        assert_eq!(rig.tx.used_idx(), 0);
        let report = worker.stop();
        assert_eq!(report.fault.as_deref(), Some(faults[0].as_str()));
        assert_eq!(
            report.tx.map(|s| s.next_avail),
            Some(0),
            "the broken chain was not consumed"
        );
    });
}

/// A frame sent in the batch that then broke off at the fault is counted as sent.
#[test]
fn frames_sent_before_a_fault_in_the_same_batch_are_counted() {
    in_fresh_netns(|| {
        let mut rig = Rig::new(PLAIN);
        let frame = test_frame([0xff; 6], GUEST_MAC, 80, 1);
        rig.guest_send(&[0; 12], &frame, &[]);
        let (head, _) = rig.tx.add_alloc_chain(&[(16, false)]);
        rig.tx.write_desc(head, Descriptor { addr: MEM_SIZE + (1 << 30), len: 64, flags: 0, next: 0 });
        rig.tx.publish_avail();
        let worker = rig.start();
        kick(&rig.tx_kick);
        assert_eq!(rig.sock.recv_from(GUEST_MAC, WAIT).as_deref(), Some(&frame[..]), "sent before the fault");
        wait_until("the fault", || !rig.faults().is_empty());
        worker.stop();
        let c = rig.counters.snapshot();
        assert_eq!((c.tx_frames, c.tx_bytes), (1, 80));
    });
}

#[test]
fn a_tap_deleted_under_the_worker_stops_the_pair_as_a_host_failure_not_a_guest_fault() {
    in_fresh_netns(|| {
        let mut rig = Rig::new(PLAIN);
        let worker = rig.start();
        // With RX buffers posted the worker watches the TAP's fd, which reports the deletion.
        rig.guest_post_rx(&[&[2048], &[2048]]);
        kick(&rig.rx_kick);
        let deleted = std::process::Command::new("ip")
            .args(["link", "del", rig.tap.name()])
            .status()
            .expect("run ip");
        assert!(deleted.success());
        wait_until("host failure report", || !rig.host_failures().is_empty());
        let failures = rig.host_failures();
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(failures[0].contains("was the TAP deleted"), "{}", failures[0]);
        assert!(rig.faults().is_empty(), "not the guest's fault: {:?}", rig.faults());
        assert_eq!(worker.stop().fault.as_deref(), Some(failures[0].as_str()));
    });
}

#[test]
fn rx_buffer_outside_guest_memory_faults_once() {
    in_fresh_netns(|| {
        let mut rig = Rig::new(PLAIN);
        let worker = rig.start();
        rig.rx.write_desc(
            3,
            Descriptor {
                addr: MEM_SIZE - 16,
                len: 2048,
                flags: VIRTQ_DESC_F_WRITE,
                next: 0,
            },
        );
        rig.rx.push_avail_head(3);
        rig.rx.publish_avail();
        kick(&rig.rx_kick);
        rig.host_send(&test_frame(GUEST_MAC, HOST_MAC, 64, 2));
        wait_until("fault report", || !rig.faults().is_empty());
        std::thread::sleep(QUIET);
        let faults = rig.faults();
        assert_eq!(faults.len(), 1, "{faults:?}");
        assert!(faults[0].starts_with("RX virtqueue:"), "{}", faults[0]);
        assert_eq!(rig.rx.used_idx(), 0);
        assert!(worker.stop().fault.is_some());
    });
}

#[test]
fn avail_idx_far_ahead_faults_once() {
    in_fresh_netns(|| {
        let mut rig = Rig::new(PLAIN);
        let worker = rig.start();
        rig.tx.set_avail_idx(QUEUE_SIZE + 1);
        kick(&rig.tx_kick);
        wait_until("fault report", || !rig.faults().is_empty());
        kick(&rig.tx_kick);
        std::thread::sleep(QUIET);
        assert_eq!(rig.faults().len(), 1);
        worker.stop();
    });
}

#[test]
fn invalid_ring_addresses_refuse_to_start() {
    in_fresh_netns(|| {
        let rig = Rig::new(PLAIN);
        let mut cfg = rig.config(Some(true), None);
        cfg.rx.as_mut().unwrap().state.used_addr = MEM_SIZE - 8;
        match Worker::start(cfg) {
            Err(e) => assert!(
                e.to_string().starts_with("RX virtqueue cannot be started"),
                "{e}"
            ),
            Ok(_) => panic!("a used ring outside guest memory was accepted"),
        }
    });
}

#[test]
fn dropping_a_worker_stops_its_thread() {
    in_fresh_netns(|| {
        let rig = Rig::new(PLAIN);
        let worker = rig.start();
        drop(worker);
        // The TAP fd is only held by the rig now: closing it must be possible and quick.
        assert_eq!(
            std::sync::Arc::strong_count(&rig.tap.queue_fd(0).unwrap()),
            2
        );
    });
}
