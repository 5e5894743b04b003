// Virtio feature bits a vhost-user net back-end deals with, by spec name: virtio-net device
// bits (virtio 1.2 §5.1.3), reserved/transport bits (§6) and the two vhost bits that share the
// feature word (VHOST_F_LOG_ALL, VHOST_USER_F_PROTOCOL_FEATURES).

export enum VirtioFeature {
  /** Device handles packets with partial checksum (guest TX csum offload). */
  VIRTIO_NET_F_CSUM = 0,
  /** Driver handles packets with partial checksum (RX csum offload). */
  VIRTIO_NET_F_GUEST_CSUM = 1,
  /** Control channel offloads reconfiguration. */
  VIRTIO_NET_F_CTRL_GUEST_OFFLOADS = 2,
  /** Device reports the maximum MTU in config space. */
  VIRTIO_NET_F_MTU = 3,
  /** Device has a MAC address in config space. */
  VIRTIO_NET_F_MAC = 5,
  /** Legacy: device handles packets with any GSO type. */
  VIRTIO_NET_F_GSO = 6,
  /** Driver can receive TSOv4. */
  VIRTIO_NET_F_GUEST_TSO4 = 7,
  /** Driver can receive TSOv6. */
  VIRTIO_NET_F_GUEST_TSO6 = 8,
  /** Driver can receive TSO with ECN. */
  VIRTIO_NET_F_GUEST_ECN = 9,
  /** Driver can receive UFO. */
  VIRTIO_NET_F_GUEST_UFO = 10,
  /** Device can receive TSOv4 (guest sends TSO). */
  VIRTIO_NET_F_HOST_TSO4 = 11,
  /** Device can receive TSOv6. */
  VIRTIO_NET_F_HOST_TSO6 = 12,
  /** Device can receive TSO with ECN. */
  VIRTIO_NET_F_HOST_ECN = 13,
  /** Device can receive UFO. */
  VIRTIO_NET_F_HOST_UFO = 14,
  /** Driver can merge receive buffers (num_buffers in the net header). */
  VIRTIO_NET_F_MRG_RXBUF = 15,
  /** Config space status field is valid. */
  VIRTIO_NET_F_STATUS = 16,
  /** Control virtqueue present. */
  VIRTIO_NET_F_CTRL_VQ = 17,
  /** Control channel RX mode. */
  VIRTIO_NET_F_CTRL_RX = 18,
  /** Control channel VLAN filtering. */
  VIRTIO_NET_F_CTRL_VLAN = 19,
  /** Extra RX mode control. */
  VIRTIO_NET_F_CTRL_RX_EXTRA = 20,
  /** Driver can send gratuitous packets. */
  VIRTIO_NET_F_GUEST_ANNOUNCE = 21,
  /** Multiqueue with automatic receive steering. */
  VIRTIO_NET_F_MQ = 22,
  /** Set MAC address through the control channel. */
  VIRTIO_NET_F_CTRL_MAC_ADDR = 23,
  /** Legacy: notify when the avail ring is empty. */
  VIRTIO_F_NOTIFY_ON_EMPTY = 24,
  /** vhost: the front-end logs dirty pages; the back-end must log its writes. */
  VHOST_F_LOG_ALL = 26,
  /** Legacy: any descriptor layout. */
  VIRTIO_F_ANY_LAYOUT = 27,
  /** Indirect descriptor tables. */
  VIRTIO_RING_F_INDIRECT_DESC = 28,
  /** used_event / avail_event notification suppression. */
  VIRTIO_RING_F_EVENT_IDX = 29,
  /** vhost-user: protocol features can be negotiated (reuses the legacy UNUSED bit 30). */
  VHOST_USER_F_PROTOCOL_FEATURES = 30,
  /** Virtio 1.0+ device (modern interface, little-endian). */
  VIRTIO_F_VERSION_1 = 32,
  /** Device is behind an IOMMU (formerly VIRTIO_F_IOMMU_PLATFORM). */
  VIRTIO_F_ACCESS_PLATFORM = 33,
  /** Packed virtqueue layout. */
  VIRTIO_F_RING_PACKED = 34,
  /** Buffers are used in the order they were made available. */
  VIRTIO_F_IN_ORDER = 35,
  /** Memory accesses are ordered as by the platform (hardware devices). */
  VIRTIO_F_ORDER_PLATFORM = 36,
  /** Single root I/O virtualization. */
  VIRTIO_F_SR_IOV = 37,
  /** Driver passes extra data in notifications. */
  VIRTIO_F_NOTIFICATION_DATA = 38,
  /** Driver uses config data for notifications. */
  VIRTIO_F_NOTIF_CONFIG_DATA = 39,
  /** Individual virtqueue reset. */
  VIRTIO_F_RING_RESET = 40,
  /** Per-virtqueue notification coalescing. */
  VIRTIO_NET_F_VQ_NOTF_COAL = 52,
  /** Notification coalescing. */
  VIRTIO_NET_F_NOTF_COAL = 53,
  /** Driver can receive USO over IPv4. */
  VIRTIO_NET_F_GUEST_USO4 = 54,
  /** Driver can receive USO over IPv6. */
  VIRTIO_NET_F_GUEST_USO6 = 55,
  /** Device can receive USO. */
  VIRTIO_NET_F_HOST_USO = 56,
  /** Device reports packet hashes. */
  VIRTIO_NET_F_HASH_REPORT = 57,
  /** Driver provides exact hdr_len. */
  VIRTIO_NET_F_GUEST_HDRLEN = 59,
  /** Receive side scaling. */
  VIRTIO_NET_F_RSS = 60,
  /** Extended coalescing info. */
  VIRTIO_NET_F_RSC_EXT = 61,
  /** Standby for a primary device with the same MAC (failover). */
  VIRTIO_NET_F_STANDBY = 62,
  /** Device reports link speed and duplex. */
  VIRTIO_NET_F_SPEED_DUPLEX = 63,
}
