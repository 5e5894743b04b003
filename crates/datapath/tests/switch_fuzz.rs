//! Deterministic fuzzing of the switch against hostile senders. Frames are built from templates
//! (IPv4 UDP and TCP, DHCP from 0.0.0.0, ARP, IPv6 with extension headers and neighbour discovery
//! with link-layer options, RARP, VLAN tags) with addresses taken from the ports' locks or made
//! up, then sometimes cut, mutated or replaced by noise, given random offload requests, split
//! into pieces that each end at a guard page, and forwarded between ports with MAC and IP locks.
//!
//! The switch must never panic nor read past a piece (the guard pages turn that into a crash),
//! and what reaches a port must obey the locks, the VLANs and what the port takes. The rules are
//! checked here from the frames' bytes, written out again rather than shared with `ip_guard`.
//!
//! Cases, seeds and the environment that sets their number: `vring::fuzz_cases`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};

use datapath::switch::{Accepts, Frame, FrameWriter, PortId, PortKind, Sender, Switch, SwitchPort, DEFAULT_AGING, MAX_GSO_FRAME};
use vring::fuzz_cases::run_cases;
use vring::mock::XorShift64;
use vring::net_hdr::{VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_ECN, VIRTIO_NET_HDR_GSO_TCPV4, VIRTIO_NET_HDR_GSO_TCPV6};
use vring::VirtioNetHdr;

const ETH_P_IP: u16 = 0x0800;
const ETH_P_ARP: u16 = 0x0806;
const ETH_P_RARP: u16 = 0x8035;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMPV6: u8 = 58;
const DHCP_SERVER_PORT: u16 = 67;

type Mac = [u8; 6];

/// One port of the fuzzed switch: its locks (if any), VLAN and the offloads it takes.
struct PortSpec {
    mac: Option<Mac>,
    ips: &'static [IpAddr],
    vlan: u16,
    takes: Accepts,
}

const A_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
const A_V6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1));
const A_LINK_LOCAL: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0x0200, 0, 0, 0xa));
const B_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

const PORTS: [PortSpec; 4] = [
    // Locked to a MAC, IPv4 and IPv6 addresses; takes finished frames only.
    PortSpec { mac: Some([2, 0, 0, 0, 0, 0xa]), ips: &[A_V4, A_V6, A_LINK_LOCAL], vlan: 0, takes: Accepts::NONE },
    // Locked to a MAC and an IPv4 address (so it sends no IPv6); takes every offload.
    PortSpec { mac: Some([2, 0, 0, 0, 0, 0xb]), ips: &[B_V4], vlan: 0, takes: Accepts::ALL },
    // Unlocked.
    PortSpec { mac: None, ips: &[], vlan: 0, takes: Accepts::NONE },
    PortSpec { mac: None, ips: &[], vlan: 7, takes: Accepts::ALL },
];

/// What a port was given.
struct Delivered {
    to: usize,
    from: PortId,
    bytes: Vec<u8>,
    offload: VirtioNetHdr,
}

struct Recorder {
    index: usize,
    takes: Accepts,
    log: Arc<Mutex<Vec<Delivered>>>,
}

impl FrameWriter for Recorder {
    fn takes_offloads(&self) -> Accepts {
        self.takes
    }

    fn write_frame(&mut self, frame: &Frame, from: PortId) -> std::io::Result<()> {
        let delivered = Delivered { to: self.index, from, bytes: frame.to_vec(), offload: *frame.offload() };
        self.log.lock().unwrap().push(delivered);
        Ok(())
    }
}

/// Frame pieces, each copied to the end of its own slot so that the byte after it is a guard page.
struct GuardedSlots {
    base: *mut u8,
    len: usize,
}

const PAGE: usize = 4096;
/// A whole GSO frame fits one slot, with room for what a mutation appends.
const SLOT: usize = 80 * 1024;
const MAX_PIECES: usize = 6;

