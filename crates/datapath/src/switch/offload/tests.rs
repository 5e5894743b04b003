//! Software checksum and TCP segmentation, checked the way a receiver checks: every IP header
//! and TCP segment must sum to 0xffff with its pseudo-header, and the payloads must join up.

use super::*;
use crate::switch::MAX_GSO_FRAME;

const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];

/// Ethernet + IPv4 (or IPv6) + 20-byte TCP header with `flags`, then `payload`; checksums left
/// as a sender using offloads leaves them (IP done, TCP field = anything).
fn tcp_frame(ipv6: bool, payload: &[u8], flags: u8) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&MAC_B);
    f.extend_from_slice(&MAC_A);
    f.extend_from_slice(&(if ipv6 { ETH_P_IPV6 } else { ETH_P_IP }).to_be_bytes());
    let tcp_len = 20 + payload.len();
    if ipv6 {
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&(tcp_len as u16).to_be_bytes());
        f.extend_from_slice(&[IPPROTO_TCP, 64]);
        f.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    } else {
        let total = (20 + tcp_len) as u16;
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&[0x12, 0x34, 0x40, 0, 64, IPPROTO_TCP, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        let ip_sum = !fold(sum(&f[14..34], 0));
        put_u16(&mut f, 24, ip_sum);
    }
    f.extend_from_slice(&[0x30, 0x39, 0x00, 0x50]); // ports 12345 → 80
    f.extend_from_slice(&0xffff_ff00u32.to_be_bytes()); // seq: wraps during the test
    f.extend_from_slice(&7u32.to_be_bytes()); // ack
    f.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0xde, 0xad, 0, 0]);
    f.extend_from_slice(payload);
    f
}

fn gso(ipv6: bool, mss: u16) -> VirtioNetHdr {
    VirtioNetHdr {
        flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
        gso_type: if ipv6 { VIRTIO_NET_HDR_GSO_TCPV6 } else { VIRTIO_NET_HDR_GSO_TCPV4 },
        hdr_len: if ipv6 { 74 } else { 54 },
        gso_size: mss,
        csum_start: if ipv6 { 54 } else { 34 },
        csum_offset: 16,
        num_buffers: 0,
    }
}

fn finish_all(bytes: &[u8], hdr: VirtioNetHdr) -> Result<Vec<Vec<u8>>, OffloadError> {
    let iov = [iovec(bytes)];
    // SAFETY: `bytes` outlives the frame.
    let frame = unsafe { Frame::with_offload(&iov, hdr) };
    check(&frame, MAX_GSO_FRAME)?;
    let mut out = Vec::new();
    Finisher::default().finish(&frame, &hdr, |piece| out.push(piece.to_vec()))?;
    Ok(out)
}

/// Asserts what a receiving stack would: valid IPv4 header checksum and length, valid TCP checksum.
fn assert_valid(segment: &[u8]) -> TcpLayout {
    let layout = TcpLayout::parse(segment).expect("Ethernet/IP/TCP");
    let tcp_len = segment.len() - layout.l4;
    if layout.ipv4 {
        assert_eq!(fold(sum(&segment[layout.l3..layout.l4], 0)), 0xffff, "IPv4 header checksum");
        assert_eq!(usize::from(u16::from_be_bytes([segment[16], segment[17]])), segment.len() - 14);
    } else {
        assert_eq!(usize::from(u16::from_be_bytes([segment[18], segment[19]])), tcp_len);
    }
    assert_eq!(fold(sum(&segment[layout.l4..], pseudo_header_sum(segment, &layout, tcp_len))), 0xffff, "TCP checksum");
    layout
}

