//! IP port security (`--port NAME=PATH,mac=MAC,ip=ADDR…`, IPv4 and IPv6 addresses): which
//! addresses a frame claims as its sender's, checked against `AddressLocks<IpKey>` as a frame's
//! source MAC is against the MAC locks. ARP and IPv6 neighbour advertisements are what matter most:
//! one claiming another guest's address is how a station takes that guest's traffic.
//!
//! A port locked to IP addresses sends:
//! - IPv4 from one of them, or from 0.0.0.0 to UDP port 67 (a DHCP client without an address);
//! - ARP (Ethernet/IPv4) for one of them, or for 0.0.0.0 (a probe), with its own frame's source
//!   MAC as the sender hardware address;
//! - IPv6 from one of them, and from :: only ICMPv6 (duplicate address detection, router
//!   solicitations, MLD reports: what a station sends before it has an address); a neighbour
//!   solicitation or advertisement only with its own MAC in its link-layer address options, and
//!   an advertisement only for one of its addresses;
//! - RARP (a migrated guest's announcement, which claims no address);
//! - nothing else (no VLAN-tagged frame, whose inner packet would go unchecked);
//! - and, from its own addresses too, nothing only a server or router sends: no DHCP server's
//!   message (UDP from port 67), no DHCPv6 server's or relay's (UDP from port 547), no IPv6
//!   router advertisement. A guest that answered its neighbours' DHCP or router solicitations
//!   would set their addresses, gateway and DNS server; a router's port cannot be locked to its
//!   addresses anyway, since it forwards packets from others.
//!
//! Any other port may send anything but IPv4, IPv6 or ARP from an address locked to a port or
//! reserved, or a neighbour advertisement for one.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::frame::{EthernetHeader, Frame, ETH_HLEN, ETH_P_ARP, ETH_P_IP, ETH_P_IPV6, IPPROTO_ICMPV6, IPPROTO_UDP, IPV6_HLEN};
use super::uplink::DHCP_SERVER_PORT;
use crate::rarp::ETH_P_RARP;

/// The UDP port DHCPv6 servers and relays send from (RFC 8415 §7.2).
const DHCPV6_SERVER_PORT: u16 = 547;
/// The IPv6 fragment header (RFC 8200 §4.5), where `Frame::ipv6_upper_layer` stops.
const IPV6_FRAGMENT: u8 = 44;

/// ICMPv6 types (RFC 4861, RFC 2710, RFC 3810).
const ICMPV6_MLD_QUERY: u8 = 130;
const ICMPV6_MLD_REPORT: u8 = 131;
const ICMPV6_MLD_DONE: u8 = 132;
const ICMPV6_ROUTER_SOLICITATION: u8 = 133;
const ICMPV6_ROUTER_ADVERTISEMENT: u8 = 134;
const ICMPV6_NEIGHBOUR_SOLICITATION: u8 = 135;
const ICMPV6_NEIGHBOUR_ADVERTISEMENT: u8 = 136;
const ICMPV6_MLD2_REPORT: u8 = 143;
/// NDP options carrying a link-layer address (RFC 4861 §4.6.1): source, target.
const NDP_SOURCE_LINK_LAYER: u8 = 1;
const NDP_TARGET_LINK_LAYER: u8 = 2;

/// An IP address as the locks hold it: IPv6, and IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d), in one
/// `u128`. Why: a locked port's every frame compares its source with the last one allowed; as a
/// `u128` that compare stays in registers, where an `IpAddr` (a tag byte, then the address) went
/// through memory at odd offsets and stalled store forwarding (~4% of the worker at 64B).
/// An IPv4-mapped source in an IPv6 packet thus counts as that IPv4 address (receivers drop such
/// packets anyway).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpKey(u128);

impl From<Ipv6Addr> for IpKey {
    fn from(address: Ipv6Addr) -> IpKey {
        IpKey(address.to_bits())
    }
}

impl From<Ipv4Addr> for IpKey {
    fn from(address: Ipv4Addr) -> IpKey {
        address.to_ipv6_mapped().into()
    }
}

impl From<IpAddr> for IpKey {
    fn from(address: IpAddr) -> IpKey {
        match address {
            IpAddr::V4(a) => a.into(),
            IpAddr::V6(a) => a.into(),
        }
    }
}

impl From<IpKey> for IpAddr {
    fn from(key: IpKey) -> IpAddr {
        Ipv6Addr::from_bits(key.0).to_canonical()
    }
}

