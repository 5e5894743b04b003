//! Offloads between switch ports. A guest may hand the switch a frame whose checksum is still to
//! be done (NEEDS_CSUM) or a TCP segment of up to 64 KiB still to be cut (GSO), as its virtio-net
//! header says (virtio 1.2 §5.1.6.2). A destination that takes the same (a guest that negotiated
//! GUEST_CSUM / GUEST_TSO4/6 / GUEST_ECN, a TAP uplink) gets the frame as it is, header and all:
//! 64 KiB cross with one copy. Any other destination (a guest without them, a stream uplink, the
//! DHCP port) gets it finished here: its checksum filled in, or cut into MSS-sized TCP segments
//! with their own IP and TCP headers and checksums, as the kernel's software GSO would.
//!
//! Threat model: the header and the frame come from a guest. Every offset is checked against the
//! frame before use; a frame that cannot be finished is dropped and counted, never trusted.

use std::fmt;

use vring::features::{VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_ECN, VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6};
use vring::net_hdr::{
    VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_ECN, VIRTIO_NET_HDR_GSO_NONE, VIRTIO_NET_HDR_GSO_TCPV4,
    VIRTIO_NET_HDR_GSO_TCPV6,
};
use vring::VirtioNetHdr;

use super::frame::{Frame, ETH_P_8021Q, ETH_P_IP, ETH_P_IPV6, IPPROTO_ICMPV6};

/// Which offloaded frames a destination takes as they are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Accepts {
    pub csum: bool,
    pub tso4: bool,
    pub tso6: bool,
    pub ecn: bool,
}

impl Accepts {
    /// Everything a virtio-net header can carry here (a TAP with IFF_VNET_HDR segments itself).
    pub const ALL: Accepts = Accepts { csum: true, tso4: true, tso6: true, ecn: true };
    /// Only finished frames.
    pub const NONE: Accepts = Accepts { csum: false, tso4: false, tso6: false, ecn: false };

    /// What a guest driver that acked `features` takes on its receive queue.
    pub fn guest(features: u64) -> Accepts {
        let has = |bit: u32| features & (1u64 << bit) != 0;
        Accepts {
            csum: has(VIRTIO_NET_F_GUEST_CSUM),
            tso4: has(VIRTIO_NET_F_GUEST_TSO4),
            tso6: has(VIRTIO_NET_F_GUEST_TSO6),
            ecn: has(VIRTIO_NET_F_GUEST_ECN),
        }
    }

    /// Whether a frame with header `hdr` can go to this destination unchanged.
    pub fn takes(&self, hdr: &VirtioNetHdr) -> bool {
        if hdr.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM != 0 && !self.csum {
            return false;
        }
        if hdr.gso_type & VIRTIO_NET_HDR_GSO_ECN != 0 && !self.ecn {
            return false;
        }
        match hdr.gso_type & !VIRTIO_NET_HDR_GSO_ECN {
            VIRTIO_NET_HDR_GSO_NONE => true,
            VIRTIO_NET_HDR_GSO_TCPV4 => self.tso4,
            VIRTIO_NET_HDR_GSO_TCPV6 => self.tso6,
            _ => false,
        }
    }
}

/// Whether `hdr` asks for nothing (a finished frame).
pub fn is_plain(hdr: &VirtioNetHdr) -> bool {
    hdr.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM == 0 && hdr.gso_type == VIRTIO_NET_HDR_GSO_NONE
}

/// **hostile** (guest): why an offloaded frame could not be finished.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OffloadError {
    /// A GSO type the switch does not offer (UDP fragmentation, USO).
    UnsupportedGso(u8),
    /// csum_start/csum_offset point outside the frame.
    ChecksumOutside { start: u16, offset: u16, len: usize },
    /// The checksum would be written where no stack puts one: not past the IP headers and the
    /// ports of a TCP/UDP-like header (see `checksum_field_allowed`).
    ChecksumOverHeaders { start: u16, offset: u16 },
    /// A GSO frame that is not Ethernet + IPv4/IPv6 (no extension headers) + TCP, or too short.
    NotTcp,
    /// gso_size below MIN_SEGMENT_SIZE (one 64 KiB frame would become thousands of tiny ones).
    SegmentSizeTooSmall(u16),
    /// Segments of `segment` bytes, more than the segment's largest frame: gso_size (or a GSO
    /// frame's one segment) past the MTU would carry oversized frames to every port.
    SegmentTooBig { segment: usize, max_frame: usize },
}