#[test]
fn a_gso_frame_is_cut_into_valid_segments_that_join_up() {
    let payload: Vec<u8> = (0..3500u32).map(|i| (i * 7 % 251) as u8).collect();
    for ipv6 in [false, true] {
        let frame = tcp_frame(ipv6, &payload, TCP_PSH | TCP_FIN | 0x10 | TCP_CWR);
        let segments = finish_all(&frame, gso(ipv6, 1000)).unwrap();
        assert_eq!(segments.len(), 4, "3500 bytes in 1000-byte segments");
        let mut joined = Vec::new();
        for (i, s) in segments.iter().enumerate() {
            let layout = assert_valid(s);
            let seq = u32::from_be_bytes(s[layout.l4 + 4..layout.l4 + 8].try_into().unwrap());
            assert_eq!(seq, 0xffff_ff00u32.wrapping_add(1000 * i as u32), "sequence numbers advance (and wrap)");
            let flags = s[layout.l4 + 13];
            let last = i == segments.len() - 1;
            assert_eq!(flags & (TCP_FIN | TCP_PSH) != 0, last, "FIN/PSH on the last segment only");
            assert_eq!(flags & TCP_CWR != 0, i == 0, "CWR on the first segment only");
            assert_eq!(flags & 0x10, 0x10, "ACK everywhere");
            if layout.ipv4 {
                assert_eq!(u16::from_be_bytes([s[18], s[19]]), 0x1234 + i as u16, "IPv4 ids count up");
            }
            joined.extend_from_slice(&s[layout.payload..]);
        }
        assert_eq!(joined, payload);
    }
}

#[test]
fn a_gso_frame_no_longer_than_one_segment_and_an_empty_one_each_give_one_segment() {
    for payload in [&[1u8, 2, 3][..], &[][..]] {
        let segments = finish_all(&tcp_frame(false, payload, 0x18), gso(false, 1448)).unwrap();
        assert_eq!(segments.len(), 1);
        let layout = assert_valid(&segments[0]);
        assert_eq!(&segments[0][layout.payload..], payload);
    }
}

#[test]
fn a_partial_checksum_is_completed() {
    let mut frame = tcp_frame(false, b"hello, switch", 0x18);
    // What a guest stack leaves with NEEDS_CSUM: the pseudo-header sum, not inverted.
    let layout = TcpLayout::parse(&frame).unwrap();
    let partial = fold(pseudo_header_sum(&frame, &layout, frame.len() - layout.l4));
    put_u16(&mut frame, layout.l4 + 16, partial);
    let hdr = VirtioNetHdr { flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, csum_start: 34, csum_offset: 16, ..Default::default() };
    let out = finish_all(&frame, hdr).unwrap();
    assert_eq!(out.len(), 1);
    assert_valid(&out[0]);
    assert_eq!(&out[0][..layout.l4 + 16], &frame[..layout.l4 + 16], "nothing else changes");
}

#[test]
fn requests_that_cannot_be_finished_are_refused_before_forwarding() {
    let frame = tcp_frame(false, &[0; 100], 0x18);
    let bad_csum = VirtioNetHdr { flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, csum_start: 150, csum_offset: 6, ..Default::default() };
    assert!(matches!(finish_all(&frame, bad_csum), Err(OffloadError::ChecksumOutside { .. })));
    assert_eq!(finish_all(&frame, gso(false, 0)), Err(OffloadError::SegmentSizeTooSmall(0)));
    assert_eq!(finish_all(&frame, gso(false, 47)), Err(OffloadError::SegmentSizeTooSmall(47)), "at most ~1365 segments per frame");
    let ufo = VirtioNetHdr { gso_type: vring::net_hdr::VIRTIO_NET_HDR_GSO_UDP, gso_size: 1000, ..Default::default() };
    assert_eq!(finish_all(&frame, ufo), Err(OffloadError::UnsupportedGso(3)));
    let mut udp = frame.clone();
    udp[23] = 17;
    assert_eq!(finish_all(&udp, gso(false, 1000)), Err(OffloadError::NotTcp));
    let no_csum = VirtioNetHdr { flags: 0, ..gso(false, 1000) };
    assert_eq!(finish_all(&frame[..40], no_csum), Err(OffloadError::NotTcp), "cut inside the TCP header");
}

