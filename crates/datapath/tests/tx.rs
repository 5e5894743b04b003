//! TX: what the guest puts on its transmit ring arrives on the TAP intact, header metadata included.

mod common;

use std::time::Duration;

use common::*;
use vring::net_hdr::{VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4};
use vring::VirtioNetHdr;

const WAIT: Duration = Duration::from_secs(3);

fn hdr_bytes(hdr: VirtioNetHdr, len: usize) -> Vec<u8> {
    let mut b = Vec::new();
    b.push(hdr.flags);
    b.push(hdr.gso_type);
    for v in [
        hdr.hdr_len,
        hdr.gso_size,
        hdr.csum_start,
        hdr.csum_offset,
        hdr.num_buffers,
    ] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.truncate(len);
    b
}

/// An IPv4/TCP frame from GUEST_MAC with `payload` bytes of data (TCP checksum left partial).
fn tcp4_frame(payload: usize) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&HOST_MAC);
    f.extend_from_slice(&GUEST_MAC);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let total = (20 + 20 + payload) as u16;
    let mut ip = vec![
        0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1,
    ];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    let sum = ip
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum::<u32>();
    let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&ip);
    let mut tcp = vec![0u8; 20];
    tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
    tcp[2..4].copy_from_slice(&5201u16.to_be_bytes());
    tcp[4..8].copy_from_slice(&1u32.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x18; // PSH|ACK
    tcp[14..16].copy_from_slice(&65535u16.to_be_bytes());
    f.extend_from_slice(&tcp);
    f.extend((0..payload).map(|i| (i % 251) as u8));
    f
}

fn frame_split_across_descriptors_arrives_intact(variant: Variant) {
    in_fresh_netns(move || {
        let mut rig = Rig::new(variant);
        let worker = rig.start();
        let frame = test_frame([0xff; 6], GUEST_MAC, 1000, 3);
        let hdr = vec![0u8; variant.vnet_hdr_len];
        // Header alone, then the frame in three pieces: four descriptors.
        let head = rig.guest_send(&hdr, &frame, &[variant.vnet_hdr_len, 100, 300]);
        kick(&rig.tx_kick);
        let got = rig
            .sock
            .recv_from(GUEST_MAC, WAIT)
            .expect("frame on the TAP");
        assert_eq!(got, frame);
        wait_until("used element", || rig.tx.used_idx() == 1);
        assert_eq!(rig.tx.used_elem(0), (u32::from(head), 0));
        let c = rig.counters.snapshot();
        assert_eq!(
            (c.tx_frames, c.tx_bytes, c.tx_dropped, c.tx_errors),
            (1, 1000, 0, 0)
        );
        wait_until("call", || take_calls(&rig.tx_call) == 1);
        let report = worker.stop();
        assert_eq!(report.tx.map(|s| (s.next_avail, s.next_used)), Some((1, 1)));
        assert!(report.fault.is_none());
    });
}

#[test]
fn frame_split_across_descriptors_arrives_intact_12_byte_header() {
    frame_split_across_descriptors_arrives_intact(PLAIN);
}

#[test]
fn frame_split_across_descriptors_arrives_intact_10_byte_header() {
    frame_split_across_descriptors_arrives_intact(LEGACY_HDR);
}

#[test]
fn checksum_and_gso_requests_pass_through_to_the_tap() {
    in_fresh_netns(|| {
        let mut rig = Rig::new(PLAIN);
        let sock = PacketSocket::bind_vnet_hdr(rig.tap.name());
        let worker = rig.start();

        // A TSO super-frame: 3000 bytes of TCP payload to be cut into 1000-byte segments, with
        // the checksum left to whoever segments it.
        let frame = tcp4_frame(3000);
        let hdr = VirtioNetHdr {
            flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
            gso_type: VIRTIO_NET_HDR_GSO_TCPV4,
            hdr_len: 54,
            gso_size: 1000,
            csum_start: 34,
            csum_offset: 16,
            num_buffers: 0,
        };
        rig.guest_send(&hdr_bytes(hdr, 12), &frame, &[12, 54]);
        kick(&rig.tx_kick);
        let got = sock
            .recv_from(GUEST_MAC, WAIT)
            .expect("GSO frame on the TAP");
        let seen = VirtioNetHdr::from_le_bytes({
            let mut b = [0u8; 12];
            b[..10].copy_from_slice(&got[..10]);
            b
        });
        assert_eq!(
            seen.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM,
            VIRTIO_NET_HDR_F_NEEDS_CSUM
        );
        assert_eq!(seen.gso_type, VIRTIO_NET_HDR_GSO_TCPV4);
        assert_eq!(seen.gso_size, 1000);
        assert_eq!((seen.csum_start, seen.csum_offset), (34, 16));
        assert_eq!(
            &got[10..],
            &frame[..],
            "one unsegmented frame, byte for byte"
        );
        // The batch's counters are added before its used elements are published.
        wait_until("used element", || rig.tx.used_idx() == 1);
        let c = rig.counters.snapshot();
        assert_eq!((c.tx_frames, c.tx_errors), (1, 0));
        worker.stop();
    });
}

#[test]
fn malformed_chains_are_dropped_and_the_ring_goes_on() {
    in_fresh_netns(|| {
        let mut rig = Rig::new(PLAIN);
        let worker = rig.start();
        // Shorter than the virtio-net header.
        let short = rig.tx.alloc(5);
        let h_short = rig.tx.add_desc_chain(&[(short, 5, false)]);
        // Longer than a 64 KiB GSO frame plus headers.
        let huge_len = 12 + 65562 + 1;
        let huge = rig.tx.alloc(huge_len);
        let h_huge = rig.tx.add_desc_chain(&[(huge, huge_len, false)]);
        rig.tx.publish_avail();
        let frame = test_frame([0xff; 6], GUEST_MAC, 60, 9);
        let h_good = rig.guest_send(&[0; 12], &frame, &[]);
        kick(&rig.tx_kick);
        assert_eq!(
            rig.sock.recv_from(GUEST_MAC, WAIT).expect("the good frame"),
            frame
        );
        wait_until("three used elements", || rig.tx.used_idx() == 3);
        assert_eq!(rig.tx.used_elem(0), (u32::from(h_short), 0));
        assert_eq!(rig.tx.used_elem(1), (u32::from(h_huge), 0));
        assert_eq!(rig.tx.used_elem(2), (u32::from(h_good), 0));
        let c = rig.counters.snapshot();
        assert_eq!((c.tx_frames, c.tx_dropped), (1, 2));
        assert!(rig.faults().is_empty());
        worker.stop();
    });
}

#[test]
fn a_batch_larger_than_one_round_is_fully_sent() {
    in_fresh_netns(|| {
        let mut rig = Rig::new(PLAIN);
        let worker = rig.start();
        let n = 200; // more than TX_BATCH, less than the queue size
        for i in 0..n {
            let frame = test_frame([0xff; 6], GUEST_MAC, 64 + i, i as u8);
            rig.guest_send(&[0; 12], &frame, &[]);
        }
        kick(&rig.tx_kick);
        for i in 0..n {
            let got = rig.sock.recv_from(GUEST_MAC, WAIT).expect("frame");
            assert_eq!(got.len(), 64 + i, "frames arrive in ring order");
        }
        wait_until("all used", || rig.tx.used_idx() == n as u16);
        worker.stop();
    });
}