impl GuardedSlots {
    fn new() -> GuardedSlots {
        let len = MAX_PIECES * (SLOT + PAGE) + PAGE;
        // SAFETY: an anonymous private mapping; nothing else refers to it.
        let base = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_NONE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0) };
        assert_ne!(base, libc::MAP_FAILED);
        let base = base as *mut u8;
        for slot in 0..MAX_PIECES {
            // SAFETY: inside the mapping; the page before every slot and the one after the last stay PROT_NONE.
            let rc = unsafe { libc::mprotect(base.add(PAGE + slot * (SLOT + PAGE)) as *mut libc::c_void, SLOT, libc::PROT_READ | libc::PROT_WRITE) };
            assert_eq!(rc, 0);
        }
        GuardedSlots { base, len }
    }

    /// Copies `pieces` into slots, each ending at a guard page; returns their iovecs.
    fn place(&mut self, pieces: &[&[u8]]) -> Vec<libc::iovec> {
        assert!(pieces.len() <= MAX_PIECES);
        let mut iov = Vec::new();
        for (slot, piece) in pieces.iter().enumerate() {
            assert!(piece.len() <= SLOT);
            // SAFETY: the slot's last `piece.len()` bytes are inside its read-write part.
            unsafe {
                let end = self.base.add(PAGE + slot * (SLOT + PAGE) + SLOT);
                let start = end.sub(piece.len());
                std::ptr::copy_nonoverlapping(piece.as_ptr(), start, piece.len());
                iov.push(libc::iovec { iov_base: start as *mut libc::c_void, iov_len: piece.len() });
            }
        }
        iov
    }
}

impl Drop for GuardedSlots {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, no longer referenced.
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.len) };
    }
}

fn pick<T: Copy>(rng: &mut XorShift64, items: &[T]) -> T {
    items[rng.below(items.len() as u64) as usize]
}

fn random_bytes(rng: &mut XorShift64, n: usize) -> Vec<u8> {
    (0..n).map(|_| rng.next_u64() as u8).collect()
}

/// A MAC from the locks, of a station or made up.
fn random_mac(rng: &mut XorShift64) -> Mac {
    match rng.below(6) {
        0 | 1 => PORTS[0].mac.unwrap(),
        2 => PORTS[1].mac.unwrap(),
        3 => [2, 0, 0, 0, 1, rng.below(4) as u8],
        4 => [0xff; 6],
        _ => random_bytes(rng, 6).try_into().unwrap(),
    }
}

fn random_ipv4(rng: &mut XorShift64) -> [u8; 4] {
    match rng.below(6) {
        0 | 1 => [10, 0, 0, 1],
        2 => [10, 0, 0, 2],
        3 => [0; 4],
        _ => [10, 0, 0, rng.below(8) as u8],
    }
}

fn random_ipv6(rng: &mut XorShift64) -> [u8; 16] {
    let address = match rng.below(6) {
        0 | 1 => A_V6,
        2 => A_LINK_LOCAL,
        3 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        4 => IpAddr::V6(Ipv4Addr::new(10, 0, 0, 2).to_ipv6_mapped()),
        _ => IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, rng.below(4) as u16)),
    };
    match address {
        IpAddr::V6(a) => a.octets(),
        IpAddr::V4(_) => unreachable!(),
    }
}

fn ethernet(dst: Mac, src: Mac, ether_type: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = [&dst[..], &src[..], &ether_type.to_be_bytes()].concat();
    frame.extend_from_slice(payload);
    frame
}

/// An IPv4 packet with a correct length and version, UDP or TCP inside.
fn ipv4(rng: &mut XorShift64, source: [u8; 4], protocol: u8, destination_port: u16, payload_len: usize) -> Vec<u8> {
    let l4_len = if protocol == IPPROTO_TCP { 20 } else { 8 };
    let total = 20 + l4_len + payload_len;
    let mut packet = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0x40, 0, 64, protocol, 0, 0];
    packet.extend_from_slice(&source);
    packet.extend_from_slice(&random_ipv4(rng));
    let any_port = rng.next_u64() as u16;
    let source_port = pick(rng, &[DHCP_SERVER_PORT, 68, any_port]);
    packet.extend_from_slice(&source_port.to_be_bytes());
    packet.extend_from_slice(&destination_port.to_be_bytes());
    if protocol == IPPROTO_TCP {
        packet.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
    } else {
        packet.extend_from_slice(&[((8 + payload_len) >> 8) as u8, (8 + payload_len) as u8, 0, 0]);
    }
    packet.extend(random_bytes(rng, payload_len));
    packet
}

