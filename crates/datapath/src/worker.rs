//! One worker thread per started queue pair. It sleeps in epoll on the RX kick, the TX kick, the
//! port fd and its control eventfd (idle = no CPU: no timeouts, no polling) and serves the rings
//! with the vhost-user "Ring states" semantics: a ring is served only if started (present); a
//! started but disabled TX ring is drained and its chains dropped, a disabled RX ring gets nothing.
//!
//! With a busy-poll budget (`--busy-poll`, off by default) a worker that just found work keeps
//! looking at its rings and port without sleeping, with the guest's TX kicks left off, until the
//! budget passes with nothing found: no kick or wake-up on the path while traffic flows, at the
//! price of one CPU spinning for up to the budget after the last frame.
//!
//! Threat model: the guest driver writes the rings concurrently and may be hostile. Any ring error
//! stops the whole queue pair: `on_fault` is called once with one line, the kick and port fds are
//! unregistered, and the thread parks on the control fd until `stop`. A failure on the host side
//! (the TAP deleted under the worker, epoll failing) stops the pair the same way but is reported
//! through `on_host_failure`: the guest did nothing wrong.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use vring::{GuestMemory, QueueError, QueueState, Virtqueue};

use crate::counters::Counters;
use crate::epoll::{Epoll, Ready, NOTHING, READABLE};
use crate::eventfd;
use crate::pair_fault::PairFault;
use crate::port::Port;
use crate::ring::{Ring, RingFault};
use crate::rx::{RxRing, RxState};
use crate::tx::TxRing;

/// A started virtqueue handed to a worker (SET_VRING_KICK done, addresses and base set).
pub struct RingSetup {
    pub state: QueueState,
    pub kick: Arc<OwnedFd>,
    /// None: the front-end gave no call fd (or polls); used elements are published silently.
    pub call: Option<Arc<OwnedFd>>,
    /// VHOST_USER_SET_VRING_ENABLE state.
    pub enabled: bool,
}

pub struct WorkerConfig {
    pub memory: Arc<GuestMemory>,
    /// The receive virtqueue (2·pair), if started.
    pub rx: Option<RingSetup>,
    /// The transmit virtqueue (2·pair + 1), if started.
    pub tx: Option<RingSetup>,
    /// Where this pair's frames go and come from (a TAP queue fd, or a switch port).
    pub port: Port,
    /// VIRTIO_NET_F_MRG_RXBUF negotiated.
    pub mrg_rxbuf: bool,
    /// Virtio-net header size: 12 (VERSION_1 or MRG_RXBUF) or 10; the TAP must be set to the same.
    pub vnet_hdr_len: usize,
    /// Largest frame the port may deliver, header included (65562 with guest TSO/UFO, else mtu + 26).
    pub max_rx_frame: usize,
    pub counters: Arc<Counters>,
    /// Called once, from the worker thread, with a one-line reason when the guest breaks a ring.
    pub on_fault: Box<dyn Fn(String) + Send>,
    /// Called instead of `on_fault` when the pair stops for a host-side reason (port fd or its
    /// I/O, epoll).
    pub on_host_failure: Box<dyn Fn(String) + Send>,
    /// The pair's fault latch, shared with whatever serves its RX ring elsewhere (the switch port):
    /// once tripped, the worker stops serving at its next wake-up, as after a fault of its own.
    pub pair_fault: Arc<PairFault>,
    /// How long to keep polling after the last work found; zero: sleep at once (event-driven).
    pub busy_poll: Duration,
}

/// What `stop` hands back: the rings' state (for GET_VRING_BASE or restarting them elsewhere)
/// and the fault that stopped the pair, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerReport {
    pub rx: Option<QueueState>,
    pub tx: Option<QueueState>,
    pub fault: Option<String>,
}

