//! A frame crossing the switch, seen as a list of memory segments (iovecs) without the virtio-net
//! header: segments of one guest's TX buffers (already bounds-checked against its memory by
//! `GuestMemory::iovecs`), or of a buffer an uplink read. Copies go segment to segment, so a frame
//! from one guest reaches another guest's RX buffers with exactly one copy. A frame from a guest
//! keeps the offload requests of its virtio-net header (see `offload`).

use std::ptr;

use vring::VirtioNetHdr;

pub const ETH_HLEN: usize = 14;
/// EtherTypes the switch looks into.
pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const IPV6_HLEN: usize = 40;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ICMPV6: u8 = 58;
/// IPv6 extension headers walked past to the upper-layer header.
const IPV6_HOP_BY_HOP: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_DESTINATION_OPTIONS: u8 = 60;

pub struct Frame<'a> {
    segments: &'a [libc::iovec],
    len: usize,
    /// Checksum / segmentation still to be done (all zero: a finished frame); `num_buffers` unused.
    offload: VirtioNetHdr,
}

/// The parts of an Ethernet header the switch looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthernetHeader {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    pub ether_type: u16,
}

impl EthernetHeader {
    pub fn dst_is_multicast(&self) -> bool {
        self.dst[0] & 1 != 0
    }

    /// Whether the frame carries an 802.1Q / 802.1ad tag (C-tag, S-tag, or the older 0x9100).
    pub fn is_vlan_tagged(&self) -> bool {
        matches!(self.ether_type, 0x8100 | 0x88a8 | 0x9100)
    }

    pub fn src_is_unicast(&self) -> bool {
        self.src[0] & 1 == 0 && self.src != [0; 6]
    }
}

