//! The busy-poll budget: while it runs the worker serves the TX ring without kicks (which stay
//! off), and once it passes with nothing found the worker enables kicks again and sleeps.

mod common;

use std::time::{Duration, Instant};

use common::*;
use datapath::worker::Worker;
use vring::VRING_USED_F_NO_NOTIFY;

const WAIT: Duration = Duration::from_secs(3);
const BUDGET: Duration = Duration::from_millis(400);

#[test]
fn a_polling_worker_needs_no_kick_and_sleeps_again_once_the_budget_passes() {
    in_fresh_netns(|| {
        let mut rig = Rig::new(PLAIN);
        let worker = Worker::start(datapath::worker::WorkerConfig { busy_poll: BUDGET, ..rig.config(None, Some(true)) }).unwrap();
        rig.guest_send(&[0; 12], &test_frame([0xff; 6], GUEST_MAC, 64, 1), &[]);
        kick(&rig.tx_kick);
        rig.sock.recv_from(GUEST_MAC, WAIT).expect("the kicked frame");
        let polling_since = Instant::now();
        assert_eq!(rig.tx.used_flags(), VRING_USED_F_NO_NOTIFY, "kicks are off while the worker polls");
        // No kick: the polling worker finds it anyway.
        rig.guest_send(&[0; 12], &test_frame([0xff; 6], GUEST_MAC, 64, 2), &[]);
        rig.sock.recv_from(GUEST_MAC, WAIT).expect("the frame nobody kicked for");
        assert!(polling_since.elapsed() < BUDGET, "found within the budget");
        wait_until("kicks enabled again after the budget", || rig.tx.used_flags() == 0);
        assert!(polling_since.elapsed() >= BUDGET);
        rig.guest_send(&[0; 12], &test_frame([0xff; 6], GUEST_MAC, 64, 3), &[]);
        kick(&rig.tx_kick);
        rig.sock.recv_from(GUEST_MAC, WAIT).expect("a kicked frame after the worker slept");
        worker.stop();
    });
}