fn arp(rng: &mut XorShift64, sender_mac: Mac, sender_ip: [u8; 4]) -> Vec<u8> {
    let mut packet = vec![0, 1, 8, 0, 6, 4, 0, pick(rng, &[1, 2])];
    packet.extend_from_slice(&sender_mac);
    packet.extend_from_slice(&sender_ip);
    packet.extend_from_slice(&random_mac(rng));
    packet.extend_from_slice(&random_ipv4(rng));
    packet
}

/// An IPv6 packet: up to three extension headers, then ICMPv6 (neighbour discovery and others,
/// with link-layer address options), TCP or UDP.
fn ipv6(rng: &mut XorShift64, source: [u8; 16], frame_source: Mac) -> Vec<u8> {
    let mut extensions = Vec::new();
    let chain: Vec<u8> = (0..rng.below(4)).map(|_| pick(rng, &[0, 43, 60, 44])).collect();
    let last = pick(rng, &[IPPROTO_ICMPV6, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP]);
    for (i, _) in chain.iter().enumerate() {
        let next = chain.get(i + 1).copied().unwrap_or(last);
        let units = rng.below(2) as u8;
        extensions.push(next);
        extensions.push(units);
        extensions.extend(random_bytes(rng, 6 + 8 * usize::from(units)));
    }
    let mut upper = Vec::new();
    if last == IPPROTO_ICMPV6 {
        let icmp_type = pick(rng, &[133, 134, 135, 136, 136, 131, 143, 128]);
        upper.extend_from_slice(&[icmp_type, 0, 0, 0, 0x60, 0, 0, 0]);
        upper.extend_from_slice(&random_ipv6(rng));
        for _ in 0..rng.below(3) {
            let option = pick(rng, &[1, 2, 5]);
            let mac = if rng.below(3) == 0 { random_mac(rng) } else { frame_source };
            match rng.below(8) {
                0 => upper.extend_from_slice(&[option, 0]), // invalid zero length
                1 => {
                    let n = 1 + rng.below(16) as usize;
                    upper.extend(random_bytes(rng, n));
                }
                _ => upper.extend([&[option, 1][..], &mac[..]].concat()),
            }
        }
    } else {
        // 547 → 546 (a DHCPv6 server), back, or other ports.
        let ports = pick(rng, &[[0x02, 0x23, 0x02, 0x22], [0x02, 0x22, 0x02, 0x23], [0, 80, 0x30, 0x39]]);
        upper.extend_from_slice(&ports);
        let n = 4 + rng.below(64) as usize;
        upper.extend(random_bytes(rng, n));
    }
    let first = chain.first().copied().unwrap_or(last);
    let payload_len = extensions.len() + upper.len();
    let mut packet = vec![0x60, 0, 0, 0, (payload_len >> 8) as u8, payload_len as u8, first, 255];
    packet.extend_from_slice(&source);
    packet.extend_from_slice(&random_ipv6(rng));
    packet.extend(extensions);
    packet.extend(upper);
    packet
}

/// A frame a guest might send, before mutation.
fn template(rng: &mut XorShift64) -> Vec<u8> {
    let src = random_mac(rng);
    let dst = if rng.below(2) == 0 { random_mac(rng) } else { pick(rng, &[[0xff; 6], [0x33, 0x33, 0, 0, 0, 1]]) };
    let (v4, v6) = (random_ipv4(rng), random_ipv6(rng));
    let (port, udp_len, tcp_len) = (rng.below(100) as u16, rng.below(1600) as usize, rng.below(20_000) as usize);
    let frame = match rng.below(8) {
        0 | 1 => ethernet(dst, src, ETH_P_IP, &ipv4(rng, v4, IPPROTO_UDP, port, udp_len)),
        2 => ethernet(dst, src, ETH_P_IP, &ipv4(rng, v4, IPPROTO_TCP, 80, tcp_len)),
        3 => ethernet(dst, src, ETH_P_IP, &ipv4(rng, [0; 4], IPPROTO_UDP, DHCP_SERVER_PORT, 300)),
        4 => {
            let sender_mac = if rng.below(4) == 0 { random_mac(rng) } else { src };
            ethernet(dst, src, ETH_P_ARP, &arp(rng, sender_mac, v4))
        }
        5 | 6 => ethernet(dst, src, ETH_P_IPV6, &ipv6(rng, v6, src)),
        _ => ethernet(dst, src, ETH_P_RARP, &arp(rng, src, [0; 4])),
    };
    if rng.below(8) != 0 {
        return frame;
    }
    // An 802.1Q tag in front of whatever it carries.
    [&frame[..12], &ETH_P_8021Q.to_be_bytes()[..], &[0, 5], &frame[12..]].concat()
}

