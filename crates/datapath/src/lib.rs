//! The data plane of vhost-user-net (pure Rust, no Node-API): one worker thread per started queue
//! pair moving frames between the guest's virtqueues and a port (a TAP queue today), the TAP
//! device itself, and per queue pair counters.

mod attachment;
pub mod counters;
pub mod device;
pub mod switch;
mod epoll;
mod eventfd;
#[cfg(test)]
mod forwarding_cost;
pub mod pair_fault;
pub mod port;
pub mod rarp;
mod ring;
mod rx;
pub mod tap;
mod tx;
pub mod worker;

pub use counters::{Counters, CountersSnapshot};
pub use pair_fault::PairFault;
pub use tap::{AppliedOffloads, Tap, TapError};
pub use worker::{RingSetup, Worker, WorkerConfig, WorkerError, WorkerReport};
