//! The virtio-net header (virtio 1.2 §5.1.6): `struct virtio_net_hdr`, 12 bytes when VERSION_1 or
//! MRG_RXBUF is negotiated. It precedes every packet in TX and RX buffers.

use crate::memory::ByteValued;

/// Size of the header with VIRTIO_F_VERSION_1 or VIRTIO_NET_F_MRG_RXBUF.
pub const VIRTIO_NET_HDR_LEN: usize = 12;
/// Offset of `num_buffers` inside the header (filled in last by mergeable RX).
pub const NUM_BUFFERS_OFFSET: u64 = 10;

/// flags: checksum from csum_start, stored at csum_start + csum_offset, is still to be done.
pub const VIRTIO_NET_HDR_F_NEEDS_CSUM: u8 = 1;
/// flags (RX): the packet's checksum has been validated.
pub const VIRTIO_NET_HDR_F_DATA_VALID: u8 = 2;
/// flags (RX): RSC coalescing info is present.
pub const VIRTIO_NET_HDR_F_RSC_INFO: u8 = 4;

/// gso_type: not a GSO frame.
pub const VIRTIO_NET_HDR_GSO_NONE: u8 = 0;
/// gso_type: TCPv4 segmentation.
pub const VIRTIO_NET_HDR_GSO_TCPV4: u8 = 1;
/// gso_type: UDP fragmentation offload.
pub const VIRTIO_NET_HDR_GSO_UDP: u8 = 3;
/// gso_type: TCPv6 segmentation.
pub const VIRTIO_NET_HDR_GSO_TCPV6: u8 = 4;
/// gso_type: UDP segmentation (USO).
pub const VIRTIO_NET_HDR_GSO_UDP_L4: u8 = 5;
/// gso_type bit: TCP with ECN (CWR set in the first segment only).
pub const VIRTIO_NET_HDR_GSO_ECN: u8 = 0x80;

/// `struct virtio_net_hdr` with the native-endian field values (convert with to/from_le_bytes).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct VirtioNetHdr {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
    pub num_buffers: u16,
}

// SAFETY: repr(C) of u8,u8,u16*5: 12 bytes, no padding, every bit pattern valid.
unsafe impl ByteValued for VirtioNetHdr {}

const _: () = assert!(std::mem::size_of::<VirtioNetHdr>() == VIRTIO_NET_HDR_LEN);

impl VirtioNetHdr {
    /// Decodes the little-endian wire form.
    pub fn from_le_bytes(b: [u8; VIRTIO_NET_HDR_LEN]) -> VirtioNetHdr {
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        VirtioNetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16_at(2),
            gso_size: u16_at(4),
            csum_start: u16_at(6),
            csum_offset: u16_at(8),
            num_buffers: u16_at(10),
        }
    }

    /// Encodes the little-endian wire form.
    pub fn to_le_bytes(&self) -> [u8; VIRTIO_NET_HDR_LEN] {
        let [l0, l1] = self.hdr_len.to_le_bytes();
        let [g0, g1] = self.gso_size.to_le_bytes();
        let [s0, s1] = self.csum_start.to_le_bytes();
        let [o0, o1] = self.csum_offset.to_le_bytes();
        let [n0, n1] = self.num_buffers.to_le_bytes();
        [self.flags, self.gso_type, l0, l1, g0, g1, s0, s1, o0, o1, n0, n1]
    }
}