impl fmt::Display for OffloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OffloadError::UnsupportedGso(t) => write!(f, "GSO type {t} is not offered"),
            OffloadError::ChecksumOutside { start, offset, len } => {
                write!(f, "checksum at {start}+{offset} is outside the {len}-byte frame")
            }
            OffloadError::ChecksumOverHeaders { start, offset } => {
                write!(f, "checksum at {start}+{offset} is not where a TCP or UDP checksum goes")
            }
            OffloadError::NotTcp => f.write_str("a GSO frame that is not Ethernet/IP/TCP"),
            OffloadError::SegmentSizeTooSmall(size) => write!(f, "gso_size {size} is below {MIN_SEGMENT_SIZE}"),
            OffloadError::SegmentTooBig { segment, max_frame } => {
                write!(f, "GSO segments of {segment} bytes are larger than the {max_frame}-byte frames the segment carries")
            }
        }
    }
}

/// Smallest gso_size finished in software: Linux's lowest TCP send MSS (net.ipv4.tcp_min_snd_mss).
pub const MIN_SEGMENT_SIZE: u16 = 48;

const IPPROTO_TCP: u8 = 6;
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;

/// Checks, before `frame` is forwarded anywhere, that its offload requests can be finished here:
/// a GSO type this switch offers, a checksum inside the frame, Ethernet/IP/TCP headers for GSO,
/// and segments no larger than `max_frame`.
pub fn check(frame: &Frame, max_frame: usize) -> Result<(), OffloadError> {
    let hdr = frame.offload();
    if hdr.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM != 0 {
        let (start, offset) = (hdr.csum_start, hdr.csum_offset);
        let at = usize::from(start) + usize::from(offset);
        if at + 2 > frame.len() {
            return Err(OffloadError::ChecksumOutside { start, offset, len: frame.len() });
        }
        if !checksum_field_allowed(frame, at) {
            return Err(OffloadError::ChecksumOverHeaders { start, offset });
        }
    }
    match hdr.gso_type & !VIRTIO_NET_HDR_GSO_ECN {
        VIRTIO_NET_HDR_GSO_NONE => Ok(()),
        VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_TCPV6 => {
            if hdr.gso_size < MIN_SEGMENT_SIZE {
                return Err(OffloadError::SegmentSizeTooSmall(hdr.gso_size));
            }
            // Ethernet + 802.1Q tag + IPv6 (or IPv4 with options) + TCP with options.
            let mut headers = [0u8; 18 + 60 + 60];
            let n = frame.copy_out(0, &mut headers);
            let layout = TcpLayout::parse(&headers[..n]).ok_or(OffloadError::NotTcp)?;
            let segment = layout.payload + usize::from(hdr.gso_size).min(frame.len() - layout.payload);
            if segment > max_frame {
                return Err(OffloadError::SegmentTooBig { segment, max_frame });
            }
            Ok(())
        }
        other => Err(OffloadError::UnsupportedGso(other)),
    }
}

/// Whether a checksum may be written at `at`: past the IP headers of an IPv4 or IPv6 packet
/// (untagged or behind one 802.1Q tag) and past the first 4 bytes of what follows them (TCP's
/// and UDP's ports), and not into ICMPv6. That is where a stack puts a TCP or UDP checksum, also
/// an inner one of a tunnel; Linux computes ICMP and ICMPv6 checksums itself.
///
/// Why: the checksum is computed over bytes the guest chose, so the guest chooses its value too.
/// Written into a MAC, an IP source, an ARP field, an IPv6 extension header or a neighbour
/// discovery message, it would rewrite what port security (`ip_guard`) checked, after the check,
/// here (for ports that do not take NEEDS_CSUM) or in the kernel or NIC behind a TAP.
fn checksum_field_allowed(frame: &Frame, at: usize) -> bool {
    let Some(eth) = frame.ethernet() else { return false };
    let (ether_type, l3) = match eth.ether_type {
        ETH_P_8021Q => match frame.read::<2>(16) {
            Some(inner) => (u16::from_be_bytes(inner), 18),
            None => return false,
        },
        other => (other, 14),
    };
    let transport = match ether_type {
        ETH_P_IP => frame.read::<1>(l3).and_then(|[v]| (v >> 4 == 4 && v & 0x0f >= 5).then(|| l3 + usize::from(v & 0x0f) * 4)),
        ETH_P_IPV6 => match frame.ipv6_upper_layer(l3) {
            Some((IPPROTO_ICMPV6, _)) | None => None,
            Some((_, at)) => Some(at),
        },
        _ => None,
    };
    transport.is_some_and(|transport| at >= transport + 4)
}

