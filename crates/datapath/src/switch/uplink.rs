//! Ports that are not guests: a TAP uplink (the segment reaches the host or a host bridge), a
//! stream uplink speaking QEMU's socket-netdev framing (4-byte big-endian length, then the frame)
//! over UNIX or TCP, and the host port through which the control plane's DHCP server talks.
//!
//! Each uplink has a reader thread that forwards what arrives into the switch. Writes toward a
//! stream peer go through a bounded queue drained by a writer thread, so a slow peer costs drops
//! (counted), never a stalled sender. A stream peer that leaves is connected to again by the
//! reader thread, with a growing wait between attempts.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::frame::{EthernetHeader, Frame, ETH_P_ARP, ETH_P_IP};
use super::offload::Accepts;
use super::{PortId, PortKind, Switch, SwitchPort};
use crate::tap::{Tap, TapError};

/// Where a port's frames are written: an uplink or the host port.
pub trait FrameWriter: Send {
    /// Whether this port wants the frame at all (the host port only takes DHCP and ARP).
    fn accepts(&self, _eth: &EthernetHeader, _frame: &Frame) -> bool {
        true
    }
    /// Which offloaded frames it writes as they are (others reach it finished by the switch).
    fn takes_offloads(&self) -> Accepts {
        Accepts::NONE
    }
    /// Writes a frame that came in on port `from`.
    fn write_frame(&mut self, frame: &Frame, from: PortId) -> io::Result<()>;
}

#[derive(Debug)]
pub enum UplinkError {
    Tap(TapError),
    Connect { address: String, source: io::Error },
    Thread(io::Error),
}

impl UplinkError {
    pub fn code(&self) -> &'static str {
        match self {
            UplinkError::Tap(e) => e.code(),
            UplinkError::Connect { .. } => "VU_ERR_UPLINK_CONNECT",
            UplinkError::Thread(_) => "VU_ERR_UPLINK",
        }
    }
}

impl fmt::Display for UplinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UplinkError::Tap(e) => write!(f, "{e}"),
            UplinkError::Connect { address, source } => write!(f, "cannot connect to {address}: {source}"),
            UplinkError::Thread(e) => write!(f, "cannot start the uplink thread: {e}"),
        }
    }
}

/// Largest frame an uplink reads (with a vnet header for TAPs).
const READ_BUFFER: usize = 65536 + 12;
const VNET_HDR_LEN: usize = 12;
/// Frames queued toward a stream peer before further ones are dropped.
const STREAM_QUEUE_FRAMES: usize = 1024;
/// How often a reader blocked in a read looks at its stop flag.
const READ_TIMEOUT: Duration = Duration::from_millis(200);

/// An uplink's reader thread; stopping it (drop) waits for the thread.
pub struct UplinkThread {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for UplinkThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn spawn_reader(name: &str, body: impl FnOnce(Arc<AtomicBool>) + Send + 'static) -> Result<UplinkThread, UplinkError> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::Builder::new().name(name.into()).spawn(move || body(flag)).map_err(UplinkError::Thread)?;
    Ok(UplinkThread { stop, thread: Some(thread) })
}

/// `--uplink tap:NAME`: a TAP (persistent and owned by the user, or created when privileged).
pub struct TapUplink {
    pub port: Arc<SwitchPort>,
    _reader: UplinkThread,
}

struct TapWriter(Arc<Tap>);

impl FrameWriter for TapWriter {
    /// The kernel finishes whatever a virtio-net header asks for (IFF_VNET_HDR).
    fn takes_offloads(&self) -> Accepts {
        Accepts::ALL
    }

