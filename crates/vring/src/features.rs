//! Feature bits by their spec names (virtio 1.2 §5.1.3, §6; vhost-user spec), one line of meaning each.
//! Values are bit numbers; use `1 << BIT` for the mask.

/// Device handles packets with partial checksum (guest may send unchecksummed packets).
pub const VIRTIO_NET_F_CSUM: u32 = 0;
/// Driver handles packets with partial checksum (device may send unchecksummed packets).
pub const VIRTIO_NET_F_GUEST_CSUM: u32 = 1;
/// Device reports its maximum MTU in config space.
pub const VIRTIO_NET_F_MTU: u32 = 3;
/// Device has a MAC address in config space.
pub const VIRTIO_NET_F_MAC: u32 = 5;
/// Driver can receive TSOv4.
pub const VIRTIO_NET_F_GUEST_TSO4: u32 = 7;
/// Driver can receive TSOv6.
pub const VIRTIO_NET_F_GUEST_TSO6: u32 = 8;
/// Driver can receive TSO with ECN.
pub const VIRTIO_NET_F_GUEST_ECN: u32 = 9;
/// Driver can receive UFO.
pub const VIRTIO_NET_F_GUEST_UFO: u32 = 10;
/// Device can receive TSOv4.
pub const VIRTIO_NET_F_HOST_TSO4: u32 = 11;
/// Device can receive TSOv6.
pub const VIRTIO_NET_F_HOST_TSO6: u32 = 12;
/// Device can receive TSO with ECN.
pub const VIRTIO_NET_F_HOST_ECN: u32 = 13;
/// Device can receive UFO.
pub const VIRTIO_NET_F_HOST_UFO: u32 = 14;
/// Driver can merge receive buffers (num_buffers in the header).
pub const VIRTIO_NET_F_MRG_RXBUF: u32 = 15;
/// Config status field is available.
pub const VIRTIO_NET_F_STATUS: u32 = 16;
/// Control channel (control virtqueue) is available.
pub const VIRTIO_NET_F_CTRL_VQ: u32 = 17;
/// Driver can send gratuitous packets (announce).
pub const VIRTIO_NET_F_GUEST_ANNOUNCE: u32 = 21;
/// Device supports multiqueue with automatic receive steering.
pub const VIRTIO_NET_F_MQ: u32 = 22;
/// Device notifies when the avail ring runs empty, even with suppression (legacy).
pub const VIRTIO_F_NOTIFY_ON_EMPTY: u32 = 24;
/// vhost: the back-end can log dirty pages (live migration).
pub const VHOST_F_LOG_ALL: u32 = 26;
/// Driver can use indirect descriptor tables (§2.7.5.3).
pub const VIRTIO_RING_F_INDIRECT_DESC: u32 = 28;
/// used_event / avail_event notification suppression (§2.7.7, §2.7.10).
pub const VIRTIO_RING_F_EVENT_IDX: u32 = 29;
/// vhost-user: GET/SET_PROTOCOL_FEATURES are supported.
pub const VHOST_USER_F_PROTOCOL_FEATURES: u32 = 30;
/// Compliance with virtio 1.x (little-endian, 12-byte net header).
pub const VIRTIO_F_VERSION_1: u32 = 32;
/// Packed virtqueue layout (§2.8); not offered by this back-end.
pub const VIRTIO_F_RING_PACKED: u32 = 34;
/// Driver can receive USOv4 packets.
pub const VIRTIO_NET_F_GUEST_USO4: u32 = 54;
/// Driver can receive USOv6 packets.
pub const VIRTIO_NET_F_GUEST_USO6: u32 = 55;
/// Device can receive USO packets.
pub const VIRTIO_NET_F_HOST_USO: u32 = 56;

/// Whether bit `bit` is set in `features`.
pub fn has_feature(features: u64, bit: u32) -> bool {
    bit < 64 && features & (1u64 << bit) != 0
}