/// Finishes offloaded frames in software, reusing its buffers from frame to frame.
#[derive(Default)]
pub struct Finisher {
    /// The whole offloaded frame, copied out of the sender's buffers.
    whole: Vec<u8>,
    /// One finished segment.
    piece: Vec<u8>,
}

impl Finisher {
    /// Calls `deliver` with the finished form of `frame` (header `hdr`): the frame with its
    /// checksum filled in, or each TCP segment of a GSO frame.
    pub fn finish(&mut self, frame: &Frame, hdr: &VirtioNetHdr, mut deliver: impl FnMut(&Frame)) -> Result<(), OffloadError> {
        self.whole.resize(frame.len(), 0);
        frame.copy_out(0, &mut self.whole);
        match hdr.gso_type & !VIRTIO_NET_HDR_GSO_ECN {
            VIRTIO_NET_HDR_GSO_NONE => {
                if hdr.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM != 0 {
                    complete_checksum(&mut self.whole, hdr.csum_start, hdr.csum_offset)?;
                }
                deliver(&plain_frame(&[iovec(&self.whole)]));
                Ok(())
            }
            VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_TCPV6 => self.segment(hdr.gso_size, deliver),
            other => Err(OffloadError::UnsupportedGso(other)),
        }
    }

    /// Cuts the TCP segment in `self.whole` into `mss`-byte payloads (RFC 7414 rules the kernel's
    /// tcp_gso_segment follows: sequence numbers advance, FIN/PSH only on the last segment, CWR
    /// only on the first, IPv4 ids count up, every length and checksum recomputed).
    fn segment(&mut self, mss: u16, mut deliver: impl FnMut(&Frame)) -> Result<(), OffloadError> {
        if mss < MIN_SEGMENT_SIZE {
            return Err(OffloadError::SegmentSizeTooSmall(mss));
        }
        let layout = TcpLayout::parse(&self.whole).ok_or(OffloadError::NotTcp)?;
        let payload = &self.whole[layout.payload..];
        let count = payload.len().div_ceil(usize::from(mss)).max(1);
        let seq = u32::from_be_bytes(self.whole[layout.l4 + 4..layout.l4 + 8].try_into().unwrap());
        let ip_id = u16::from_be_bytes([self.whole[layout.l3 + 4], self.whole[layout.l3 + 5]]);
        for (i, chunk) in payload.chunks(usize::from(mss)).chain((payload.is_empty()).then_some(&[][..])).enumerate() {
            self.piece.clear();
            self.piece.extend_from_slice(&self.whole[..layout.payload]);
            self.piece.extend_from_slice(chunk);
            let p = &mut self.piece;
            let (l3, l4) = (layout.l3, layout.l4);
            let tcp_len = p.len() - l4;
            if layout.ipv4 {
                let ip_len = (p.len() - l3) as u16;
                put_u16(p, l3 + 2, ip_len);
                put_u16(p, l3 + 4, ip_id.wrapping_add(i as u16));
                put_u16(p, l3 + 10, 0);
                let ip_sum = !fold(sum(&p[l3..l4], 0));
                put_u16(p, l3 + 10, ip_sum);
            } else {
                put_u16(p, l3 + 4, tcp_len as u16);
            }
            let offset = (i * usize::from(mss)) as u32;
            p[l4 + 4..l4 + 8].copy_from_slice(&seq.wrapping_add(offset).to_be_bytes());
            if i + 1 < count {
                p[l4 + 13] &= !(TCP_FIN | TCP_PSH);
            }
            if i > 0 {
                p[l4 + 13] &= !TCP_CWR;
            }
            put_u16(p, l4 + 16, 0);
            let pseudo = pseudo_header_sum(p, &layout, tcp_len);
            let tcp_sum = !fold(sum(&p[l4..], pseudo));
            put_u16(p, l4 + 16, tcp_sum);
            deliver(&plain_frame(&[iovec(&self.piece)]));
        }
        Ok(())
    }
}

