//! Node-API addon of vhost-user-net.
//!
//! The plain-Rust modules below do the work and are unit-tested with `cargo test`: the
//! vhost-user socket transport (fd passing, message framing, reader and accept threads) and the
//! memfd/eventfd helpers the test front-end needs. `binding` only converts between JavaScript
//! and these modules; it and `napi_sys` (the hand-declared Node-API, resolved from the node
//! binary at load) are left out of test builds, which have no node binary to link against.

pub mod acceptor;
pub mod connection;
pub mod eventfd;
pub mod fd;
pub mod memfd;
pub mod message;
pub mod message_reader;
pub mod message_sender;
pub mod poll;
pub mod shared_mapping;
pub mod sys_error;
pub mod transport_error;
pub mod unix_socket;

#[cfg(not(test))]
mod binding;
#[cfg(not(test))]
mod napi_sys;

#[cfg(test)]
mod test_support;
