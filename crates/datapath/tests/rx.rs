//! RX: frames arriving on the TAP are written into the guest's receive buffers, with and without
//! mergeable buffers; no frame is lost when the guest runs out of buffers.

mod common;

use std::time::Duration;

use common::*;

/// Reads `num_buffers` (header bytes 10..12) from the first chain's buffers.
fn num_buffers(rig: &Rig, bufs: &[vring::Buf]) -> u16 {
    let h = rig.read_chain(bufs, 12);
    u16::from_le_bytes([h[10], h[11]])
}

fn one_frame_per_chain(variant: Variant) {
    in_fresh_netns(move || {
        let mut rig = Rig::new(variant);
        let hdr = variant.vnet_hdr_len;
        // Header and frame straddle two descriptors.
        let posted = rig.guest_post_rx(&[&[20, 2000], &[2020]]);
        let worker = rig.start();
        let frame = test_frame(GUEST_MAC, HOST_MAC, 100, 1);
        rig.host_send(&frame);
        wait_until("used element", || rig.rx.used_idx() == 1);
        let (head, bufs) = &posted[0];
        assert_eq!(rig.rx.used_elem(0), (u32::from(*head), (hdr + 100) as u32));
        let got = rig.read_chain(bufs, hdr + 100);
        assert_eq!(&got[hdr..], &frame[..]);
        if hdr == 12 {
            assert_eq!(num_buffers(&rig, bufs), 1);
        }
        assert!(
            rig.log.covers(bufs[0].addr, 20) && rig.log.covers(bufs[1].addr, hdr + 100 - 20),
            "note_write"
        );
        let c = rig.counters.snapshot();
        assert_eq!((c.rx_frames, c.rx_bytes, c.rx_truncated), (1, 100, 0));
        wait_until("call", || take_calls(&rig.rx_call) >= 1);

        let second = test_frame(GUEST_MAC, HOST_MAC, 1514, 2);
        rig.host_send(&second);
        wait_until("second used element", || rig.rx.used_idx() == 2);
        assert_eq!(rig.read_chain(&posted[1].1, hdr + 1514)[hdr..], second[..]);
        let report = worker.stop();
        assert_eq!(report.rx.map(|s| (s.next_avail, s.next_used)), Some((2, 2)));
    });
}

#[test]
fn one_frame_per_chain_12_byte_header() {
    one_frame_per_chain(PLAIN);
}

#[test]
fn one_frame_per_chain_10_byte_header() {
    one_frame_per_chain(LEGACY_HDR);
}

fn mergeable_small_buffers(variant: Variant) {
    in_fresh_netns(move || {
        let mut rig = Rig::new(variant);
        let posted = rig.guest_post_rx(&[&[256u32] as &[u32]; 12]);
        let worker = rig.start();
        // 12 + 1000 bytes: three full 256-byte buffers and 244 bytes of a fourth.
        let frame = test_frame(GUEST_MAC, HOST_MAC, 1000, 5);
        rig.host_send(&frame);
        wait_until("four used elements", || rig.rx.used_idx() == 4);
        for (i, len) in [256, 256, 256, 244].into_iter().enumerate() {
            assert_eq!(rig.rx.used_elem(i as u16), (u32::from(posted[i].0), len));
        }
        assert_eq!(num_buffers(&rig, &posted[0].1), 4);
        let all: Vec<vring::Buf> = posted[..4].iter().flat_map(|(_, b)| b.clone()).collect();
        assert_eq!(&rig.read_chain(&all, 1012)[12..], &frame[..]);
        for b in &all[..3] {
            assert!(rig.log.covers(b.addr, 256), "note_write of a full buffer");
        }
        assert!(rig.log.covers(all[3].addr, 244));

        // The chains not needed were put back: the next frame starts at chain 4.
        let small = test_frame(GUEST_MAC, HOST_MAC, 60, 6);
        rig.host_send(&small);
        wait_until("fifth used element", || rig.rx.used_idx() == 5);
        assert_eq!(rig.rx.used_elem(4), (u32::from(posted[4].0), 72));
        assert_eq!(num_buffers(&rig, &posted[4].1), 1);
        assert_eq!(&rig.read_chain(&posted[4].1, 72)[12..], &small[..]);
        let report = worker.stop();
        assert_eq!(report.rx.map(|s| (s.next_avail, s.next_used)), Some((5, 5)));
        assert_eq!(rig.counters.snapshot().rx_frames, 2);
    });
}

#[test]
fn mergeable_small_buffers_give_num_buffers_above_one() {
    mergeable_small_buffers(MERGEABLE);
}

#[test]
fn mergeable_small_buffers_give_num_buffers_above_one_event_idx() {
    mergeable_small_buffers(MERGEABLE_EVENT_IDX);
}

