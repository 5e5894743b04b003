//! Several queue pairs on one multi-queue TAP, one worker each.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use datapath::Tap;

#[test]
fn each_queue_pair_sends_and_receives_through_its_own_tap_queue() {
    in_fresh_netns(|| {
        let tap = Arc::new(Tap::open(&unique_tap_name(), 2).expect("multi-queue TAP"));
        let mut rigs = [Rig::on_queue(PLAIN, tap.clone(), 0), Rig::on_queue(PLAIN, tap.clone(), 1)];
        for rig in rigs.iter_mut() {
            rig.guest_post_rx(&[&[2048u32] as &[u32]; 8]);
        }
        let workers: Vec<_> = rigs.iter().map(|r| r.start()).collect();

        let sent: Vec<Vec<u8>> = rigs
            .iter_mut()
            .enumerate()
            .map(|(i, rig)| {
                let frame = test_frame([0xff; 6], GUEST_MAC, 100 + i, i as u8);
                rig.guest_send(&[0; 12], &frame, &[]);
                kick(&rig.tx_kick);
                frame
            })
            .collect();
        let mut got: Vec<Vec<u8>> =
            (0..2).filter_map(|_| rigs[0].sock.recv_from(GUEST_MAC, Duration::from_secs(3))).collect();
        got.sort_by_key(|f| f.len());
        assert_eq!(got, sent, "one frame from each queue pair");
        // The batch's counters are added before its used elements are published.
        wait_until("both used elements", || rigs.iter().all(|r| r.tx.used_idx() == 1));
        assert_eq!(rigs.iter().map(|r| r.counters.snapshot().tx_frames).collect::<Vec<_>>(), [1, 1]);

        // The kernel picks the TAP queue of an inbound frame: it lands in exactly one guest ring.
        for n in 0..4 {
            rigs[0].host_send(&test_frame(GUEST_MAC, HOST_MAC, 64, n));
        }
        wait_until("four frames delivered", || rigs[0].rx.used_idx() + rigs[1].rx.used_idx() == 4);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(rigs[0].rx.used_idx() + rigs[1].rx.used_idx(), 4, "no frame delivered twice");
        for w in workers {
            assert!(w.stop().fault.is_none());
        }
    });
}