impl<'a> Frame<'a> {
    /// # Safety
    /// Every segment must point to `iov_len` readable bytes that stay mapped while the frame is used.
    pub unsafe fn new(segments: &'a [libc::iovec]) -> Frame<'a> {
        // SAFETY: forwarded from the caller.
        unsafe { Frame::with_offload(segments, VirtioNetHdr::default()) }
    }

    /// A frame whose checksum or segmentation is still to be done, as `offload` says.
    ///
    /// # Safety
    /// As for `new`.
    pub unsafe fn with_offload(segments: &'a [libc::iovec], offload: VirtioNetHdr) -> Frame<'a> {
        let len = segments.iter().map(|s| s.iov_len).sum();
        Frame { segments, len, offload }
    }

    /// The offload requests the frame carries.
    pub fn offload(&self) -> &VirtioNetHdr {
        &self.offload
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The Ethernet header, or None for a runt shorter than one.
    pub fn ethernet(&self) -> Option<EthernetHeader> {
        let bytes: [u8; ETH_HLEN] = self.prefix()?;
        Some(EthernetHeader {
            dst: bytes[0..6].try_into().unwrap(),
            src: bytes[6..12].try_into().unwrap(),
            ether_type: u16::from_be_bytes([bytes[12], bytes[13]]),
        })
    }

    /// The source and destination ports of an untagged IPv4 UDP frame (IPv4 options skipped), if
    /// it is one: a filter (the fragment offset is not looked at).
    pub fn ipv4_udp_ports(&self) -> Option<(u16, u16)> {
        let mut ip = [0u8; 20];
        if self.copy_out(ETH_HLEN, &mut ip) < ip.len() || ip[0] >> 4 != 4 || ip[0] & 0x0f < 5 || ip[9] != IPPROTO_UDP {
            return None;
        }
        let header_len = usize::from(ip[0] & 0x0f) * 4;
        let udp = self.read::<4>(ETH_HLEN + header_len)?;
        Some((u16::from_be_bytes([udp[0], udp[1]]), u16::from_be_bytes([udp[2], udp[3]])))
    }

    /// The first N bytes, or None if the frame is shorter. Usually the first segment holds them:
    /// then it is one inlined load, not a memmove call (this runs on every frame).
    pub fn prefix<const N: usize>(&self) -> Option<[u8; N]> {
        match self.segments.first() {
            // SAFETY: the segment has at least N readable bytes (Frame::new's contract).
            Some(first) if first.iov_len >= N => Some(unsafe { ptr::read_unaligned(first.iov_base as *const [u8; N]) }),
            _ => {
                let mut bytes = [0u8; N];
                (self.copy_out(0, &mut bytes) == N).then_some(bytes)
            }
        }
    }

    /// `N` frame bytes at `offset`, or None if the frame ends before.
    pub fn read<const N: usize>(&self, offset: usize) -> Option<[u8; N]> {
        let mut bytes = [0u8; N];
        (self.copy_out(offset, &mut bytes) == N).then_some(bytes)
    }

    /// The upper-layer protocol of the IPv6 packet whose header starts at `l3` and where its
    /// header starts, past the extension headers that may precede it (hop-by-hop options, routing,
    /// destination options: RFC 8200 §4); a fragment header ends the walk, since what follows it
    /// may be in another fragment. Each is a multiple of 8 bytes long, so the walk ends within the
    /// frame: None if the frame ends inside one.
    pub fn ipv6_upper_layer(&self, l3: usize) -> Option<(u8, usize)> {
        let [next_header] = self.read::<1>(l3 + 6)?;
        let mut next = next_header;
        let mut at = l3 + IPV6_HLEN;
        while matches!(next, IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_DESTINATION_OPTIONS) {
            let [following, length] = self.read::<2>(at)?;
            next = following;
            at += (usize::from(length) + 1) * 8;
        }
        Some((next, at))
    }

    /// Copies frame bytes from `offset` into `out`; returns how many.
    pub fn copy_out(&self, offset: usize, out: &mut [u8]) -> usize {
        let mut copied = 0;
        self.for_each_piece(offset, out.len(), |piece, at| {
            // SAFETY: `piece` is readable frame memory (Frame::new's contract); `out[at..]` has
            // room for it (for_each_piece never yields more than the requested length).
            unsafe { ptr::copy(piece.0, out.as_mut_ptr().add(at), piece.1) };
            copied = at + piece.1;
        });
        copied
    }

    /// The whole frame in a new buffer (for ports that need it contiguous).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.len];
        self.copy_out(0, &mut out);
        out
    }

    /// Copies the frame into `dst` starting `dst_offset` bytes in; returns bytes copied (less
    /// than the frame if `dst` is too small).
    ///
    /// # Safety
    /// Every `dst` segment must point to `iov_len` writable bytes. They may overlap the frame's
    /// own memory (a hostile front-end can map one file for two guests): the copy is a memmove.
    pub unsafe fn copy_into(&self, dst: &[libc::iovec], dst_offset: usize) -> usize {
        let mut seg = 0;
        let mut seg_off = dst_offset;
        while seg < dst.len() && seg_off >= dst[seg].iov_len {
            seg_off -= dst[seg].iov_len;
            seg += 1;
        }
        let mut copied = 0;
        self.for_each_piece(0, self.len, |(mut src, mut len), _| {
            while len > 0 && seg < dst.len() {
                let room = dst[seg].iov_len - seg_off;
                let n = room.min(len);
                // SAFETY: `src` has `len` readable bytes; the destination segment has `room`
                // writable bytes from `seg_off` (caller's contract); memmove tolerates overlap.
                unsafe { ptr::copy(src, (dst[seg].iov_base as *mut u8).add(seg_off), n) };
                // SAFETY: advancing within the piece just copied from.
                src = unsafe { src.add(n) };
                len -= n;
                copied += n;
                seg_off += n;
                if seg_off == dst[seg].iov_len {
                    seg += 1;
                    seg_off = 0;
                }
            }
        });
        copied
    }

    /// Calls `f((ptr, len), offset_in_request)` for the pieces covering `[offset, offset + len)`.
    fn for_each_piece(&self, offset: usize, len: usize, mut f: impl FnMut((*const u8, usize), usize)) {
        let mut skip = offset;
        let mut left = len;
        let mut at = 0;
        for s in self.segments {
            if left == 0 {
                break;
            }
            if skip >= s.iov_len {
                skip -= s.iov_len;
                continue;
            }
            let n = (s.iov_len - skip).min(left);
            // SAFETY: `skip < iov_len`, so the pointer stays inside the segment.
            f((unsafe { (s.iov_base as *const u8).add(skip) }, n), at);
            at += n;
            left -= n;
            skip = 0;
        }
    }
}

/// The iovecs of `iov` after its first `skip` bytes (drops the virtio-net header of a TX chain).
pub fn skip_bytes(iov: &[libc::iovec], mut skip: usize, out: &mut Vec<libc::iovec>) {
    out.clear();
    for s in iov {
        if skip >= s.iov_len {
            skip -= s.iov_len;
            continue;
        }
        // SAFETY: `skip < iov_len`: the new base stays inside the same segment.
        out.push(libc::iovec { iov_base: unsafe { (s.iov_base as *mut u8).add(skip) } as *mut libc::c_void, iov_len: s.iov_len - skip });
        skip = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iov(buf: &mut [u8]) -> libc::iovec {
        libc::iovec { iov_base: buf.as_mut_ptr() as *mut libc::c_void, iov_len: buf.len() }
    }

    #[test]
    fn a_frame_split_anywhere_copies_whole_into_a_differently_split_destination() {
        let data: Vec<u8> = (0..100u8).collect();
        for cut in 1..99 {
            let (mut a, mut b) = (data[..cut].to_vec(), data[cut..].to_vec());
            let segs = [iov(&mut a), iov(&mut b)];
            // SAFETY: the segments point into live vectors.
            let frame = unsafe { Frame::new(&segs) };
            assert_eq!(frame.len(), 100);
            let (mut x, mut y, mut z) = (vec![0u8; 7], vec![0u8; 50], vec![0u8; 60]);
            let dst = [iov(&mut x), iov(&mut y), iov(&mut z)];
            // SAFETY: the destination segments point into live vectors.
            assert_eq!(unsafe { frame.copy_into(&dst, 5) }, 100);
            let joined: Vec<u8> = [x, y, z].concat();
            assert_eq!(&joined[5..105], &data[..]);
            assert_eq!(frame.to_vec(), data);
        }
    }

    #[test]
    fn ethernet_header_needs_fourteen_bytes() {
        let mut short = vec![0xffu8; 13];
        let segs = [iov(&mut short)];
        // SAFETY: live vector.
        assert_eq!(unsafe { Frame::new(&segs) }.ethernet(), None);
        let mut full = vec![0xffu8, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06];
        let segs = [iov(&mut full)];
        // SAFETY: live vector.
        let h = unsafe { Frame::new(&segs) }.ethernet().unwrap();
        assert!(h.dst_is_multicast() && h.src_is_unicast());
        assert_eq!(h.ether_type, 0x0806);
    }
}