/// The template, or a cut, mutated or extended copy of it, or noise.
fn hostile_frame(rng: &mut XorShift64) -> Vec<u8> {
    let mut frame = template(rng);
    match rng.below(8) {
        0 => frame.truncate(rng.below(frame.len() as u64 + 1) as usize),
        1 | 2 => {
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(frame.len().min(120) as u64) as usize;
                frame[at] = rng.next_u64() as u8;
            }
        }
        3 => {
            let n = rng.below(64) as usize;
            frame.extend(random_bytes(rng, n));
        }
        4 => {
            let n = rng.below(120) as usize;
            frame = random_bytes(rng, n);
        }
        _ => {}
    }
    frame
}

/// Offload requests: mostly none, else plausible ones for a TCP frame, else anything.
fn random_offload(rng: &mut XorShift64, frame: &[u8]) -> VirtioNetHdr {
    let mut hdr = VirtioNetHdr::default();
    match rng.below(4) {
        0 | 1 => {}
        2 => {
            let ipv6 = frame.get(12..14) == Some(&ETH_P_IPV6.to_be_bytes()[..]);
            let l4 = if ipv6 { 54 } else { 34 };
            hdr.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
            hdr.csum_start = l4;
            hdr.csum_offset = 16;
            if rng.below(2) == 0 {
                hdr.gso_type = if ipv6 { VIRTIO_NET_HDR_GSO_TCPV6 } else { VIRTIO_NET_HDR_GSO_TCPV4 } | pick(rng, &[0, VIRTIO_NET_HDR_GSO_ECN]);
                hdr.hdr_len = l4 + 20;
                let any = rng.below(2000) as u16;
                hdr.gso_size = pick(rng, &[48, 536, 1448, 1460, 8948, 9000, 65000, any]);
            }
        }
        _ => {
            let word = |rng: &mut XorShift64| if rng.below(2) == 0 { rng.below(200) as u16 } else { rng.next_u64() as u16 };
            hdr.flags = rng.below(4) as u8;
            hdr.gso_type = pick(rng, &[0, 1, 3, 4, 5, 0x81, 0x84, 0xff]);
            hdr.hdr_len = word(rng);
            hdr.gso_size = word(rng);
            hdr.csum_start = word(rng);
            hdr.csum_offset = word(rng);
        }
    }
    hdr
}

/// `frame` cut into up to MAX_PIECES pieces, small ones now and then (headers split anywhere).
fn split(rng: &mut XorShift64, frame: &[u8]) -> Vec<Vec<u8>> {
    let mut pieces = Vec::new();
    let mut rest = frame;
    while !rest.is_empty() && pieces.len() + 1 < MAX_PIECES && rng.below(3) != 0 {
        let longest = if rng.below(2) == 0 { 16 } else { 2000 };
        let cut = 1 + rng.below(rest.len().min(longest) as u64) as usize;
        pieces.push(rest[..cut].to_vec());
        rest = &rest[cut..];
    }
    pieces.push(rest.to_vec());
    pieces
}

fn ether_type(bytes: &[u8]) -> u16 {
    u16::from_be_bytes([bytes[12], bytes[13]])
}

fn ipv4_at(bytes: &[u8], at: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]))
}

fn ipv6_at(bytes: &[u8], at: usize) -> IpAddr {
    let octets: [u8; 16] = bytes[at..at + 16].try_into().unwrap();
    Ipv6Addr::from(octets).to_canonical()
}