/// Why a worker could not be started.
#[derive(Debug)]
pub enum WorkerError {
    /// The vnet header length is not 10 or 12, or max_rx_frame cannot hold a header.
    InvalidConfig(String),
    /// **hostile** (front-end): a ring's addresses or size are invalid (`ring` is "RX" or "TX").
    Ring {
        ring: &'static str,
        source: QueueError,
    },
    /// Creating the epoll instance or the control eventfd failed.
    Setup {
        what: &'static str,
        source: io::Error,
    },
    /// epoll_ctl refused an fd (not pollable, or the same eventfd used for two rings).
    Watch {
        what: &'static str,
        source: io::Error,
    },
    /// The thread could not be spawned.
    Spawn(io::Error),
}

impl fmt::Display for WorkerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkerError::InvalidConfig(what) => write!(f, "invalid worker configuration: {what}"),
            WorkerError::Ring { ring, source } => {
                write!(f, "{ring} virtqueue cannot be started: {source}")
            }
            WorkerError::Setup { what, source } => {
                write!(f, "creating the worker's {what} failed: {source}")
            }
            WorkerError::Watch { what, source } => {
                write!(f, "cannot watch the {what} fd: {source}")
            }
            WorkerError::Spawn(e) => write!(f, "spawning the worker thread failed: {e}"),
        }
    }
}

impl std::error::Error for WorkerError {}

// epoll tokens.
const CONTROL: u64 = 0;
const RX_KICK: u64 = 1;
const TX_KICK: u64 = 2;
const PORT: u64 = 3;

/// A running queue pair. Dropping it stops the thread too (and discards the report).
pub struct Worker {
    control: OwnedFd,
    thread: Option<JoinHandle<WorkerReport>>,
}

impl Worker {
    /// Validates the rings, registers the fds and starts the thread. Whatever is already available
    /// on the rings (a kick that arrived before start) is processed right away.
    pub fn start(cfg: WorkerConfig) -> Result<Worker, WorkerError> {
        if cfg.vnet_hdr_len != 10 && cfg.vnet_hdr_len != 12 {
            return Err(WorkerError::InvalidConfig(format!(
                "vnet_hdr_len {} (must be 10 or 12)",
                cfg.vnet_hdr_len
            )));
        }
        if cfg.mrg_rxbuf && cfg.vnet_hdr_len != 12 {
            return Err(WorkerError::InvalidConfig(
                "MRG_RXBUF needs the 12-byte header".into(),
            ));
        }
        if cfg.max_rx_frame <= cfg.vnet_hdr_len {
            return Err(WorkerError::InvalidConfig(format!(
                "max_rx_frame {} too small",
                cfg.max_rx_frame
            )));
        }
        let epoll = Epoll::new().map_err(|source| WorkerError::Setup {
            what: "epoll instance",
            source,
        })?;
        let control = eventfd::new_eventfd().map_err(|source| WorkerError::Setup {
            what: "control eventfd",
            source,
        })?;
        let watch = |what, fd: &OwnedFd, events, token| {
            epoll
                .add(fd.as_raw_fd(), events, token)
                .map_err(|source| WorkerError::Watch { what, source })
        };
        watch("control eventfd", &control, READABLE, CONTROL)?;

        let ring = |name, setup: RingSetup| -> Result<Ring, WorkerError> {
            let queue = Virtqueue::new(cfg.memory.clone(), setup.state)
                .map_err(|source| WorkerError::Ring { ring: name, source })?;
            Ok(Ring {
                queue,
                kick: setup.kick,
                call: setup.call,
                enabled: setup.enabled,
            })
        };
        let rx = match cfg.rx {
            Some(setup) => {
                let r = ring("RX", setup)?;
                watch("RX kick", &r.kick, READABLE, RX_KICK)?;
                let Some(port_fd) = cfg.port.readiness_fd() else {
                    return Err(WorkerError::InvalidConfig("this port delivers RX frames itself (switch): the worker takes no RX ring".into()));
                };
                epoll.add(port_fd, NOTHING, PORT).map_err(|source| WorkerError::Watch { what: "port", source })?;
                Some(RxRing::new(
                    r,
                    cfg.mrg_rxbuf,
                    cfg.vnet_hdr_len,
                    cfg.max_rx_frame,
                ))
            }
            None => None,
        };
        let tx = match cfg.tx {
            Some(setup) => {
                let r = ring("TX", setup)?;
                watch("TX kick", &r.kick, READABLE, TX_KICK)?;
                Some(TxRing::new(r, cfg.vnet_hdr_len))
            }
            None => None,
        };

        let pair = QueuePair {
            epoll,
            rx,
            tx,
            port: cfg.port,
            port_watched: false,
            counters: cfg.counters,
            on_fault: cfg.on_fault,
            on_host_failure: cfg.on_host_failure,
            pair_fault: cfg.pair_fault,
            fault: None,
            busy_poll: cfg.busy_poll,
        };
        let thread = std::thread::Builder::new()
            .name("vu-net-qp".into())
            .spawn(move || pair.run())
            .map_err(WorkerError::Spawn)?;
        Ok(Worker {
            control,
            thread: Some(thread),
        })
    }