/// The sender a frame claims to be, as far as IP port security is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Sent from `source` (an IPv4 or IPv6 packet's source, an ARP packet's sender), and for an
    /// IPv6 neighbour advertisement also claiming `advertised`. `other_mac`: a link-layer address
    /// in the packet (ARP's sender hardware address, an NDP link-layer address option) is not the
    /// frame's source MAC. `serves`: a DHCP or DHCPv6 server's message or a router advertisement.
    /// A locked port may send neither; from any other port the addresses are still claimed.
    Addresses { source: IpKey, advertised: Option<IpKey>, other_mac: bool, serves: bool },
    /// What a station without an address sends: an ARP probe, a DHCP client's packet from
    /// 0.0.0.0, ICMPv6 from ::, a RARP announcement.
    Unaddressed,
    /// Anything else: other EtherTypes (VLAN tags), malformed IPv4, IPv6 or ARP, IPv4 from 0.0.0.0
    /// to anything but a DHCP server, IPv6 from :: that is neither duplicate address detection, a
    /// router solicitation nor MLD.
    Other,
}

impl Claim {
    /// What the frame (Ethernet header `eth`) claims. Inlined with the IPv4 case, which a locked
    /// port's every data frame takes: the claim then stays in registers.
    #[inline(always)]
    pub fn of(eth: &EthernetHeader, frame: &Frame) -> Claim {
        match eth.ether_type {
            ETH_P_IP => ipv4_claim(frame),
            ETH_P_ARP => arp_claim(eth, frame),
            ETH_P_IPV6 => ipv6_claim(eth, frame),
            ETH_P_RARP => Claim::Unaddressed,
            _ => Claim::Other,
        }
    }

    fn from(source: impl Into<IpKey>) -> Claim {
        Claim::Addresses { source: source.into(), advertised: None, other_mac: false, serves: false }
    }
}

#[inline(always)]
fn ipv4_claim(frame: &Frame) -> Claim {
    let Some(header) = frame.prefix::<{ ETH_HLEN + 20 }>() else {
        return Claim::Other;
    };
    let ip = &header[ETH_HLEN..];
    if ip[0] >> 4 != 4 || ip[0] & 0x0f < 5 {
        return Claim::Other;
    }
    match Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]) {
        source if !source.is_unspecified() => {
            // Only a first fragment (offset 0) starts with the UDP header; a later one's first
            // bytes are payload.
            let first_fragment = ip[6] & 0x1f == 0 && ip[7] == 0;
            let serves = ip[9] == IPPROTO_UDP && first_fragment && ipv4_udp_source_port(frame, ip[0]) == Some(DHCP_SERVER_PORT);
            Claim::Addresses { source: source.into(), advertised: None, other_mac: false, serves }
        }
        _ if matches!(frame.ipv4_udp_ports(), Some((_, DHCP_SERVER_PORT))) => Claim::Unaddressed,
        _ => Claim::Other,
    }
}

/// The UDP source port of an IPv4 packet whose first byte (version, header length) is
/// `version_ihl`. Without IP options (nearly always) a read from the first segment, as for the
/// header itself: a locked port's every UDP frame comes here.
#[inline(always)]
fn ipv4_udp_source_port(frame: &Frame, version_ihl: u8) -> Option<u16> {
    let udp = ETH_HLEN + usize::from(version_ihl & 0x0f) * 4;
    let port = match udp {
        34 => frame.prefix::<36>().map(|h| [h[34], h[35]]),
        _ => frame.read::<2>(udp),
    };
    port.map(u16::from_be_bytes)
}

/// ARP for Ethernet and IPv4 (RFC 826): htype 1, ptype 0x0800, hlen 6, plen 4, then op, sha,
/// spa, tha, tpa.
#[inline(never)]
fn arp_claim(eth: &EthernetHeader, frame: &Frame) -> Claim {
    let Some(header) = frame.prefix::<{ ETH_HLEN + 28 }>() else {
        return Claim::Other;
    };
    let arp = &header[ETH_HLEN..];
    if arp[0..6] != [0, 1, 0x08, 0x00, 6, 4] {
        return Claim::Other;
    }
    match Ipv4Addr::new(arp[14], arp[15], arp[16], arp[17]) {
        sender if arp[8..14] != eth.src => Claim::Addresses { source: sender.into(), advertised: None, other_mac: true, serves: false },
        sender if sender.is_unspecified() => Claim::Unaddressed,
        sender => Claim::from(sender),
    }
}

