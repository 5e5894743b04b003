//! The plain, saved/restored value of one virtqueue (the migration seam): GET_VRING_BASE reads
//! it, SET_VRING_ADDR / SET_VRING_BASE / SET_VRING_NUM build it, and `Virtqueue::new` validates it.

/// Largest queue size (virtio 1.2 §2.7 and §2.8: 32768).
pub const MAX_QUEUE_SIZE: u16 = 32768;

/// Everything needed to resume serving a virtqueue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct QueueState {
    /// The packed layout (VIRTIO_F_RING_PACKED, §2.8); else split (§2.7).
    pub packed: bool,
    /// Queue size (number of descriptors) in 1..=MAX_QUEUE_SIZE; a power of two for a split ring.
    pub size: u16,
    /// Guest-physical address of the descriptor table (ring).
    pub desc_addr: u64,
    /// Guest-physical address of the available ring (split) or driver event structure (packed).
    pub avail_addr: u64,
    /// Guest-physical address of the used ring (split) or device event structure (packed).
    pub used_addr: u64,
    /// The next buffer the device will take: split, a free-running avail ring index; packed, the
    /// descriptor ring position with the wrap counter in bit 15 (`packed::PACKED_RING_START` first).
    pub next_avail: u16,
    /// Where the device puts the next used element, in the same form as `next_avail`.
    pub next_used: u16,
    /// VIRTIO_RING_F_EVENT_IDX was negotiated (used_event / avail_event suppression).
    pub event_idx: bool,
    /// Guest-physical address at which writes to the used ring (split) or device event structure
    /// (packed) are logged for migration (SET_VRING_ADDR `log_guest_addr` with VHOST_VRING_F_LOG);
    /// None: at `used_addr`. A packed ring's used descriptors are logged at `desc_addr`.
    pub used_log_addr: Option<u64>,
}