fn check_no_buffers_then_posting_delivers(variant: Variant) {
    in_fresh_netns(move || {
        let mut rig = Rig::new(variant);
        let worker = rig.start();
        let frame = test_frame(GUEST_MAC, HOST_MAC, 1200, 7);
        rig.host_send(&frame);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(rig.rx.used_idx(), 0);
        let posted = if variant.mrg_rxbuf {
            // Too little for a maximal frame while the driver could post more: the worker waits
            // for more rather than risk truncation...
            let mut posted = rig.guest_post_rx(&[&[512], &[512]]);
            std::thread::sleep(Duration::from_millis(100));
            assert_eq!(rig.rx.used_idx(), 0, "waits for enough buffers");
            // ...and the next posting must be noticed (with EVENT_IDX: avail_event moved past
            // the chains it already looked at, so this posting kicks).
            posted.extend(rig.guest_post_rx(&[&[512], &[512]]));
            posted
        } else {
            rig.guest_post_rx(&[&[2048]])
        };
        let heads = if variant.mrg_rxbuf { 3 } else { 1 };
        wait_until("frame delivered after buffers were posted", || {
            rig.rx.used_idx() == heads
        });
        let all: Vec<vring::Buf> = posted.iter().flat_map(|(_, b)| b.clone()).collect();
        assert_eq!(&rig.read_chain(&all, 1212)[12..], &frame[..]);
        let c = rig.counters.snapshot();
        assert_eq!(
            (c.rx_frames, c.rx_dropped_no_buffer, c.rx_truncated),
            (1, 0, 0)
        );
        worker.stop();
    });
}

#[test]
fn no_buffers_then_posting_delivers() {
    check_no_buffers_then_posting_delivers(PLAIN);
}

#[test]
fn no_buffers_then_posting_delivers_mergeable() {
    check_no_buffers_then_posting_delivers(MERGEABLE);
}

#[test]
fn no_buffers_then_posting_delivers_mergeable_event_idx() {
    check_no_buffers_then_posting_delivers(MERGEABLE_EVENT_IDX);
}

#[test]
fn whole_ring_posted_but_too_small_reads_anyway_and_counts_truncation() {
    in_fresh_netns(|| {
        let mut rig = Rig::new(MERGEABLE);
        // Every descriptor of the ring posted, 1024 bytes in all: less than a maximal frame, and
        // the driver cannot post more, so waiting would deadlock.
        let chains: Vec<&[u32]> = vec![&[4]; QUEUE_SIZE as usize];
        let posted = rig.guest_post_rx(&chains);
        let worker = rig.start();
        let frame = test_frame(GUEST_MAC, HOST_MAC, 1500, 8);
        rig.host_send(&frame);
        wait_until("all chains used", || rig.rx.used_idx() == QUEUE_SIZE);
        let all: Vec<vring::Buf> = posted.iter().flat_map(|(_, b)| b.clone()).collect();
        assert_eq!(num_buffers(&rig, &all), QUEUE_SIZE);
        assert_eq!(&rig.read_chain(&all, 1024)[12..], &frame[..1012]);
        let c = rig.counters.snapshot();
        assert_eq!((c.rx_frames, c.rx_truncated), (1, 1));
        worker.stop();
    });
}

fn queued_frames_fill_consecutive_chains(variant: Variant) {
    in_fresh_netns(move || {
        let mut rig = Rig::new(variant);
        // More frames than one RX batch, queued on the TAP before the worker starts.
        let frames: Vec<Vec<u8>> = (0..100)
            .map(|i| test_frame(GUEST_MAC, HOST_MAC, 60 + i, i as u8))
            .collect();
        for f in &frames {
            rig.host_send(f);
        }
        let chains: Vec<&[u32]> = vec![&[2048]; 120];
        let posted = rig.guest_post_rx(&chains);
        let worker = rig.start();
        wait_until("100 frames", || rig.rx.used_idx() == 100);
        for (i, f) in frames.iter().enumerate() {
            let len = 12 + f.len();
            assert_eq!(
                rig.rx.used_elem(i as u16),
                (u32::from(posted[i].0), len as u32),
                "frame {i}"
            );
            assert_eq!(
                &rig.read_chain(&posted[i].1, len)[12..],
                &f[..],
                "frame {i}"
            );
            assert_eq!(num_buffers(&rig, &posted[i].1), 1);
        }
        let report = worker.stop();
        assert_eq!(
            report.rx.map(|s| (s.next_avail, s.next_used)),
            Some((100, 100)),
            "unused chains put back"
        );
    });
}

#[test]
fn queued_frames_fill_consecutive_chains_plain() {
    queued_frames_fill_consecutive_chains(PLAIN);
}

#[test]
fn queued_frames_fill_consecutive_chains_mergeable() {
    queued_frames_fill_consecutive_chains(MERGEABLE);
}