/// IPv6 (RFC 8200): the source, and for neighbour discovery (RFC 4861) the advertised target and
/// the link-layer address options.
#[inline(never)]
fn ipv6_claim(eth: &EthernetHeader, frame: &Frame) -> Claim {
    let Some(header) = frame.prefix::<{ ETH_HLEN + IPV6_HLEN }>() else {
        return Claim::Other;
    };
    let ip = &header[ETH_HLEN..];
    if ip[0] >> 4 != 6 {
        return Claim::Other;
    }
    let source = Ipv6Addr::from(address_bytes(&ip[8..24]));
    let upper = frame.ipv6_upper_layer(ETH_HLEN);
    let icmp = match upper {
        Some((IPPROTO_ICMPV6, at)) => Some(at),
        _ => None,
    };
    let icmp_type = icmp.and_then(|at| frame.read::<1>(at)).map(|[t]| t);
    // A neighbour advertisement from :: is invalid but Linux still takes it (RFC 4861 §7.1.2 does
    // not check the source): it claims its target below like any other.
    if source.is_unspecified() && icmp_type != Some(ICMPV6_NEIGHBOUR_ADVERTISEMENT) {
        return match (icmp, icmp_type) {
            // Duplicate address detection, held to the same link-layer options rule as any
            // solicitation (a valid one has none).
            (Some(at), Some(ICMPV6_NEIGHBOUR_SOLICITATION)) if !link_layer_options_name(frame, at + 24, eth.src) => Claim::Other,
            (_, Some(
                ICMPV6_NEIGHBOUR_SOLICITATION
                | ICMPV6_ROUTER_SOLICITATION
                | ICMPV6_MLD_QUERY
                | ICMPV6_MLD_REPORT
                | ICMPV6_MLD_DONE
                | ICMPV6_MLD2_REPORT,
            )) => Claim::Unaddressed,
            _ => Claim::Other,
        };
    }
    let (Some(at), Some(ICMPV6_NEIGHBOUR_SOLICITATION | ICMPV6_NEIGHBOUR_ADVERTISEMENT)) = (icmp, icmp_type) else {
        let serves = ipv6_serves(frame, upper, icmp_type);
        return Claim::Addresses { source: source.into(), advertised: None, other_mac: false, serves };
    };
    // type, code, checksum, reserved/flags (8 bytes), target (16), options.
    let Some(target) = frame.read::<16>(at + 8) else {
        // Cut short: receivers drop it as neighbour discovery, but it is still sent from `source`.
        return Claim::from(source);
    };
    Claim::Addresses {
        source: source.into(),
        advertised: (icmp_type == Some(ICMPV6_NEIGHBOUR_ADVERTISEMENT)).then(|| Ipv6Addr::from(target).into()),
        other_mac: !link_layer_options_name(frame, at + 24, eth.src),
        serves: false,
    }
}

/// Whether an IPv6 packet whose upper-layer header is `upper` (`Frame::ipv6_upper_layer`), and
/// ICMPv6 type `icmp_type` if it is ICMPv6, is a DHCPv6 server's or relay's message or a router
/// advertisement.
fn ipv6_serves(frame: &Frame, upper: Option<(u8, usize)>, icmp_type: Option<u8>) -> bool {
    let from_dhcpv6_server = |udp: usize| frame.read::<2>(udp) == Some(DHCPV6_SERVER_PORT.to_be_bytes());
    match upper {
        Some((IPPROTO_UDP, at)) => from_dhcpv6_server(at),
        // A first fragment (offset 0) of UDP: receivers reassemble DHCPv6 (only neighbour
        // discovery and router advertisements in fragments are dropped, RFC 6980).
        Some((IPV6_FRAGMENT, at)) => match frame.read::<4>(at) {
            Some([IPPROTO_UDP, _, high, low]) if u16::from_be_bytes([high, low]) >> 3 == 0 => from_dhcpv6_server(at + 8),
            _ => false,
        },
        _ => icmp_type == Some(ICMPV6_ROUTER_ADVERTISEMENT),
    }
}

/// Whether every link-layer address option from `at` to the frame's end is `mac` (RFC 4861 §4.6:
/// options of 8-byte units; one of length 0, or cut short, makes the packet invalid, and it counts
/// as naming another MAC).
fn link_layer_options_name(frame: &Frame, mut at: usize, mac: [u8; 6]) -> bool {
    while at < frame.len() {
        let Some([kind, length]) = frame.read::<2>(at) else {
            return false;
        };
        if length == 0 {
            return false;
        }
        if kind == NDP_SOURCE_LINK_LAYER || kind == NDP_TARGET_LINK_LAYER {
            match frame.read::<8>(at) {
                Some(option) if length == 1 && option[2..] == mac => {}
                _ => return false,
            }
        }
        at += usize::from(length) * 8;
    }
    true
}

