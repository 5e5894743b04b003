//! IPv4 port security (`--port NAME=PATH,mac=MAC,ip=ADDR…`): which IPv4 address a frame claims
//! as its sender's, checked against `AddressLocks<Ipv4Addr>` as a frame's source MAC is against
//! the MAC locks. ARP is what matters most: a reply claiming another guest's address is how a
//! station takes that guest's traffic (ARP spoofing).
//!
//! A port locked to IPv4 addresses sends:
//! - IPv4 from one of them, or from 0.0.0.0 to UDP port 67 (a DHCP client without an address);
//! - ARP (Ethernet/IPv4) for one of them, or for 0.0.0.0 (a probe), with its own frame's source
//!   MAC as the sender hardware address;
//! - RARP (a migrated guest's announcement, which claims no IPv4 address);
//! - nothing else: no IPv6 (IPv6 port security is not built, so a locked port sends none) and
//!   no VLAN-tagged frame (whose inner packet would go unchecked).
//!
//! Any other port may send anything but IPv4 or ARP from an address locked to a port or reserved.

use std::net::Ipv4Addr;

use super::frame::{EthernetHeader, Frame, ETH_HLEN, ETH_P_ARP, ETH_P_IP};
use super::uplink::DHCP_SERVER_PORT;
use crate::rarp::ETH_P_RARP;

/// The sender a frame claims to be, as far as IPv4 port security is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// An IPv4 packet from, or an ARP packet for, this address.
    From(Ipv4Addr),
    /// What a station without an address sends: an ARP probe, a DHCP client's packet from
    /// 0.0.0.0, a RARP announcement.
    Unaddressed,
    /// An ARP packet for this address whose sender hardware address is not the frame's source
    /// MAC: a locked port may not send one, and from any other port it still claims the address.
    ArpFromOtherMac(Ipv4Addr),
    /// Anything else: other EtherTypes (IPv6, VLAN tags), malformed IPv4 or ARP, IPv4 from
    /// 0.0.0.0 to anything but a DHCP server.
    Other,
}

impl Claim {
    /// What the frame (Ethernet header `eth`) claims.
    pub fn of(eth: &EthernetHeader, frame: &Frame) -> Claim {
        match eth.ether_type {
            ETH_P_IP => ipv4_claim(frame),
            ETH_P_ARP => arp_claim(eth, frame),
            ETH_P_RARP => Claim::Unaddressed,
            _ => Claim::Other,
        }
    }
}

fn ipv4_claim(frame: &Frame) -> Claim {
    let Some(header) = frame.prefix::<{ ETH_HLEN + 20 }>() else {
        return Claim::Other;
    };
    let ip = &header[ETH_HLEN..];
    if ip[0] >> 4 != 4 || ip[0] & 0x0f < 5 {
        return Claim::Other;
    }
    match Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]) {
        source if !source.is_unspecified() => Claim::From(source),
        _ if frame.ipv4_udp_destination_port() == Some(DHCP_SERVER_PORT) => Claim::Unaddressed,
        _ => Claim::Other,
    }
}