    /// Synchronous: signals the control eventfd, joins the thread and returns the rings' state
    /// (next_avail / next_used; everything used has been published).
    pub fn stop(mut self) -> WorkerReport {
        self.join()
    }

    fn join(&mut self) -> WorkerReport {
        eventfd::signal(&self.control);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(report)) => report,
            Some(Err(_)) => WorkerReport {
                rx: None,
                tx: None,
                fault: Some("queue pair worker panicked".into()),
            },
            None => WorkerReport {
                rx: None,
                tx: None,
                fault: None,
            },
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.join();
        }
    }
}

/// The worker thread's state.
/// Who stopped a queue pair: the guest (a broken ring) or the host (the port fd, epoll).
#[derive(Clone, Copy)]
enum Cause {
    Guest,
    Host,
}

struct QueuePair {
    epoll: Epoll,
    rx: Option<RxRing>,
    tx: Option<TxRing>,
    port: Port,
    port_watched: bool,
    counters: Arc<Counters>,
    on_fault: Box<dyn Fn(String) + Send>,
    on_host_failure: Box<dyn Fn(String) + Send>,
    pair_fault: Arc<PairFault>,
    fault: Option<String>,
    busy_poll: Duration,
}

impl QueuePair {
    fn run(mut self) -> WorkerReport {
        // Serve whatever is already there: kicks sent before start are not lost.
        let mut rx_more = self.rx.is_some();
        let mut tx_more = self.tx.is_some();
        let mut ready: Vec<Ready> = Vec::new();
        // Busy polling: until then the rings are served without waiting for a kick.
        let mut poll_until: Option<Instant> = None;
        loop {
            let polling = poll_until.is_some_and(|until| Instant::now() < until);
            if poll_until.is_some() && !polling {
                // The budget passed with nothing found: one more pass with kicks enabled (and
                // re-checked), then sleep.
                poll_until = None;
                rx_more |= self.rx.is_some();
                tx_more |= self.tx.is_some();
            }
            let busy = self.fault.is_none() && (rx_more || tx_more || polling);
            ready.clear();
            if let Err(e) = self.epoll.wait(if busy { 0 } else { -1 }, &mut ready) {
                self.fail(Cause::Host, format!("epoll_wait failed: {e}"));
                return self.report();
            }
            for r in &ready {
                match r.token {
                    CONTROL => return self.report(),
                    RX_KICK => {
                        if let Some(rx) = &self.rx {
                            eventfd::drain(&rx.ring.kick);
                        }
                        rx_more = true;
                    }
                    TX_KICK => {
                        if let Some(tx) = &self.tx {
                            eventfd::drain(&tx.ring.kick);
                        }
                        tx_more = true;
                    }
                    PORT if r.failed() => self.fail(Cause::Host, "the TAP's fd reported an error or hang-up (was the TAP deleted?)".into()),
                    PORT => rx_more = true,
                    _ => {}
                }
            }
            if self.fault.is_none() && self.pair_fault.is_tripped() {
                // Reported where the RX ring broke; this worker only stops.
                self.stop_serving("the queue pair's RX virtqueue broke".into());
            }
            if self.fault.is_some() {
                continue;
            }
            if polling {
                rx_more |= self.rx.is_some();
                tx_more |= self.tx.is_some();
            }
            let before = self.progress();
            if tx_more {
                tx_more = self.serve_tx(polling);
            }
            if rx_more {
                rx_more = self.serve_rx();
            }
            if !self.busy_poll.is_zero() && self.progress() != before {
                poll_until = Some(Instant::now() + self.busy_poll);
            } else if polling {
                // Nothing found this pass: let a thread sharing this CPU (another port's worker)
                // run rather than spin through its time slice. Alone on the CPU, this returns at once.
                // SAFETY: no arguments, no memory.
                unsafe { libc::sched_yield() };
            }
        }
    }

