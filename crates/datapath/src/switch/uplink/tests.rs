//! The stream uplink against a peer played by the test: QEMU's framing both ways, and a peer that
//! leaves and comes back. The host port's bound on frames queued for the control plane.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use super::super::tests::{count, frame, mac, port, BROADCAST};
use super::super::{PortKind, Switch, DEFAULT_AGING};
use super::{HostFrame, HostPort, StreamAddress, StreamUplink, MAX_HOST_PORT_BACKLOG};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// A listening peer on a fresh socket path (removed when dropped).
struct Peer {
    listener: UnixListener,
    path: std::path::PathBuf,
}

impl Peer {
    fn listen(name: &str) -> Peer {
        let path = std::env::temp_dir().join(format!("vu-uplink-{name}-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        Peer { listener: UnixListener::bind(&path).unwrap(), path }
    }

    fn address(&self) -> StreamAddress {
        StreamAddress::Unix(self.path.to_str().unwrap().to_string())
    }

    /// The next connection; fails the test if none comes within 5 s.
    fn accept(&self) -> UnixStream {
        self.listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.listener.accept() {
                Ok((conn, _)) => {
                    conn.set_nonblocking(false).unwrap();
                    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    return conn;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("no connection from the uplink: {e}"),
            }
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn send(conn: &mut UnixStream, frame: &[u8]) {
    conn.write_all(&(frame.len() as u32).to_be_bytes()).unwrap();
    conn.write_all(frame).unwrap();
}

fn receive(conn: &mut UnixStream) -> Vec<u8> {
    let mut len = [0u8; 4];
    conn.read_exact(&mut len).unwrap();
    let mut frame = vec![0u8; u32::from_be_bytes(len) as usize];
    conn.read_exact(&mut frame).unwrap();
    frame
}

fn wait_until(what: &str, timeout: Duration, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_stream_peer_that_leaves_is_connected_to_again_on_the_same_port() {
    let sw = Switch::new(1500, DEFAULT_AGING);
    let (b, b_log) = port(&sw, "b", 0);
    let peer = Peer::listen("again");
    let uplink = StreamUplink::connect(&sw, peer.address(), 0).unwrap();
    let mut first = peer.accept();
    send(&mut first, &frame(BROADCAST, mac(1), 60));
    wait_until("the peer's frame reached b", Duration::from_secs(5), || count(&b_log) == 1);

    drop(first);
    wait_until("the uplink noticed its peer left", Duration::from_secs(5), || !uplink.port.is_attached());
    sw.forward_bytes(&b, &frame(BROADCAST, mac(2), 60));
    let not_ready = uplink.port.counters.snapshot().into_iter().find(|(k, _)| *k == "dropNotReady").unwrap().1;
    assert_eq!(not_ready, 1, "a frame toward the gone peer is a counted drop");

    let mut second = peer.accept();
    wait_until("the uplink is attached again", Duration::from_secs(5), || uplink.port.is_attached());
    sw.forward_bytes(&b, &frame(BROADCAST, mac(2), 60));
    assert_eq!(receive(&mut second), frame(BROADCAST, mac(2), 60), "frames reach the new connection");
    send(&mut second, &frame(BROADCAST, mac(1), 60));
    wait_until("the new connection's frame reached b", Duration::from_secs(5), || count(&b_log) == 2);
    assert!(sw.ports().iter().any(|p| p.id == uplink.port.id), "same port, same id");
}

#[test]
fn removing_an_uplink_whose_peer_is_gone_stops_its_reconnect_attempts() {
    let sw = Switch::new(1500, DEFAULT_AGING);
    let peer = Peer::listen("gone");
    let uplink = StreamUplink::connect(&sw, peer.address(), 0).unwrap();
    drop(peer.accept());
    drop(peer); // nobody listens any more: every attempt fails
    wait_until("the uplink noticed its peer left", Duration::from_secs(5), || !uplink.port.is_attached());
    std::thread::sleep(Duration::from_millis(1500)); // past the first attempt, into the longer wait
    let started = Instant::now();
    drop(uplink);
    assert!(started.elapsed() < Duration::from_secs(1), "the reader thread stopped within one read timeout");
}

#[test]
fn removing_an_uplink_whose_peer_stopped_reading_closes_the_connection() {
    let sw = Switch::new(1500, DEFAULT_AGING);
    let (b, _) = port(&sw, "b", 0);
    let peer = Peer::listen("stalled");
    let uplink = StreamUplink::connect(&sw, peer.address(), 0).unwrap();
    let stalled = peer.accept();
    // More than the socket buffer holds: the uplink's writer thread blocks in write.
    for _ in 0..1000 {
        sw.forward_bytes(&b, &frame(BROADCAST, mac(2), 1500));
    }
    std::thread::sleep(Duration::from_millis(200));
    sw.remove_port(uplink.port.id);
    drop(uplink);
    // The peer never read a byte, yet it sees our end shut: nothing holds the socket any more.
    let mut pfd = libc::pollfd { fd: stalled.as_raw_fd(), events: libc::POLLRDHUP, revents: 0 };
    // SAFETY: one valid pollfd.
    let ready = unsafe { libc::poll(&mut pfd, 1, 5000) };
    assert!(ready == 1 && pfd.revents & libc::POLLRDHUP != 0, "the connection was not shut down");
}

#[test]
fn a_guest_flooding_arp_fills_the_host_ports_backlog_then_its_frames_are_dropped_and_counted() {
    let sw = Switch::new(1500, DEFAULT_AGING);
    let (guest, _) = port(&sw, "guest", 0);
    // The control plane holds on to every frame: it handles nothing meanwhile.
    let delivered: Arc<Mutex<Vec<HostFrame>>> = Arc::default();
    let held = delivered.clone();
    let host = HostPort::new(Box::new(move |frame| held.lock().unwrap().push(frame)));
    let host_port = sw.add_writer_port("host", PortKind::Host, 0, Box::new(host));
    let mut arp = frame(BROADCAST, mac(1), 60);
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    for _ in 0..MAX_HOST_PORT_BACKLOG + 10 {
        sw.forward_bytes(&guest, &arp);
    }
    assert_eq!(delivered.lock().unwrap().len(), MAX_HOST_PORT_BACKLOG);
    assert_eq!(host_port.counters.drop_port_error.load(Ordering::Relaxed), 10);
    // Once it handled one, one more goes through.
    drop(delivered.lock().unwrap().pop());
    sw.forward_bytes(&guest, &arp);
    assert_eq!(delivered.lock().unwrap().len(), MAX_HOST_PORT_BACKLOG);
    assert_eq!(host_port.counters.drop_port_error.load(Ordering::Relaxed), 10);
}

#[test]
fn the_host_port_is_told_which_port_each_frame_came_in_on() {
    let sw = Switch::new(1500, DEFAULT_AGING);
    let (a, _) = port(&sw, "a", 0);
    let (b, _) = port(&sw, "b", 0);
    let from: Arc<Mutex<Vec<u32>>> = Arc::default();
    let seen = from.clone();
    let host = HostPort::new(Box::new(move |frame| seen.lock().unwrap().push(frame.from)));
    sw.add_writer_port("host", PortKind::Host, 0, Box::new(host));
    let mut arp = frame(BROADCAST, mac(1), 60);
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    sw.forward_bytes(&a, &arp);
    arp[6..12].copy_from_slice(&mac(2));
    sw.forward_bytes(&b, &arp);
    assert_eq!(*from.lock().unwrap(), vec![a.id, b.id]);
}