/// The addresses a frame plainly claims: an IPv4 source (well-formed header), an ARP sender
/// (Ethernet/IPv4 ARP), an IPv6 source, and the target of a neighbour advertisement directly
/// after the IPv6 header.
fn plain_claims(bytes: &[u8]) -> Vec<IpAddr> {
    let mut claims = Vec::new();
    match ether_type(bytes) {
        ETH_P_IP if bytes.len() >= 34 && bytes[14] >> 4 == 4 && bytes[14] & 0xf >= 5 => claims.push(ipv4_at(bytes, 26)),
        ETH_P_ARP if bytes.len() >= 42 && bytes[14..20] == [0, 1, 8, 0, 6, 4] => claims.push(ipv4_at(bytes, 28)),
        ETH_P_IPV6 if bytes.len() >= 54 && bytes[14] >> 4 == 6 => {
            claims.push(ipv6_at(bytes, 22));
            if bytes[20] == IPPROTO_ICMPV6 && bytes.len() >= 78 && bytes[54] == 136 {
                claims.push(ipv6_at(bytes, 62));
            }
        }
        _ => {}
    }
    claims.retain(|a| !a.is_unspecified());
    claims
}

/// The rules for a frame from locked port `spec` that reached another port.
fn check_from_locked(spec: &PortSpec, bytes: &[u8]) {
    assert_eq!(bytes[6..12], spec.mac.unwrap(), "a locked port sent from another MAC");
    let claims = plain_claims(bytes);
    assert!(claims.iter().all(|a| spec.ips.contains(a)), "a locked port claimed {claims:?}");
    match ether_type(bytes) {
        ETH_P_IP => {
            assert!(bytes.len() >= 34 && bytes[14] >> 4 == 4 && bytes[14] & 0xf >= 5, "malformed IPv4 from a locked port");
            let udp = 14 + 4 * usize::from(bytes[14] & 0xf);
            let source_port = bytes.get(udp..udp + 2);
            let first_fragment = bytes[20] & 0x1f == 0 && bytes[21] == 0;
            let from_server_port = bytes[23] == IPPROTO_UDP && first_fragment && source_port == Some(&DHCP_SERVER_PORT.to_be_bytes()[..]);
            assert!(!from_server_port || ipv4_at(bytes, 26).is_unspecified(), "a DHCP server's message from a locked port");
            if ipv4_at(bytes, 26).is_unspecified() {
                assert_eq!(bytes[23], IPPROTO_UDP, "IPv4 from 0.0.0.0 that is not UDP");
                assert_eq!(bytes[udp + 2..udp + 4], DHCP_SERVER_PORT.to_be_bytes(), "IPv4 from 0.0.0.0 not to a DHCP server");
            }
        }
        ETH_P_ARP => {
            assert!(bytes.len() >= 42 && bytes[14..20] == [0, 1, 8, 0, 6, 4], "malformed ARP from a locked port");
            assert_eq!(bytes[22..28], bytes[6..12], "ARP from a locked port naming another MAC");
        }
        ETH_P_IPV6 => {
            assert!(bytes.len() >= 54 && bytes[14] >> 4 == 6, "malformed IPv6 from a locked port");
            assert!(!(bytes[20] == IPPROTO_ICMPV6 && bytes.get(54) == Some(&134)), "a router advertisement from a locked port");
            assert!(!(bytes[20] == IPPROTO_UDP && bytes.get(54..56) == Some(&[0x02, 0x23][..])), "a DHCPv6 server's message from a locked port");
            let neighbour_discovery = bytes[20] == IPPROTO_ICMPV6 && bytes.len() >= 78 && matches!(bytes[54], 135 | 136);
            if neighbour_discovery {
                // Its link-layer address options (source, target) name the frame's own MAC.
                let mut at = 78;
                while at + 2 <= bytes.len() {
                    let (kind, units) = (bytes[at], usize::from(bytes[at + 1]));
                    assert!(units > 0, "a zero-length NDP option from a locked port");
                    if kind == 1 || kind == 2 {
                        let option = bytes.get(at + 2..at + 8).expect("a link-layer address option cut short");
                        assert_eq!((units, option), (1, &bytes[6..12]), "NDP naming another MAC from a locked port");
                    }
                    at += 8 * units;
                }
            }
        }
        ETH_P_RARP => {}
        other => panic!("EtherType {other:#06x} from a locked port"),
    }
}

