//! The ring core of vhost-user-net: guest memory, the device side of the split virtqueue,
//! descriptor chains, notification suppression, the dirty-page log, the virtio-net header and
//! feature bits.
//! Pure Rust (no Node-API); `mock` is a driver-side test harness other crates' tests use too.

pub mod desc;
pub mod dirty_log;
pub mod error;
pub mod features;
pub mod memory;
pub mod mmap;
pub mod mock;
pub mod net_hdr;
pub mod queue;
pub mod state;

pub use desc::{Buf, DescChain, Descriptor, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE};
pub use dirty_log::{DirtyLog, VHOST_LOG_PAGE};
pub use error::{DirtyLogError, MemoryError, QueueError};
pub use memory::{ByteValued, GuestMemory, MemoryRegion, RegionSpec, WriteLog, MAX_REGIONS};
pub use net_hdr::{VirtioNetHdr, NUM_BUFFERS_OFFSET, VIRTIO_NET_HDR_LEN};
pub use queue::{vring_need_event, SplitQueue, VRING_AVAIL_F_NO_INTERRUPT, VRING_USED_F_NO_NOTIFY};
pub use state::{QueueState, MAX_QUEUE_SIZE};
