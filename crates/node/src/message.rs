//! A vhost-user message as the transport sees it: a 12-byte header whose bytes 8..12 give the
//! payload size (little endian), the payload, and the fds that came with it (SCM_RIGHTS).
//! Decoding the header fields is the control plane's job (`src/protocol/`).

use std::os::fd::OwnedFd;

/// `request: u32, flags: u32, size: u32` (vhost-user spec, "Message Specification").
pub const HEADER_SIZE: usize = 12;

/// Largest payload a request may carry. The largest fixed payload is SET_MEM_TABLE's region
/// table (8 + 8 * 32 bytes); configuration space access (GET/SET_CONFIG) is at most 12 + 256.
/// Anything bigger is refused without reading it.
pub const MAX_PAYLOAD_SIZE: u32 = 4096;

/// Most fds one message may carry (`VHOST_MEMORY_BASELINE_NREGIONS` is 8; 16 leaves room).
pub const MAX_FDS: usize = 16;

/// One message read off the socket; the fds are owned (closed on drop) until handed on.
#[derive(Debug)]
pub struct Message {
    /// Header followed by exactly `size` payload bytes.
    pub bytes: Vec<u8>,
    pub fds: Vec<OwnedFd>,
}

/// The payload size a header announces.
pub fn payload_size(header: &[u8; HEADER_SIZE]) -> u32 {
    u32::from_le_bytes([header[8], header[9], header[10], header[11]])
}
