//! The ring core of vhost-user-net: guest memory, the device side of the split and packed
//! virtqueues, descriptor chains, notification suppression, the dirty-page log, the virtio-net header and
//! feature bits.
//! Pure Rust (no Node-API); `mock` and `mock_packed` are driver-side test harnesses other crates'
//! tests use too, and `fuzz_cases` runs the fuzz tests' seeded cases.

pub mod desc;
pub mod dirty_log;
pub mod error;
pub mod features;
pub mod fuzz_cases;
pub mod memory;
pub mod mmap;
pub mod mock;
pub mod mock_packed;
pub mod net_hdr;
pub mod packed;
pub mod queue;
pub mod state;
pub mod virtqueue;

pub use desc::{Buf, DescChain, Descriptor, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE};
pub use dirty_log::{DirtyLog, VHOST_LOG_PAGE};
pub use error::{DirtyLogError, MemoryError, QueueError};
pub use memory::{ByteValued, GuestMemory, MemoryRegion, RegionSpec, WriteLog, MAX_REGIONS};
pub use net_hdr::{VirtioNetHdr, NUM_BUFFERS_OFFSET, VIRTIO_NET_HDR_LEN};
pub use queue::{vring_need_event, SplitQueue, VRING_AVAIL_F_NO_INTERRUPT, VRING_USED_F_NO_NOTIFY};
pub use packed::{PackedQueue, PACKED_RING_START};
pub use state::{QueueState, MAX_QUEUE_SIZE};
pub use virtqueue::Virtqueue;
