//! A queue pair whose RX ring broke elsewhere (in switch mode the switch port serves RX and trips
//! the pair's fault latch): the worker stops serving TX at its next wake-up, without a report of
//! its own (the RX fault was the pair's one report).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use datapath::{PairFault, Worker};

const WAIT: Duration = Duration::from_secs(3);
const QUIET: Duration = Duration::from_millis(150);

#[test]
fn a_tripped_pair_fault_stops_tx_without_a_second_report() {
    in_fresh_netns(|| {
        let mut rig = Rig::new(PLAIN);
        let pair_fault = Arc::new(PairFault::default());
        let mut config = rig.config(None, Some(true));
        config.pair_fault = pair_fault.clone();
        let worker = Worker::start(config).unwrap();

        let before = test_frame([0xff; 6], GUEST_MAC, 80, 1);
        rig.guest_send(&[0; 12], &before, &[]);
        kick(&rig.tx_kick);
        assert_eq!(
            rig.sock.recv_from(GUEST_MAC, WAIT).as_deref(),
            Some(&before[..]),
            "served before the fault"
        );
        // Trip only once the worker is done with that batch (kicks enabled again): the latch is
        // looked at when the worker wakes, so a chain added during a running batch may still go.
        wait_until("the worker finished its batch", || {
            rig.tx.used_idx() == 1 && rig.tx.used_flags() == 0
        });

        assert!(pair_fault.trip(), "the first fault of the pair");
        assert!(!pair_fault.trip(), "a later one is not reported again");
        rig.guest_send(&[0; 12], &test_frame([0xff; 6], GUEST_MAC, 80, 2), &[]);
        kick(&rig.tx_kick);
        assert!(
            rig.sock.recv_from(GUEST_MAC, QUIET).is_none(),
            "nothing is sent once the pair broke"
        );
        assert_eq!(
            rig.tx.used_idx(),
            1,
            "the chain after the fault is not used"
        );
        assert!(
            rig.faults().is_empty(),
            "the worker reports nothing itself: {:?}",
            rig.faults()
        );

        let report = worker.stop();
        assert_eq!(
            report.fault.as_deref(),
            Some("the queue pair's RX virtqueue broke")
        );
        assert_eq!(report.tx.map(|s| (s.next_avail, s.next_used)), Some((1, 1)));
    });
}
