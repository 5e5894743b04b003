//! The RARP announcement a back-end sends after live migration (vhost-user SEND_RARP): a
//! broadcast from the guest's MAC, so that switches along the path learn the guest's new port at
//! once. Same frame as QEMU's self-announce and DPDK's `make_rarp_packet` (RFC 903, "reverse
//! request" with sender and target hardware address both the guest's MAC).

/// Ethertype of RARP (RFC 903).
pub const ETH_P_RARP: u16 = 0x8035;
/// RARP operation "reverse request" (RFC 903).
const RARP_OP_REVERSE_REQUEST: u16 = 3;
/// Minimum Ethernet frame without FCS: the announcement is padded to it.
pub const RARP_FRAME_LEN: usize = 60;

/// The broadcast RARP reverse request announcing `mac`.
pub fn rarp_announce(mac: [u8; 6]) -> [u8; RARP_FRAME_LEN] {
    let mut frame = [0u8; RARP_FRAME_LEN];
    frame[0..6].copy_from_slice(&[0xff; 6]);
    frame[6..12].copy_from_slice(&mac);
    frame[12..14].copy_from_slice(&ETH_P_RARP.to_be_bytes());
    // ARP header: Ethernet hardware (1), IPv4 protocol, address lengths 6 and 4.
    frame[14..16].copy_from_slice(&1u16.to_be_bytes());
    frame[16..18].copy_from_slice(&0x0800u16.to_be_bytes());
    frame[18] = 6;
    frame[19] = 4;
    frame[20..22].copy_from_slice(&RARP_OP_REVERSE_REQUEST.to_be_bytes());
    // Sender hardware address; sender IP 0.0.0.0; target hardware address; target IP 0.0.0.0.
    frame[22..28].copy_from_slice(&mac);
    frame[32..38].copy_from_slice(&mac);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcement_is_a_padded_broadcast_reverse_request_from_the_mac() {
        let mac = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
        let f = rarp_announce(mac);
        assert_eq!(&f[0..6], &[0xff; 6]);
        assert_eq!(&f[6..12], &mac);
        assert_eq!(&f[12..14], &[0x80, 0x35]);
        assert_eq!(&f[14..22], &[0, 1, 8, 0, 6, 4, 0, 3]);
        assert_eq!((&f[22..28], &f[28..32]), (&mac[..], &[0u8; 4][..]));
        assert_eq!((&f[32..38], &f[38..42]), (&mac[..], &[0u8; 4][..]));
        assert!(f[42..].iter().all(|&b| b == 0));
    }
}