    /// Where the rings are (TX chains taken, RX chains filled): changes whenever a pass did work.
    fn progress(&self) -> (u16, u16) {
        let tx = self.tx.as_ref().map_or(0, |tx| tx.ring.queue.state().next_avail);
        let rx = self.rx.as_ref().map_or(0, |rx| rx.ring.queue.state().next_used);
        (tx, rx)
    }

    /// One TX batch; true if more work may be waiting. `polling`: leave kicks off when empty.
    fn serve_tx(&mut self, polling: bool) -> bool {
        let Some(tx) = &mut self.tx else { return false };
        match tx.process(&self.port, &self.counters, polling) {
            Ok(more) => more,
            Err(fault) => {
                self.fail_ring("TX", fault);
                false
            }
        }
    }

    /// One RX batch; true if more work may be waiting. Watches the port only while the guest has
    /// buffers for what it would deliver.
    fn serve_rx(&mut self) -> bool {
        let Some(rx) = &mut self.rx else { return false };
        let state = match rx.process(&self.port, &self.counters) {
            Ok(state) => state,
            Err(fault) => {
                self.fail_ring("RX", fault);
                return false;
            }
        };
        let watch = match state {
            RxState::Busy => return true,
            RxState::PortDrained => true,
            RxState::OutOfBuffers | RxState::Disabled => false,
        };
        if let Err(e) = self.watch_port(watch) {
            self.fail(Cause::Host, format!("cannot watch the port fd: {e}"));
        }
        false
    }

    fn watch_port(&mut self, watch: bool) -> io::Result<()> {
        let Some(port_fd) = self.port.readiness_fd() else { return Ok(()) };
        if watch != self.port_watched {
            self.epoll.modify(
                port_fd,
                if watch { READABLE } else { NOTHING },
                PORT,
            )?;
            self.port_watched = watch;
        }
        Ok(())
    }

    /// Stops serving the pair: one report (`on_fault` if the guest caused it, `on_host_failure`
    /// otherwise), then only the control fd is watched.
    fn fail(&mut self, cause: Cause, reason: String) {
        if self.fault.is_some() {
            return;
        }
        match cause {
            Cause::Guest => (self.on_fault)(reason.clone()),
            Cause::Host => (self.on_host_failure)(reason.clone()),
        }
        self.stop_serving(reason);
    }

    /// `fail` for a ring's fault: the guest's, unless the port's I/O failed.
    fn fail_ring(&mut self, ring: &str, fault: RingFault) {
        let cause = if matches!(fault, RingFault::Port(_)) { Cause::Host } else { Cause::Guest };
        self.fail(cause, format!("{ring} virtqueue: {fault}"));
    }

    /// Unregisters the kick and port fds: from now on only the control fd is watched.
    fn stop_serving(&mut self, reason: String) {
        // Unregistering cannot usefully fail (the fds were registered in start); a stale
        // registration would only cost wake-ups until stop().
        if let Some(rx) = &self.rx {
            let _ = self.epoll.delete(rx.ring.kick.as_raw_fd());
            if let Some(port_fd) = self.port.readiness_fd() {
                let _ = self.epoll.delete(port_fd);
            }
        }
        if let Some(tx) = &self.tx {
            let _ = self.epoll.delete(tx.ring.kick.as_raw_fd());
        }
        self.fault = Some(reason);
    }

    fn report(&self) -> WorkerReport {
        WorkerReport {
            rx: self.rx.as_ref().map(|rx| rx.ring.queue.state()),
            tx: self.tx.as_ref().map(|tx| tx.ring.queue.state()),
            fault: self.fault.clone(),
        }
    }
}