fn address_bytes(bytes: &[u8]) -> [u8; 16] {
    let mut address = [0u8; 16];
    address.copy_from_slice(bytes);
    address
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use super::super::tests::{count, drops_spoofed, mac, port, BROADCAST};
    use super::super::{Sender, Switch, DEFAULT_AGING};
    use super::*;
    use crate::switch::Mac;

    const OWN: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const OTHER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const OWN6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
    const OTHER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
    const SOLICITED_NODE: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 1);

    fn ips(addresses: &[Ipv4Addr]) -> Vec<IpAddr> {
        addresses.iter().map(|&a| a.into()).collect()
    }

    fn ethernet(src: Mac, ether_type: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = [BROADCAST.as_slice(), &src, &ether_type.to_be_bytes(), payload].concat();
        f.resize(f.len().max(60), 0);
        f
    }

    fn arp(src: Mac, sender_mac: Mac, sender_ip: Ipv4Addr) -> Vec<u8> {
        let target_ip = Ipv4Addr::new(10, 0, 0, 9);
        let body = [&[0, 1, 0x08, 0x00, 6, 4, 0, 2][..], &sender_mac, &sender_ip.octets(), &[0; 6], &target_ip.octets()].concat();
        ethernet(src, ETH_P_ARP, &body)
    }

    /// An IPv4 header of `header_words` 32-bit words, then a UDP header to `udp_port`.
    fn ipv4(src: Mac, source: Ipv4Addr, header_words: u8, udp_port: u16) -> Vec<u8> {
        let mut ip = vec![0u8; usize::from(header_words) * 4];
        ip[0] = 0x40 | header_words;
        ip[9] = 17; // UDP
        ip[12..16].copy_from_slice(&source.octets());
        ip[16..20].copy_from_slice(&Ipv4Addr::BROADCAST.octets());
        let udp = [&68u16.to_be_bytes()[..], &udp_port.to_be_bytes(), &[0, 8, 0, 0]].concat();
        ethernet(src, ETH_P_IP, &[ip, udp].concat())
    }

    /// An IPv6 packet from `source` whose payload follows `extensions` (each a next-header value
    /// and 8 bytes of an extension header) and is `payload` with next header `protocol`.
    fn ipv6(src: Mac, source: Ipv6Addr, extensions: &[u8], protocol: u8, payload: &[u8]) -> Vec<u8> {
        let mut ip = vec![0u8; IPV6_HLEN];
        ip[0] = 0x60;
        ip[6] = extensions.first().copied().unwrap_or(protocol);
        ip[7] = 255;
        ip[8..24].copy_from_slice(&source.octets());
        ip[24..40].copy_from_slice(&SOLICITED_NODE.octets());
        for (i, _) in extensions.iter().enumerate() {
            let next = extensions.get(i + 1).copied().unwrap_or(protocol);
            ip.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]); // PadN over the rest
        }
        ip.extend_from_slice(payload);
        ethernet(src, ETH_P_IPV6, &ip)
    }

    /// A neighbour solicitation (135) or advertisement (136) for `target` with link-layer address
    /// options `options` (kind, MAC).
    fn ndp(kind: u8, target: Ipv6Addr, options: &[(u8, Mac)]) -> Vec<u8> {
        let mut icmp = vec![kind, 0, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&target.octets());
        for (option, mac) in options {
            icmp.extend_from_slice(&[*option, 1]);
            icmp.extend_from_slice(mac);
        }
        icmp
    }

    /// `bytes` as a frame in pieces of `piece` bytes (headers split across guest buffers).
    fn claim_in_pieces(bytes: &[u8], piece: usize) -> Claim {
        let iov: Vec<libc::iovec> =
            bytes.chunks(piece).map(|c| libc::iovec { iov_base: c.as_ptr() as *mut libc::c_void, iov_len: c.len() }).collect();
        // SAFETY: every piece points into `bytes`, which outlives the frame.
        let frame = unsafe { Frame::new(&iov) };
        Claim::of(&frame.ethernet().expect("an Ethernet header"), &frame)
    }

    fn claim(bytes: &[u8]) -> Claim {
        claim_in_pieces(bytes, bytes.len())
    }

    #[test]
    fn what_a_frame_claims() {
        let m = mac(1);
        assert_eq!(claim(&ipv4(m, OWN, 5, 53)), Claim::from(OWN));
        assert_eq!(claim(&ipv4(m, Ipv4Addr::UNSPECIFIED, 5, DHCP_SERVER_PORT)), Claim::Unaddressed, "a DHCP client");
        assert_eq!(claim(&ipv4(m, Ipv4Addr::UNSPECIFIED, 7, DHCP_SERVER_PORT)), Claim::Unaddressed, "IPv4 options are skipped");
        assert_eq!(claim(&ipv4(m, Ipv4Addr::UNSPECIFIED, 5, 53)), Claim::Other, "0.0.0.0 to anything but DHCP");
        assert_eq!(claim(&arp(m, m, OWN)), Claim::from(OWN));
        assert_eq!(claim(&arp(m, m, Ipv4Addr::UNSPECIFIED)), Claim::Unaddressed, "an ARP probe");
        assert_eq!(claim(&arp(m, mac(2), OWN)), Claim::Addresses { source: OWN.into(), advertised: None, other_mac: true, serves: false });
        assert_eq!(claim(&ethernet(m, ETH_P_RARP, &[0; 28])), Claim::Unaddressed);
        assert_eq!(claim(&ethernet(m, 0x8100, &[0; 40])), Claim::Other, "a VLAN tag");
    }

    #[test]
    fn what_an_ipv6_frame_claims() {
        let m = mac(1);
        let unspecified = Ipv6Addr::UNSPECIFIED;
        assert_eq!(claim(&ipv6(m, OWN6, &[], 17, &[0; 8])), Claim::from(OWN6), "UDP");
        assert_eq!(claim(&ipv6(m, OWN6, &[0, 60], 6, &[0; 20])), Claim::from(OWN6), "TCP behind extension headers");
        let solicitation = ndp(135, OTHER6, &[(1, m)]);
        assert_eq!(claim(&ipv6(m, OWN6, &[], 58, &solicitation)), Claim::from(OWN6), "asking for another's address claims none");
        let advertisement = ndp(136, OWN6, &[(2, m)]);
        let advertises = |other_mac| Claim::Addresses { source: OWN6.into(), advertised: Some(OWN6.into()), other_mac, serves: false };
        assert_eq!(claim(&ipv6(m, OWN6, &[], 58, &advertisement)), advertises(false));
        assert_eq!(claim(&ipv6(m, OWN6, &[60], 58, &advertisement)), advertises(false), "behind destination options");
        assert_eq!(claim(&ipv6(m, OWN6, &[], 58, &ndp(136, OWN6, &[(2, mac(2))]))), advertises(true), "another MAC");
        assert_eq!(claim(&ipv6(m, OWN6, &[], 58, &ndp(136, OWN6, &[]))), advertises(false), "no option");
        let solicitation_from_other_mac = ipv6(m, OWN6, &[], 58, &ndp(135, OTHER6, &[(1, mac(2))]));
        assert_eq!(claim(&solicitation_from_other_mac), Claim::Addresses { source: OWN6.into(), advertised: None, other_mac: true, serves: false });
        let mut zero_length_option = ndp(136, OWN6, &[(2, m)]);
        zero_length_option[25] = 0;
        assert_eq!(claim(&ipv6(m, OWN6, &[], 58, &zero_length_option)), advertises(true), "an invalid option");
        // Before it has an address: duplicate address detection, router solicitation, MLD.
        assert_eq!(claim(&ipv6(m, unspecified, &[], 58, &ndp(135, OWN6, &[]))), Claim::Unaddressed);
        assert_eq!(claim(&ipv6(m, unspecified, &[], 58, &ndp(135, OWN6, &[(2, mac(2))]))), Claim::Other, "DAD naming another MAC");
        assert_eq!(claim(&ipv6(m, unspecified, &[], 58, &[133, 0, 0, 0, 0, 0, 0, 0])), Claim::Unaddressed);
        assert_eq!(claim(&ipv6(m, unspecified, &[0], 58, &[143, 0, 0, 0, 0, 0, 0, 0])), Claim::Unaddressed);
        let advertised_from_unspecified = Claim::Addresses { source: unspecified.into(), advertised: Some(OWN6.into()), other_mac: false, serves: false };
        assert_eq!(claim(&ipv6(m, unspecified, &[], 58, &advertisement)), advertised_from_unspecified, "advertising from ::");
        assert_eq!(claim(&ipv6(m, unspecified, &[], 17, &[0; 8])), Claim::Other, "UDP from ::");
        assert_eq!(claim(&ipv6(m, unspecified, &[44], 58, &[135; 24])), Claim::Other, "a fragment from ::");
    }

    #[test]
    fn malformed_ipv4_and_arp_claim_nothing() {
        let m = mac(1);
        let mut not_ethernet_arp = arp(m, m, OWN);
        not_ethernet_arp[15] = 6; // htype IEEE 802
        assert_eq!(claim(&not_ethernet_arp), Claim::Other);
        let mut version_6 = ipv4(m, OWN, 5, 53);
        version_6[14] = 0x65;
        assert_eq!(claim(&version_6), Claim::Other);
        let mut version_4 = ipv6(m, OWN6, &[], 17, &[0; 8]);
        version_4[14] = 0x45;
        assert_eq!(claim(&version_4), Claim::Other);
        assert_eq!(claim(&ipv6(m, OWN6, &[], 58, &ndp(136, OWN6, &[]))[..70]), Claim::from(OWN6), "target cut short: still from OWN6");
        let mut short_header = ipv4(m, OWN, 5, 53);
        short_header[14] = 0x44;
        assert_eq!(claim(&short_header), Claim::Other);
        assert_eq!(claim(&arp(m, m, OWN)[..30]), Claim::Other, "cut short");
        assert_eq!(claim(&ipv4(m, OWN, 5, 53)[..20]), Claim::Other, "cut short");
    }

    #[test]
    fn any_bytes_after_an_ipv6_or_arp_header_are_read_within_the_frame() {
        // Hostile input: extension header chains and NDP options of any lengths, frames cut anywhere.
        let mut rng = vring::mock::XorShift64::new(0x1b6_6a4d);
        for _ in 0..20_000 {
            let len = 14 + rng.below(200) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            let ether_type: u16 = [ETH_P_IPV6, ETH_P_ARP, ETH_P_IP][rng.below(3) as usize];
            bytes[12..14].copy_from_slice(&ether_type.to_be_bytes());
            if len > 20 && ether_type == ETH_P_IPV6 {
                bytes[14] = 0x60;
                bytes[20] = [0, 43, 60, 58][rng.below(4) as usize];
            }
            let piece = 1 + rng.below(len as u64) as usize;
            let _ = claim_in_pieces(&bytes, piece);
        }
    }

    #[test]
    fn headers_split_across_buffers_are_read_whole() {
        let m = mac(1);
        for piece in [1, 7, 15, 17] {
            assert_eq!(claim_in_pieces(&ipv4(m, OWN, 5, 53), piece), Claim::from(OWN));
            assert_eq!(claim_in_pieces(&ipv4(m, Ipv4Addr::UNSPECIFIED, 6, DHCP_SERVER_PORT), piece), Claim::Unaddressed);
            assert_eq!(claim_in_pieces(&arp(m, mac(2), OWN), piece), Claim::Addresses { source: OWN.into(), advertised: None, other_mac: true, serves: false });
            let advertisement = ipv6(m, OWN6, &[60], 58, &ndp(136, OWN6, &[(2, mac(2))]));
            let advertises = Claim::Addresses { source: OWN6.into(), advertised: Some(OWN6.into()), other_mac: true, serves: false };
            assert_eq!(claim_in_pieces(&advertisement, piece), advertises);
        }
    }

    /// A DHCP server's reply (UDP from port 67 to 68).
    fn dhcp_reply(src: Mac, source: Ipv4Addr, header_words: u8) -> Vec<u8> {
        let mut frame = ipv4(src, source, header_words, 68);
        let udp = ETH_HLEN + usize::from(header_words) * 4;
        frame[udp..udp + 2].copy_from_slice(&DHCP_SERVER_PORT.to_be_bytes());
        frame
    }
    /// UDP from port 547 to 546 (a DHCPv6 server's reply), or back (a client's request).
    const DHCPV6_REPLY: [u8; 8] = [0x02, 0x23, 0x02, 0x22, 0, 8, 0, 0];
    const DHCPV6_REQUEST: [u8; 8] = [0x02, 0x22, 0x02, 0x23, 0, 8, 0, 0];
    /// ICMPv6 router advertisement: type, code, checksum, hop limit, flags, lifetime, timers.
    const ROUTER_ADVERTISEMENT: [u8; 16] = [134, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0];

    #[test]
    fn what_only_a_server_or_router_sends_is_marked() {
        let m = mac(1);
        let serving = |source: IpKey| Claim::Addresses { source, advertised: None, other_mac: false, serves: true };
        assert_eq!(claim(&dhcp_reply(m, OWN, 5)), serving(OWN.into()), "a DHCP server's reply");
        assert_eq!(claim(&dhcp_reply(m, OWN, 7)), serving(OWN.into()), "behind IPv4 options");
        assert_eq!(claim(&ipv4(m, OWN, 5, DHCP_SERVER_PORT)), Claim::from(OWN), "a client's request to a server");
        assert_eq!(claim(&ipv6(m, OWN6, &[], 17, &DHCPV6_REPLY)), serving(OWN6.into()), "a DHCPv6 server's reply");
        assert_eq!(claim(&ipv6(m, OWN6, &[60], 17, &DHCPV6_REPLY)), serving(OWN6.into()), "behind an extension header");
        assert_eq!(claim(&ipv6(m, OWN6, &[], 17, &DHCPV6_REQUEST)), Claim::from(OWN6), "a DHCPv6 client's request");
        assert_eq!(claim(&ipv6(m, OWN6, &[], 58, &ROUTER_ADVERTISEMENT)), serving(OWN6.into()), "a router advertisement");
        assert_eq!(claim(&ipv6(m, OWN6, &[], 58, &[133, 0, 0, 0, 0, 0, 0, 0])), Claim::from(OWN6), "a router solicitation");
    }

    #[test]
    fn a_server_message_is_seen_in_a_first_fragment_and_not_in_a_later_one() {
        let m = mac(1);
        let serving = |source: IpKey| Claim::Addresses { source, advertised: None, other_mac: false, serves: true };
        let mut first = dhcp_reply(m, OWN, 5);
        first[20] = 0x20; // more fragments, offset 0
        assert_eq!(claim(&first), serving(OWN.into()), "a DHCP reply's first fragment");
        let mut later = dhcp_reply(m, OWN, 5);
        later[21] = 0x10; // offset 16 × 8: the bytes after the header are payload
        assert_eq!(claim(&later), Claim::from(OWN), "payload that reads as port 67");
        let fragment = |offset: u16| [&[17, 0][..], &(offset << 3 | 1).to_be_bytes(), &[0, 0, 0, 7], &DHCPV6_REPLY].concat();
        assert_eq!(claim(&ipv6(m, OWN6, &[], 44, &fragment(0))), serving(OWN6.into()), "a DHCPv6 reply's first fragment");
        assert_eq!(claim(&ipv6(m, OWN6, &[], 44, &fragment(100))), Claim::from(OWN6), "a later fragment");
    }

    #[test]
    fn a_port_locked_to_ip_addresses_sends_ip_and_arp_only_from_them() {
        let sw = Switch::new(1500, DEFAULT_AGING);
        let (a, _) = port(&sw, "a", 0);
        let (_b, b_log) = port(&sw, "b", 0);
        sw.lock_mac(a.id, mac(1));
        sw.lock_ips(a.id, &[OWN.into(), Ipv4Addr::new(192, 168, 1, 1).into(), OWN6.into()]);
        let passes = [
            ipv4(mac(1), OWN, 5, 53),
            ipv4(mac(1), Ipv4Addr::new(192, 168, 1, 1), 5, 53),
            ipv4(mac(1), Ipv4Addr::UNSPECIFIED, 5, DHCP_SERVER_PORT),
            arp(mac(1), mac(1), OWN),
            arp(mac(1), mac(1), Ipv4Addr::UNSPECIFIED),
            ethernet(mac(1), ETH_P_RARP, &[0; 28]),
            ipv6(mac(1), OWN6, &[], 17, &[0; 8]),
            ipv6(mac(1), OWN6, &[], 58, &ndp(135, OTHER6, &[(1, mac(1))])),
            ipv6(mac(1), OWN6, &[], 58, &ndp(136, OWN6, &[(2, mac(1))])),
            ipv6(mac(1), Ipv6Addr::UNSPECIFIED, &[], 58, &ndp(135, OWN6, &[])),
        ];
        let refused = [
            ipv4(mac(1), OTHER, 5, 53),
            ipv4(mac(1), Ipv4Addr::UNSPECIFIED, 5, 53),
            arp(mac(1), mac(1), OTHER),
            arp(mac(1), mac(7), OWN),
            ethernet(mac(1), 0x8100, &[0; 40]),
            ipv6(mac(1), OTHER6, &[], 17, &[0; 8]),
            ipv6(mac(1), OWN6, &[], 58, &ndp(136, OTHER6, &[(2, mac(1))])),
            ipv6(mac(1), OWN6, &[], 58, &ndp(136, OWN6, &[(2, mac(7))])),
            ipv6(mac(1), OWN6, &[], 58, &ndp(135, OTHER6, &[(1, mac(7))])),
            ipv6(mac(1), Ipv6Addr::UNSPECIFIED, &[], 17, &[0; 8]),
            dhcp_reply(mac(1), OWN, 5),
            ipv6(mac(1), OWN6, &[], 17, &DHCPV6_REPLY),
            ipv6(mac(1), OWN6, &[], 58, &ROUTER_ADVERTISEMENT),
        ];
        for f in passes.iter().chain(&refused) {
            sw.forward_bytes(&a, f);
        }
        assert_eq!((count(&b_log), drops_spoofed(&a)), (passes.len(), refused.len() as u64));
        assert_eq!(sw.locked_ips(a.id), [IpAddr::from(OWN), Ipv4Addr::new(192, 168, 1, 1).into(), OWN6.into()]);
    }

    #[test]
    fn no_other_port_claims_a_locked_address_in_arp_ipv4_ipv6_or_a_neighbour_advertisement() {
        let sw = Switch::new(1500, DEFAULT_AGING);
        let (a, _) = port(&sw, "a", 0);
        let (b, _) = port(&sw, "b", 0);
        let (_c, c_log) = port(&sw, "c", 0);
        sw.lock_ips(a.id, &[OWN.into(), OWN6.into()]);
        sw.forward_bytes(&b, &arp(mac(2), mac(2), OWN));
        sw.forward_bytes(&b, &arp(mac(2), mac(1), OWN));
        sw.forward_bytes(&b, &ipv4(mac(2), OWN, 5, 53));
        sw.forward_bytes(&b, &ipv6(mac(2), OWN6, &[], 17, &[0; 8]));
        sw.forward_bytes(&b, &ipv6(mac(2), OTHER6, &[], 58, &ndp(136, OWN6, &[(2, mac(2))])));
        sw.forward_bytes(&b, &ipv6(mac(2), OTHER6, &[0, 43, 60], 58, &ndp(136, OWN6, &[])));
        sw.forward_bytes(&b, &ipv6(mac(2), Ipv6Addr::UNSPECIFIED, &[], 58, &ndp(136, OWN6, &[(2, mac(2))])));
        assert_eq!((count(&c_log), drops_spoofed(&b)), (0, 7));
        // Anything else from b is as free as ever: its own addresses, probes, asking for a's.
        sw.forward_bytes(&b, &arp(mac(2), mac(2), OTHER));
        sw.forward_bytes(&b, &ipv4(mac(2), OTHER, 5, 53));
        sw.forward_bytes(&b, &arp(mac(2), mac(2), Ipv4Addr::UNSPECIFIED));
        sw.forward_bytes(&b, &ipv6(mac(2), OTHER6, &[], 17, &[0; 8]));
        sw.forward_bytes(&b, &ipv6(mac(2), OTHER6, &[], 58, &ndp(135, OWN6, &[(1, mac(2))])));
        sw.forward_bytes(&b, &ipv6(mac(2), OTHER6, &[], 58, &ndp(136, OTHER6, &[(2, mac(1))])));
        sw.forward_bytes(&b, &ipv6(mac(2), Ipv6Addr::UNSPECIFIED, &[], 58, &ndp(135, OWN6, &[])));
        // Serving is for unlocked ports (a router, a DHCP server), from their own addresses.
        sw.forward_bytes(&b, &dhcp_reply(mac(2), OTHER, 5));
        sw.forward_bytes(&b, &ipv6(mac(2), OTHER6, &[], 58, &ROUTER_ADVERTISEMENT));
        assert_eq!((count(&c_log), drops_spoofed(&b)), (9, 7));
        sw.forward_bytes(&b, &dhcp_reply(mac(2), OWN, 5));
        sw.forward_bytes(&b, &ipv6(mac(2), OWN6, &[], 58, &ROUTER_ADVERTISEMENT));
        assert_eq!((count(&c_log), drops_spoofed(&b)), (9, 9), "not from a locked address");
    }

    #[test]
    fn a_reserved_address_is_nobodys_and_two_ports_may_lock_one_as_a_migrating_guest_does() {
        let sw = Switch::new(1500, DEFAULT_AGING);
        let (source, _) = port(&sw, "vm1-source", 0);
        let (destination, _) = port(&sw, "vm1-destination", 0);
        let (other, _) = port(&sw, "other", 0);
        let (_peer, peer_log) = port(&sw, "peer", 0);
        sw.reserve_ip(OWN.into());
        sw.forward_bytes(&other, &arp(mac(3), mac(3), OWN));
        assert_eq!((count(&peer_log), drops_spoofed(&other)), (0, 1), "reserved while its guest is away");
        sw.lock_ips(source.id, &ips(&[OWN]));
        sw.lock_ips(destination.id, &ips(&[OWN]));
        sw.forward_bytes(&source, &arp(mac(1), mac(1), OWN));
        sw.forward_bytes(&destination, &arp(mac(1), mac(1), OWN));
        assert_eq!(count(&peer_log), 2);
        sw.remove_port(source.id);
        sw.release_ip(OWN.into());
        sw.forward_bytes(&other, &arp(mac(3), mac(3), OWN));
        assert_eq!((count(&peer_log), drops_spoofed(&other)), (2, 2), "still the destination port's");
        sw.remove_port(destination.id);
        sw.forward_bytes(&other, &arp(mac(3), mac(3), OWN));
        assert_eq!((count(&peer_log), drops_spoofed(&other)), (3, 2), "released with its ports gone: anybody's");
    }

    #[test]
    fn a_lock_added_while_a_port_sends_applies_from_its_next_frame() {
        let sw = Switch::new(1500, DEFAULT_AGING);
        let (a, _) = port(&sw, "a", 0);
        let (b, _) = port(&sw, "b", 0);
        let (_c, c_log) = port(&sw, "c", 0);
        sw.lock_ips(b.id, &ips(&[OTHER])); // locks exist from the start: a's sender remembers its answers
        let bytes = ipv6(mac(1), OTHER6, &[], 17, &[0; 8]);
        let iov = [libc::iovec { iov_base: bytes.as_ptr() as *mut libc::c_void, iov_len: bytes.len() }];
        // SAFETY: `bytes` outlives every use of the frame below.
        let ipv6 = unsafe { Frame::new(&iov) };
        let mut sender = Sender::default();
        sw.forward(&a, &ipv6, &mut sender);
        sw.lock_ips(a.id, &ips(&[OWN]));
        sw.forward(&a, &ipv6, &mut sender);
        sender.publish(&a);
        assert_eq!((count(&c_log), drops_spoofed(&a)), (1, 1), "locked: no more IPv6 from an address not its own");
    }
}