    fn write_frame(&mut self, frame: &Frame, _from: PortId) -> io::Result<()> {
        let mut header = [0u8; VNET_HDR_LEN];
        header.copy_from_slice(&frame.offload().to_le_bytes()[..VNET_HDR_LEN]);
        let bytes = frame.to_vec();
        let iov = [
            libc::iovec { iov_base: header.as_ptr() as *mut libc::c_void, iov_len: VNET_HDR_LEN },
            libc::iovec { iov_base: bytes.as_ptr() as *mut libc::c_void, iov_len: bytes.len() },
        ];
        let fd = self.0.queue_fd(0).expect("one queue");
        // SAFETY: both iovecs point at live local buffers of the given lengths.
        let n = unsafe { libc::writev(fd.as_raw_fd(), iov.as_ptr(), 2) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl TapUplink {
    pub fn open(switch: &Arc<Switch>, name: &str, vlan: u16) -> Result<TapUplink, UplinkError> {
        let tap = Tap::open(name, 1).map_err(UplinkError::Tap)?;
        tap.set_vnet_hdr_len(VNET_HDR_LEN).map_err(UplinkError::Tap)?;
        tap.set_offloads(0).map_err(UplinkError::Tap)?;
        let tap = Arc::new(tap);
        let port = switch.add_writer_port(&format!("tap:{}", tap.name()), PortKind::Tap, vlan, Box::new(TapWriter(tap.clone())));
        let (reader_switch, reader_port) = (switch.clone(), port.clone());
        let reader = spawn_reader("vu-uplink-tap", move |stop| {
            let fd = tap.queue_fd(0).expect("one queue");
            let mut buf = vec![0u8; READ_BUFFER];
            while !stop.load(Ordering::Relaxed) {
                let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
                // SAFETY: one valid pollfd.
                if unsafe { libc::poll(&mut pfd, 1, READ_TIMEOUT.as_millis() as i32) } <= 0 {
                    continue;
                }
                // SAFETY: `buf` has `buf.len()` writable bytes.
                let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
                let Ok(n) = usize::try_from(n) else {
                    if matches!(io::Error::last_os_error().kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) {
                        continue;
                    }
                    // The TAP is gone (deleted: EBADFD) or broken: frames toward it count as drops
                    // from now on and `ctl ports` shows the port broken until the uplink is removed.
                    *reader_port.sink() = super::Sink::Detached;
                    return;
                };
                if n > VNET_HDR_LEN {
                    reader_switch.forward_bytes(&reader_port, &buf[VNET_HDR_LEN..n]);
                }
            }
        })?;
        Ok(TapUplink { port, _reader: reader })
    }
}

/// `--uplink stream:unix:PATH` or `stream:tcp:HOST:PORT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamAddress {
    Unix(String),
    Tcp(String),
}

impl fmt::Display for StreamAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamAddress::Unix(path) => write!(f, "unix:{path}"),
            StreamAddress::Tcp(addr) => write!(f, "tcp:{addr}"),
        }
    }
}

trait Stream: Read + Write + Send {
    fn try_clone_box(&self) -> io::Result<Box<dyn Stream>>;
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
    /// Both directions, for every clone: a writer blocked on a peer that stopped reading fails.
    fn shutdown(&self) -> io::Result<()>;
}

impl Stream for UnixStream {
    fn try_clone_box(&self) -> io::Result<Box<dyn Stream>> {
        Ok(Box::new(self.try_clone()?))
    }
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        UnixStream::set_read_timeout(self, timeout)
    }
    fn shutdown(&self) -> io::Result<()> {
        UnixStream::shutdown(self, Shutdown::Both)
    }
}

impl Stream for TcpStream {
    fn try_clone_box(&self) -> io::Result<Box<dyn Stream>> {
        Ok(Box::new(self.try_clone()?))
    }
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }
    fn shutdown(&self) -> io::Result<()> {
        TcpStream::shutdown(self, Shutdown::Both)
    }
}

pub struct StreamUplink {
    pub port: Arc<SwitchPort>,
    _reader: UplinkThread,
}

/// The first wait before connecting again to a stream peer that left; doubled after every failed
/// attempt up to RECONNECT_MAX, back to this after a success.
const RECONNECT_FIRST: Duration = Duration::from_secs(1);
const RECONNECT_MAX: Duration = Duration::from_secs(30);
/// How long one TCP connection attempt may take (a UNIX connect answers at once).
const TCP_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

struct StreamWriter(SyncSender<Vec<u8>>);