/// ARP for Ethernet and IPv4 (RFC 826): htype 1, ptype 0x0800, hlen 6, plen 4, then op, sha,
/// spa, tha, tpa.
fn arp_claim(eth: &EthernetHeader, frame: &Frame) -> Claim {
    let Some(header) = frame.prefix::<{ ETH_HLEN + 28 }>() else {
        return Claim::Other;
    };
    let arp = &header[ETH_HLEN..];
    if arp[0..6] != [0, 1, 0x08, 0x00, 6, 4] {
        return Claim::Other;
    }
    match Ipv4Addr::new(arp[14], arp[15], arp[16], arp[17]) {
        sender if arp[8..14] != eth.src => Claim::ArpFromOtherMac(sender),
        sender if sender.is_unspecified() => Claim::Unaddressed,
        sender => Claim::From(sender),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::super::tests::{count, drops_spoofed, mac, port, BROADCAST};
    use super::super::{Sender, Switch, DEFAULT_AGING};
    use super::*;
    use crate::switch::Mac;

    const OWN: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const OTHER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

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
        assert_eq!(claim(&ipv4(m, OWN, 5, 53)), Claim::From(OWN));
        assert_eq!(claim(&ipv4(m, Ipv4Addr::UNSPECIFIED, 5, DHCP_SERVER_PORT)), Claim::Unaddressed, "a DHCP client");
        assert_eq!(claim(&ipv4(m, Ipv4Addr::UNSPECIFIED, 7, DHCP_SERVER_PORT)), Claim::Unaddressed, "IPv4 options are skipped");
        assert_eq!(claim(&ipv4(m, Ipv4Addr::UNSPECIFIED, 5, 53)), Claim::Other, "0.0.0.0 to anything but DHCP");
        assert_eq!(claim(&arp(m, m, OWN)), Claim::From(OWN));
        assert_eq!(claim(&arp(m, m, Ipv4Addr::UNSPECIFIED)), Claim::Unaddressed, "an ARP probe");
        assert_eq!(claim(&arp(m, mac(2), OWN)), Claim::ArpFromOtherMac(OWN));
        assert_eq!(claim(&ethernet(m, ETH_P_RARP, &[0; 28])), Claim::Unaddressed);
        assert_eq!(claim(&ethernet(m, 0x86dd, &[0x60; 40])), Claim::Other, "IPv6");
        assert_eq!(claim(&ethernet(m, 0x8100, &[0; 40])), Claim::Other, "a VLAN tag");
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
        let mut short_header = ipv4(m, OWN, 5, 53);
        short_header[14] = 0x44;
        assert_eq!(claim(&short_header), Claim::Other);
        assert_eq!(claim(&arp(m, m, OWN)[..30]), Claim::Other, "cut short");
        assert_eq!(claim(&ipv4(m, OWN, 5, 53)[..20]), Claim::Other, "cut short");
    }

    #[test]
    fn headers_split_across_buffers_are_read_whole() {
        let m = mac(1);
        for piece in [1, 7, 15, 17] {
            assert_eq!(claim_in_pieces(&ipv4(m, OWN, 5, 53), piece), Claim::From(OWN));
            assert_eq!(claim_in_pieces(&ipv4(m, Ipv4Addr::UNSPECIFIED, 6, DHCP_SERVER_PORT), piece), Claim::Unaddressed);
            assert_eq!(claim_in_pieces(&arp(m, mac(2), OWN), piece), Claim::ArpFromOtherMac(OWN));
        }
    }

    #[test]
    fn a_port_locked_to_ipv4_addresses_sends_ipv4_and_arp_only_from_them() {
        let sw = Switch::new(1500, DEFAULT_AGING);
        let (a, _) = port(&sw, "a", 0);
        let (_b, b_log) = port(&sw, "b", 0);
        sw.lock_mac(a.id, mac(1));
        sw.lock_ips(a.id, &[OWN, Ipv4Addr::new(192, 168, 1, 1)]);
        let passes = [
            ipv4(mac(1), OWN, 5, 53),
            ipv4(mac(1), Ipv4Addr::new(192, 168, 1, 1), 5, 53),
            ipv4(mac(1), Ipv4Addr::UNSPECIFIED, 5, DHCP_SERVER_PORT),
            arp(mac(1), mac(1), OWN),
            arp(mac(1), mac(1), Ipv4Addr::UNSPECIFIED),
            ethernet(mac(1), ETH_P_RARP, &[0; 28]),
        ];
        let refused = [
            ipv4(mac(1), OTHER, 5, 53),
            ipv4(mac(1), Ipv4Addr::UNSPECIFIED, 5, 53),
            arp(mac(1), mac(1), OTHER),
            arp(mac(1), mac(7), OWN),
            ethernet(mac(1), 0x86dd, &[0x60; 40]),
            ethernet(mac(1), 0x8100, &[0; 40]),
        ];
        for f in passes.iter().chain(&refused) {
            sw.forward_bytes(&a, f);
        }
        assert_eq!((count(&b_log), drops_spoofed(&a)), (passes.len(), refused.len() as u64));
        assert_eq!(sw.locked_ips(a.id), [OWN, Ipv4Addr::new(192, 168, 1, 1)]);
    }

    #[test]
    fn no_other_port_claims_a_locked_address_in_arp_or_ipv4() {
        let sw = Switch::new(1500, DEFAULT_AGING);
        let (a, _) = port(&sw, "a", 0);
        let (b, _) = port(&sw, "b", 0);
        let (_c, c_log) = port(&sw, "c", 0);
        sw.lock_ips(a.id, &[OWN]);
        sw.forward_bytes(&b, &arp(mac(2), mac(2), OWN));
        sw.forward_bytes(&b, &arp(mac(2), mac(1), OWN));
        sw.forward_bytes(&b, &ipv4(mac(2), OWN, 5, 53));
        assert_eq!((count(&c_log), drops_spoofed(&b)), (0, 3));
        // Anything else from b is as free as ever: its own address, IPv6, probes.
        sw.forward_bytes(&b, &arp(mac(2), mac(2), OTHER));
        sw.forward_bytes(&b, &ipv4(mac(2), OTHER, 5, 53));
        sw.forward_bytes(&b, &ethernet(mac(2), 0x86dd, &[0x60; 40]));
        sw.forward_bytes(&b, &arp(mac(2), mac(2), Ipv4Addr::UNSPECIFIED));
        assert_eq!((count(&c_log), drops_spoofed(&b)), (4, 3));
    }

    #[test]
    fn a_reserved_address_is_nobodys_and_two_ports_may_lock_one_as_a_migrating_guest_does() {
        let sw = Switch::new(1500, DEFAULT_AGING);
        let (source, _) = port(&sw, "vm1-source", 0);
        let (destination, _) = port(&sw, "vm1-destination", 0);
        let (other, _) = port(&sw, "other", 0);
        let (_peer, peer_log) = port(&sw, "peer", 0);
        sw.reserve_ip(OWN);
        sw.forward_bytes(&other, &arp(mac(3), mac(3), OWN));
        assert_eq!((count(&peer_log), drops_spoofed(&other)), (0, 1), "reserved while its guest is away");
        sw.lock_ips(source.id, &[OWN]);
        sw.lock_ips(destination.id, &[OWN]);
        sw.forward_bytes(&source, &arp(mac(1), mac(1), OWN));
        sw.forward_bytes(&destination, &arp(mac(1), mac(1), OWN));
        assert_eq!(count(&peer_log), 2);
        sw.remove_port(source.id);
        sw.release_ip(OWN);
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
        sw.lock_ips(b.id, &[OTHER]); // locks exist from the start: a's sender remembers its answers
        let bytes = ethernet(mac(1), 0x86dd, &[0x60; 40]);
        let iov = [libc::iovec { iov_base: bytes.as_ptr() as *mut libc::c_void, iov_len: bytes.len() }];
        // SAFETY: `bytes` outlives every use of the frame below.
        let ipv6 = unsafe { Frame::new(&iov) };
        let mut sender = Sender::default();
        sw.forward(&a, &ipv6, &mut sender);
        sw.lock_ips(a.id, &[OWN]);
        sw.forward(&a, &ipv6, &mut sender);
        sender.publish(&a);
        assert_eq!((count(&c_log), drops_spoofed(&a)), (1, 1), "locked: no more IPv6 from a");
    }
}