/// **hostile**: a checksum goes where a stack puts TCP's or UDP's, never over the headers port
/// security checked (the guest chooses its value by choosing the bytes it sums).
#[test]
fn a_checksum_is_written_only_past_the_ip_headers_and_ports() {
    let at = |bytes: &[u8], start: u16, offset: u16| {
        let iov = [iovec(bytes)];
        let hdr = VirtioNetHdr { flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, csum_start: start, csum_offset: offset, ..Default::default() };
        // SAFETY: `bytes` outlives the frame.
        check(&unsafe { Frame::with_offload(&iov, hdr) }, MAX_GSO_FRAME)
    };
    let refused = |start, offset| Err(OffloadError::ChecksumOverHeaders { start, offset });
    let (v4, v6) = (tcp_frame(false, &[0; 40], 0x18), tcp_frame(true, &[0; 40], 0x18));
    assert_eq!(at(&v4, 34, 16), Ok(()), "TCP over IPv4");
    assert_eq!(at(&v4, 34, 6), Ok(()), "where UDP's goes");
    assert_eq!(at(&v6, 54, 16), Ok(()), "TCP over IPv6");
    assert_eq!(at(&v4, 0, 6), refused(0, 6), "into the source MAC");
    assert_eq!(at(&v4, 14, 12), refused(14, 12), "into the IPv4 source");
    assert_eq!(at(&v4, 34, 2), refused(34, 2), "into the destination port");
    assert_eq!(at(&v6, 14, 8), refused(14, 8), "into the IPv6 source");
    let mut tagged = v4.clone();
    tagged.splice(12..12, [0x81, 0x00, 0x00, 0x05]);
    assert_eq!(at(&tagged, 38, 16), Ok(()), "TCP behind an 802.1Q tag");
    assert_eq!(at(&tagged, 18, 12), refused(18, 12), "the tagged packet's IPv4 source");
    let mut behind_options = v6.clone();
    behind_options[20] = 60; // destination options (8 bytes), then TCP
    behind_options.splice(54..54, [IPPROTO_TCP, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(at(&behind_options, 62, 16), Ok(()), "TCP behind an extension header");
    assert_eq!(at(&behind_options, 54, 0), refused(54, 0), "into the extension header");
    let mut icmpv6 = v6.clone();
    icmpv6[20] = 58;
    assert_eq!(at(&icmpv6, 54, 16), refused(54, 16), "into ICMPv6 (a neighbour advertisement's target)");
    let mut arp = v4.clone();
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    assert_eq!(at(&arp, 34, 16), refused(34, 16), "ARP has no checksum");
}

#[test]
fn segments_larger_than_the_switch_carries_are_refused() {
    let checked = |payload: usize, mss: u16| {
        let bytes = tcp_frame(false, &vec![0; payload], 0x18);
        let iov = [iovec(&bytes)];
        // SAFETY: `bytes` outlives the frame.
        check(&unsafe { Frame::with_offload(&iov, gso(false, mss)) }, 1518)
    };
    assert_eq!(checked(4000, 1460), Ok(()), "54 + 1460 bytes");
    assert_eq!(checked(4000, 1465), Err(OffloadError::SegmentTooBig { segment: 1519, max_frame: 1518 }));
    assert_eq!(checked(4000, 65000), Err(OffloadError::SegmentTooBig { segment: 4054, max_frame: 1518 }), "one oversized segment");
    assert_eq!(checked(100, 65000), Ok(()), "a short frame with a large gso_size is one small segment");
}

#[test]
fn guests_take_what_they_negotiated() {
    use vring::features::*;
    let linux = Accepts::guest((1 << VIRTIO_NET_F_GUEST_CSUM) | (1 << VIRTIO_NET_F_GUEST_TSO4) | (1 << VIRTIO_NET_F_GUEST_TSO6));
    assert!(linux.takes(&gso(false, 1448)) && linux.takes(&gso(true, 1448)));
    assert!(!linux.takes(&VirtioNetHdr { gso_type: VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN, ..gso(false, 1448) }), "no GUEST_ECN");
    let testpmd = Accepts::guest(0);
    assert!(!testpmd.takes(&gso(false, 1448)));
    assert!(!testpmd.takes(&VirtioNetHdr { flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, ..Default::default() }));
    assert!(testpmd.takes(&VirtioNetHdr::default()));
}

#[test]
fn through_the_switch_a_port_without_offloads_gets_segments_and_a_bad_request_is_counted_on_its_sender() {
    use std::sync::{Arc, Mutex};

    use crate::switch::{FrameWriter, PortKind, Sender, Switch, DEFAULT_AGING};

    struct Recorder(Arc<Mutex<Vec<Vec<u8>>>>);
    impl FrameWriter for Recorder {
        fn write_frame(&mut self, frame: &Frame, _from: crate::switch::PortId) -> std::io::Result<()> {
            self.0.lock().unwrap().push(frame.to_vec());
            Ok(())
        }
    }
    let sw = Switch::new(1500, DEFAULT_AGING);
    let a = sw.add_port("a", PortKind::VhostUser, 0);
    let log = Arc::new(Mutex::new(Vec::new()));
    let _b = sw.add_writer_port("b", PortKind::Stream, 0, Box::new(Recorder(log.clone())));
    let mut sender = Sender::default();
    let send = |sender: &mut Sender, bytes: &[u8], hdr: VirtioNetHdr| {
        let iov = [iovec(bytes)];
        // SAFETY: `bytes` outlives the call.
        sw.forward(&a, &unsafe { Frame::with_offload(&iov, hdr) }, sender);
    };
    let payload = vec![0x5a; 4000];
    send(&mut sender, &tcp_frame(false, &payload, 0x18), gso(false, 1448));
    let segments = log.lock().unwrap().clone();
    assert_eq!(segments.iter().map(Vec::len).collect::<Vec<_>>(), vec![54 + 1448, 54 + 1448, 54 + 1104]);
    segments.iter().for_each(|s| {
        assert_valid(s);
    });
    send(&mut sender, &tcp_frame(false, &payload, 0x18), gso(false, 0));
    send(&mut sender, &tcp_frame(false, &payload, 0x18), gso(false, 8948));
    sender.publish(&a);
    let counters: std::collections::HashMap<_, _> = a.counters.snapshot().into_iter().collect();
    assert_eq!(counters["dropBadOffload"], 1);
    assert_eq!(counters["dropTooBig"], 1, "jumbo segments on a 1500-byte segment");
    assert_eq!(log.lock().unwrap().len(), 3, "nothing of the bad frames went out");
}

/// **hostile** input: random headers over random and mutated frames never panic, and whatever
/// `check` lets through, `finish` finishes (so a guest cannot make the switch drop a frame late).
#[test]
fn random_requests_and_frames_never_panic() {
    let mut rng = vring::mock::XorShift64::new(0x5eed_0ff1_0ad5);
    let valid = [tcp_frame(false, &[7; 3000], 0x18), tcp_frame(true, &[9; 2000], 0x19)];
    let mut finished = 0;
    for round in 0..20_000 {
        let mut frame = valid[round % 2].clone();
        match rng.below(4) {
            0 => frame.truncate(rng.below(frame.len() as u64 + 1) as usize),
            1 => {
                for _ in 0..rng.below(8) {
                    let at = rng.below(100) as usize % frame.len();
                    frame[at] = rng.next_u64() as u8;
                }
            }
            2 => frame = (0..rng.below(200)).map(|_| rng.next_u64() as u8).collect(),
            _ => {}
        }
        let word = |rng: &mut vring::mock::XorShift64| if rng.below(2) == 0 { rng.below(200) as u16 } else { rng.next_u64() as u16 };
        let hdr = VirtioNetHdr {
            flags: rng.below(4) as u8,
            gso_type: [0, 1, 3, 4, 5, 0x81, 0x84, 0xff][rng.below(8) as usize],
            hdr_len: word(&mut rng),
            gso_size: word(&mut rng),
            csum_start: word(&mut rng),
            csum_offset: word(&mut rng),
            num_buffers: 0,
        };
        let iov = [iovec(&frame)];
        // SAFETY: `frame` outlives the frame view.
        let view = unsafe { Frame::with_offload(&iov, hdr) };
        if check(&view, MAX_GSO_FRAME).is_ok() {
            let mut pieces = 0;
            Finisher::default().finish(&view, &hdr, |_| pieces += 1).expect("checked requests finish");
            assert!(pieces >= 1);
            finished += 1;
        }
    }
    assert!(finished > 2_000, "only {finished} requests got past check: the test exercises too little");
}