impl FrameWriter for StreamWriter {
    fn write_frame(&mut self, frame: &Frame, _from: PortId) -> io::Result<()> {
        let mut message = Vec::with_capacity(4 + frame.len());
        message.extend_from_slice(&(frame.len() as u32).to_be_bytes());
        message.extend_from_slice(&frame.to_vec());
        match self.0.try_send(message) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(io::Error::new(io::ErrorKind::WouldBlock, "stream peer is not keeping up")),
            Err(TrySendError::Disconnected(_)) => Err(io::Error::new(io::ErrorKind::BrokenPipe, "stream peer is gone")),
        }
    }
}

impl StreamAddress {
    fn connect(&self) -> io::Result<Box<dyn Stream>> {
        match self {
            StreamAddress::Unix(path) => Ok(Box::new(UnixStream::connect(path)?)),
            StreamAddress::Tcp(addr) => {
                let stream = connect_tcp(addr)?;
                let _ = stream.set_nodelay(true);
                Ok(Box::new(stream))
            }
        }
    }
}

/// The first of `addr`'s addresses that accepts within TCP_CONNECT_TIMEOUT (else the last error).
fn connect_tcp(addr: &str) -> io::Result<TcpStream> {
    let mut last_error = io::Error::new(io::ErrorKind::NotFound, "the name resolves to no address");
    for candidate in addr.to_socket_addrs()? {
        match TcpStream::connect_timeout(&candidate, TCP_CONNECT_TIMEOUT) {
            Ok(stream) => return Ok(stream),
            Err(e) => last_error = e,
        }
    }
    Err(last_error)
}

/// One connection to the stream peer: its read half, and the writer its port's frames go to
/// (a thread draining a bounded queue into the write half, ending when the writer is dropped).
fn open_stream(address: &StreamAddress) -> io::Result<(Box<dyn Stream>, StreamWriter)> {
    let stream = address.connect()?;
    let mut write_half = stream.try_clone_box()?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    let (queue, frames) = sync_channel::<Vec<u8>>(STREAM_QUEUE_FRAMES);
    std::thread::Builder::new().name("vu-uplink-stream-tx".into()).spawn(move || {
        for message in frames {
            if write_half.write_all(&message).is_err() {
                break;
            }
        }
    })?;
    Ok((stream, StreamWriter(queue)))
}

impl StreamUplink {
    /// Connects to the peer (an error if it cannot), then serves it; when the peer leaves, the
    /// port is detached (frames toward it count as drops) and the reader thread connects again,
    /// RECONNECT_FIRST after, then doubling up to RECONNECT_MAX, until it succeeds or the uplink
    /// is removed. The port keeps its id, name and counters across reconnections.
    pub fn connect(switch: &Arc<Switch>, address: StreamAddress, vlan: u16) -> Result<StreamUplink, UplinkError> {
        let (stream, writer) =
            open_stream(&address).map_err(|source| UplinkError::Connect { address: address.to_string(), source })?;
        let port = switch.add_writer_port(&format!("stream:{address}"), PortKind::Stream, vlan, Box::new(writer));
        let (reader_switch, reader_port) = (switch.clone(), port.clone());
        let reader = spawn_reader("vu-uplink-stream", move |stop| {
            let mut buf = vec![0u8; READ_BUFFER];
            let mut stream = stream;
            loop {
                forward_until_gone(&reader_switch, &reader_port, &mut *stream, &mut buf, &stop);
                // Ends this connection's writer thread too, also one blocked on a peer that stopped
                // reading (it would otherwise hold the socket for the life of the process).
                let _ = stream.shutdown();
                // The peer left: frames to this port now count as drops until it is back.
                *reader_port.sink() = super::Sink::Detached;
                match reconnect(&address, &stop) {
                    Some((next, writer)) => {
                        stream = next;
                        reader_port.attach_writer(Box::new(writer));
                    }
                    None => return, // removed
                }
            }
        })?;
        Ok(StreamUplink { port, _reader: reader })
    }
}

/// Forwards the peer's frames into the switch until it leaves (or sends what is not QEMU's
/// framing) or `stop` is set.
fn forward_until_gone(switch: &Switch, port: &SwitchPort, stream: &mut dyn Stream, buf: &mut [u8], stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let mut len = [0u8; 4];
        if !matches!(read_full(stream, &mut len, stop), Ok(true)) {
            return;
        }
        let n = u32::from_be_bytes(len) as usize;
        if n > buf.len() {
            return; // not QEMU's framing: give up on this connection
        }
        match read_full(stream, &mut buf[..n], stop) {
            Ok(true) => switch.forward_bytes(port, &buf[..n]),
            _ => return,
        }
    }
}

