//! The plain, saved/restored value of one split virtqueue (the migration seam):
//! GET_VRING_BASE reads it, SET_VRING_ADDR / SET_VRING_BASE / SET_VRING_NUM build it, and
//! `SplitQueue::new` validates it.

/// Largest queue size of a split virtqueue (virtio 1.2 §2.7: "Queue Size ... maximum 32768").
pub const MAX_QUEUE_SIZE: u16 = 32768;

/// Everything needed to resume serving a split virtqueue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct QueueState {
    /// Queue size (number of descriptors); a power of two in 1..=MAX_QUEUE_SIZE.
    pub size: u16,
    /// Guest-physical address of the descriptor table.
    pub desc_addr: u64,
    /// Guest-physical address of the available (driver) ring.
    pub avail_addr: u64,
    /// Guest-physical address of the used (device) ring.
    pub used_addr: u64,
    /// Free-running index of the next avail ring entry the device will take.
    pub next_avail: u16,
    /// Free-running index of the next used ring entry the device will fill.
    pub next_used: u16,
    /// VIRTIO_RING_F_EVENT_IDX was negotiated (used_event / avail_event suppression).
    pub event_idx: bool,
    /// Guest-physical address at which writes to the used ring are logged for migration
    /// (SET_VRING_ADDR `log_guest_addr` with VHOST_VRING_F_LOG); None: at `used_addr`.
    pub used_log_addr: Option<u64>,
}