/// Where the headers of an Ethernet/IP/TCP frame end.
struct TcpLayout {
    ipv4: bool,
    l3: usize,
    l4: usize,
    payload: usize,
}

impl TcpLayout {
    fn parse(f: &[u8]) -> Option<TcpLayout> {
        let mut l3 = 14;
        let mut ether_type = u16::from_be_bytes([*f.get(12)?, *f.get(13)?]);
        if ether_type == ETH_P_8021Q {
            ether_type = u16::from_be_bytes([*f.get(16)?, *f.get(17)?]);
            l3 = 18;
        }
        let (ipv4, l4) = match ether_type {
            ETH_P_IP => {
                let ihl = usize::from(*f.get(l3)? & 0x0f) * 4;
                (ihl >= 20 && *f.get(l3 + 9)? == IPPROTO_TCP).then_some((true, l3 + ihl))?
            }
            ETH_P_IPV6 => (*f.get(l3 + 6)? == IPPROTO_TCP).then_some((false, l3 + 40))?,
            _ => return None,
        };
        let doff = usize::from(*f.get(l4 + 12)? >> 4) * 4;
        let payload = l4 + doff;
        (doff >= 20 && payload <= f.len()).then_some(TcpLayout { ipv4, l3, l4, payload })
    }
}

/// The TCP pseudo-header's sum (RFC 793 / RFC 8200 §8.1) for a `tcp_len`-byte segment.
fn pseudo_header_sum(p: &[u8], layout: &TcpLayout, tcp_len: usize) -> u32 {
    let addresses = if layout.ipv4 { &p[layout.l3 + 12..layout.l3 + 20] } else { &p[layout.l3 + 8..layout.l3 + 40] };
    sum(addresses, u32::from(IPPROTO_TCP) + tcp_len as u32)
}

/// Fills in the Internet checksum of `f[start..]` at `start + offset`; the field holds the
/// pseudo-header's partial sum, as the sender's stack left it (virtio 1.2 §5.1.6.2).
fn complete_checksum(f: &mut [u8], start: u16, offset: u16) -> Result<(), OffloadError> {
    let (s, at) = (usize::from(start), usize::from(start) + usize::from(offset));
    if at + 2 > f.len() {
        return Err(OffloadError::ChecksumOutside { start, offset, len: f.len() });
    }
    let value = !fold(sum(&f[s..], 0));
    // 0 and 0xffff are the same number in ones' complement; 0 would mean "no checksum" to UDP.
    put_u16(f, at, if value == 0 { 0xffff } else { value });
    Ok(())
}

/// Ones' complement sum of `bytes` as big-endian 16-bit words (odd tail padded), plus `initial`.
fn sum(bytes: &[u8], initial: u32) -> u32 {
    let mut total = u64::from(initial);
    let mut words = bytes.chunks_exact(2);
    for w in &mut words {
        total += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        total += u64::from(*last) << 8;
    }
    while total >> 32 != 0 {
        total = (total & 0xffff_ffff) + (total >> 32);
    }
    total as u32
}

fn fold(mut s: u32) -> u16 {
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

fn put_u16(f: &mut [u8], at: usize, v: u16) {
    f[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

fn iovec(bytes: &[u8]) -> libc::iovec {
    libc::iovec { iov_base: bytes.as_ptr() as *mut libc::c_void, iov_len: bytes.len() }
}

fn plain_frame(iov: &[libc::iovec]) -> Frame<'_> {
    // SAFETY: the iovec points at a live buffer of the Finisher for the duration of `deliver`.
    unsafe { Frame::new(iov) }
}

#[cfg(test)]
mod tests;