/// Connects to `address` again, waiting between attempts (see `StreamUplink::connect`); None
/// once `stop` is set.
fn reconnect(address: &StreamAddress, stop: &AtomicBool) -> Option<(Box<dyn Stream>, StreamWriter)> {
    let mut wait = RECONNECT_FIRST;
    loop {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            std::thread::sleep(READ_TIMEOUT.min(deadline.saturating_duration_since(Instant::now())));
        }
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        if let Ok(connected) = open_stream(address) {
            return Some(connected);
        }
        wait = (wait * 2).min(RECONNECT_MAX);
    }
}

/// Fills `buf` from a stream with a read timeout; Ok(false) on a clean end or a stop request.
fn read_full(stream: &mut dyn Stream, buf: &mut [u8], stop: &AtomicBool) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        if stop.load(Ordering::Relaxed) {
            return Ok(false);
        }
        match stream.read(&mut buf[filled..]) {
            Ok(0) => return Ok(false),
            Ok(n) => filled += n,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Frames the host port may have handed to the control plane and not yet seen handled.
pub const MAX_HOST_PORT_BACKLOG: usize = 1024;

/// The control plane's port: frames addressed to it that it cares about (DHCP to a server, ARP)
/// go to `deliver` (the JavaScript DHCP server); its replies come back through `Switch::forward_bytes`.
///
/// **hostile** (guest): any guest can send ARP as fast as its ring goes, faster than JavaScript
/// answers. Every `HostFrame` handed to `deliver` holds a place in the port's backlog until it is
/// dropped (handled); with MAX_HOST_PORT_BACKLOG outstanding, further frames are dropped and
/// counted on the port, so a flood costs drops, not the process's memory.
pub struct HostPort {
    deliver: Box<dyn Fn(HostFrame) + Send>,
    backlog: Arc<AtomicUsize>,
}

impl HostPort {
    pub fn new(deliver: Box<dyn Fn(HostFrame) + Send>) -> HostPort {
        HostPort { deliver, backlog: Arc::default() }
    }
}

/// A frame for the control plane; dropping it gives its place in the host port's backlog back.
pub struct HostFrame {
    pub bytes: Vec<u8>,
    /// The port it came in on (the DHCP server limits leases per guest port).
    pub from: PortId,
    backlog: Arc<AtomicUsize>,
}

impl Drop for HostFrame {
    fn drop(&mut self) {
        self.backlog.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The UDP port of DHCP servers (RFC 2131), which the host port answers on.
pub const DHCP_SERVER_PORT: u16 = 67;

impl FrameWriter for HostPort {
    fn accepts(&self, eth: &EthernetHeader, frame: &Frame) -> bool {
        match eth.ether_type {
            ETH_P_ARP => true,
            ETH_P_IP => matches!(frame.ipv4_udp_ports(), Some((_, DHCP_SERVER_PORT))),
            _ => false,
        }
    }

    fn write_frame(&mut self, frame: &Frame, from: PortId) -> io::Result<()> {
        if self.backlog.fetch_add(1, Ordering::AcqRel) >= MAX_HOST_PORT_BACKLOG {
            self.backlog.fetch_sub(1, Ordering::AcqRel);
            return Err(io::Error::new(io::ErrorKind::WouldBlock, "the control plane is not keeping up"));
        }
        (self.deliver)(HostFrame { bytes: frame.to_vec(), from, backlog: self.backlog.clone() });
        Ok(())
    }
}

/// Any non-guest port, owned by whoever added it; dropping it stops its threads. The switch port
/// itself is removed with `Switch::remove_port`.
pub enum Uplink {
    Tap(TapUplink),
    Stream(StreamUplink),
    Host(Arc<SwitchPort>),
}

impl Uplink {
    pub fn port(&self) -> &Arc<SwitchPort> {
        match self {
            Uplink::Tap(u) => &u.port,
            Uplink::Stream(u) => &u.port,
            Uplink::Host(port) => port,
        }
    }
}

#[cfg(test)]
mod tests;