/// The rules every frame that reached port `to` from port `from` obeys.
fn check_delivered(delivered: &Delivered, from: usize, max_frame: usize) {
    let (to, bytes) = (delivered.to, &delivered.bytes);
    assert_ne!(to, from, "a frame went back to its sender");
    assert_eq!(PORTS[to].vlan, PORTS[from].vlan, "a frame crossed VLANs");
    assert!(bytes.len() >= 14, "a runt was forwarded");
    let offloaded = delivered.offload != VirtioNetHdr::default();
    assert!(!offloaded || PORTS[to].takes.takes(&delivered.offload), "port {to} got offload requests it does not take: {:?}", delivered.offload);
    let gso = delivered.offload.gso_type != 0;
    assert!(bytes.len() <= if gso { MAX_GSO_FRAME } else { max_frame }, "a {}-byte frame reached port {to} (max {max_frame})", bytes.len());
    if PORTS[from].mac.is_some() {
        check_from_locked(&PORTS[from], bytes);
    }
    for (owner, spec) in PORTS.iter().enumerate().filter(|(owner, _)| *owner != from) {
        assert!(spec.mac.map_or(true, |mac| bytes[6..12] != mac), "port {from} sent from port {owner}'s locked MAC");
        let claims = plain_claims(bytes);
        assert!(!claims.iter().any(|a| spec.ips.contains(a)), "port {from} claimed port {owner}'s address: {claims:?} in {:02x?}", &bytes[..bytes.len().min(96)]);
    }
}

#[test]
fn hostile_frames_never_panic_or_escape_their_buffers_and_obey_the_locks() {
    let mut slots = GuardedSlots::new();
    let (mut delivered, mut from_locked) = (0u64, 0u64);
    let cases = run_cases("hostile_switch_frames", 0x5317c4, |rng, _| {
        let mtu = pick(rng, &[576u16, 1500, 9000]);
        let max_frame = usize::from(mtu) + 18;
        let switch = Switch::new(mtu, DEFAULT_AGING);
        let log = Arc::new(Mutex::new(Vec::new()));
        let ports: Vec<Arc<SwitchPort>> = PORTS
            .iter()
            .enumerate()
            .map(|(index, spec)| {
                let recorder = Recorder { index, takes: spec.takes, log: log.clone() };
                let port = switch.add_writer_port(&format!("p{index}"), PortKind::VhostUser, spec.vlan, Box::new(recorder));
                if let Some(mac) = spec.mac {
                    switch.lock_mac(port.id, mac);
                    switch.lock_ips(port.id, spec.ips);
                }
                port
            })
            .collect();
        let mut senders: Vec<Sender> = PORTS.iter().map(|_| Sender::default()).collect();
        for _ in 0..1 + rng.below(24) {
            let from = rng.below(PORTS.len() as u64) as usize;
            let bytes = hostile_frame(rng);
            let offload = random_offload(rng, &bytes);
            let pieces = split(rng, &bytes);
            let iov = slots.place(&pieces.iter().map(Vec::as_slice).collect::<Vec<_>>());
            // SAFETY: the iovecs point into `slots`, which stays mapped and unchanged while `frame` is used.
            let frame = unsafe { Frame::with_offload(&iov, offload) };
            switch.forward(&ports[from], &frame, &mut senders[from]);
            if rng.below(4) == 0 {
                senders[from].publish(&ports[from]);
            }
            for got in log.lock().unwrap().drain(..) {
                assert_eq!(got.from, ports[from].id);
                check_delivered(&got, from, max_frame);
                delivered += 1;
                from_locked += u64::from(PORTS[from].mac.is_some());
            }
        }
        for (sender, port) in senders.iter_mut().zip(&ports) {
            sender.publish(port);
        }
    });
    eprintln!("hostile_switch_frames: {delivered} frames delivered, {from_locked} of them from locked ports");
    // Too few frames getting through would mean the templates test the drop paths only.
    assert!(delivered > cases && from_locked > cases / 4, "{delivered} frames delivered ({from_locked} from locked ports) in {cases} cases");
}
