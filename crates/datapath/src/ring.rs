//! One started virtqueue as the worker holds it: the device-side queue plus its kick / call
//! eventfds and the enable state of the vhost-user spec ("Ring states").

use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use vring::{MemoryError, QueueError, Virtqueue};

use crate::eventfd;

/// Why the worker stopped serving a ring. `Queue` and `Memory` are caused by a broken or hostile
/// driver; `Port` by the port fd failing.
#[derive(Debug)]
pub enum RingFault {
    Queue(QueueError),
    Memory(MemoryError),
    Port(io::Error),
}

impl fmt::Display for RingFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RingFault::Queue(e) => write!(f, "{e}"),
            RingFault::Memory(e) => write!(f, "{e}"),
            RingFault::Port(e) => write!(f, "port I/O failed: {e}"),
        }
    }
}

impl From<QueueError> for RingFault {
    fn from(e: QueueError) -> RingFault {
        RingFault::Queue(e)
    }
}

impl From<MemoryError> for RingFault {
    fn from(e: MemoryError) -> RingFault {
        RingFault::Memory(e)
    }
}

pub struct Ring {
    pub queue: Virtqueue,
    pub kick: Arc<OwnedFd>,
    pub call: Option<Arc<OwnedFd>>,
    /// Started but not enabled: TX chains are dropped, RX gets nothing.
    pub enabled: bool,
}

impl Ring {
    /// Makes the used elements added so far visible and interrupts the driver if it asked for it
    /// (NO_INTERRUPT / used_event).
    pub fn publish_used(&mut self) {
        self.queue.publish_used();
        if self.queue.needs_notification() {
            if let Some(call) = &self.call {
                eventfd::signal(call);
            }
        }
    }
}
