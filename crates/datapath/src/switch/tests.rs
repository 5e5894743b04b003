//! Forwarding behaviour through recording ports: learning, flooding, aging, VLAN separation,
//! malformed frames, counters.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;

pub(super) type Log = Arc<Mutex<Vec<Vec<u8>>>>;

struct Recorder(Log);

impl FrameWriter for Recorder {
    fn write_frame(&mut self, frame: &Frame, _from: PortId) -> io::Result<()> {
        self.0.lock().unwrap().push(frame.to_vec());
        Ok(())
    }
}

pub(super) fn mac(n: u8) -> Mac {
    [2, 0, 0, 0, 0, n]
}

pub(super) const BROADCAST: Mac = [0xff; 6];

pub(super) fn frame(dst: Mac, src: Mac, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    f
}

pub(super) fn port(switch: &Switch, name: &str, vlan: u16) -> (Arc<SwitchPort>, Log) {
    let log: Log = Arc::default();
    (switch.add_writer_port(name, PortKind::Stream, vlan, Box::new(Recorder(log.clone()))), log)
}

pub(super) fn count(log: &Log) -> usize {
    log.lock().unwrap().len()
}

#[test]
fn unknown_unicast_floods_then_learned_unicast_goes_to_one_port() {
    let sw = Switch::new(1500, DEFAULT_AGING);
    let (a, a_log) = port(&sw, "a", 0);
    let (b, b_log) = port(&sw, "b", 0);
    let (_c, c_log) = port(&sw, "c", 0);
    sw.forward_bytes(&a, &frame(mac(2), mac(1), 60));
    assert_eq!((count(&a_log), count(&b_log), count(&c_log)), (0, 1, 1), "flooded, not back to the sender");
    sw.forward_bytes(&b, &frame(mac(1), mac(2), 60));
    assert_eq!((count(&a_log), count(&b_log), count(&c_log)), (1, 1, 1), "a was learned: only a gets it");
    sw.forward_bytes(&a, &frame(mac(2), mac(1), 60));
    assert_eq!((count(&a_log), count(&b_log), count(&c_log)), (1, 2, 1), "b was learned");
}

#[test]
fn broadcast_and_multicast_flood() {
    let sw = Switch::new(1500, DEFAULT_AGING);
    let (a, _) = port(&sw, "a", 0);
    let (_b, b_log) = port(&sw, "b", 0);
    let (_c, c_log) = port(&sw, "c", 0);
    sw.forward_bytes(&a, &frame(BROADCAST, mac(1), 60));
    sw.forward_bytes(&a, &frame([0x01, 0, 0x5e, 0, 0, 1], mac(1), 60));
    assert_eq!((count(&b_log), count(&c_log)), (2, 2));
}

#[test]
fn aged_entries_flood_again() {
    let sw = Switch::new(1500, Duration::from_millis(30));
    let (a, _) = port(&sw, "a", 0);
    let (b, _) = port(&sw, "b", 0);
    let (_c, c_log) = port(&sw, "c", 0);
    sw.forward_bytes(&a, &frame(BROADCAST, mac(1), 60));
    sw.forward_bytes(&b, &frame(mac(1), mac(2), 60));
    assert_eq!(count(&c_log), 1, "only the broadcast");
    std::thread::sleep(Duration::from_millis(60));
    sw.forward_bytes(&b, &frame(mac(1), mac(2), 60));
    assert_eq!(count(&c_log), 2, "mac(1) aged out: flooded");
}

#[test]
fn vlans_do_not_leak() {
    let sw = Switch::new(1500, DEFAULT_AGING);
    let (a, _) = port(&sw, "a", 10);
    let (_b, b_log) = port(&sw, "b", 10);
    let (_c, c_log) = port(&sw, "c", 20);
    let (_d, d_log) = port(&sw, "d", 0);
    sw.forward_bytes(&a, &frame(BROADCAST, mac(1), 60));
    assert_eq!((count(&b_log), count(&c_log), count(&d_log)), (1, 0, 0));
}

#[test]
fn an_access_port_drops_and_counts_tagged_frames_the_default_segment_passes_them() {
    let sw = Switch::new(1500, DEFAULT_AGING);
    let (a, _) = port(&sw, "a", 10);
    let (_b, b_log) = port(&sw, "b", 10);
    let mut tagged = frame(BROADCAST, mac(1), 64);
    tagged[12..16].copy_from_slice(&[0x81, 0x00, 0x00, 20]); // 802.1Q, VLAN 20
    sw.forward_bytes(&a, &tagged);
    assert_eq!(count(&b_log), 0, "a tag from an access port goes nowhere");
    assert_eq!(a.counters.drop_tagged.load(std::sync::atomic::Ordering::Relaxed), 1);
    sw.forward_bytes(&a, &frame(BROADCAST, mac(1), 60));
    assert_eq!(count(&b_log), 1, "untagged frames still cross");

    let (c, _) = port(&sw, "c", 0);
    let (_d, d_log) = port(&sw, "d", 0);
    sw.forward_bytes(&c, &tagged);
    assert_eq!(count(&d_log), 1, "the default segment (VLAN 0) carries tagged frames as they are");
}

#[test]
fn runts_and_oversized_frames_are_dropped_and_counted() {
    let sw = Switch::new(1500, DEFAULT_AGING);
    let (a, _) = port(&sw, "a", 0);
    let (_b, b_log) = port(&sw, "b", 0);
    sw.forward_bytes(&a, &[0xff; 13]);
    sw.forward_bytes(&a, &frame(BROADCAST, mac(1), 1519));
    sw.forward_bytes(&a, &frame(BROADCAST, mac(1), 1518));
    assert_eq!(count(&b_log), 1);
    let counters: std::collections::HashMap<_, _> = a.counters.snapshot().into_iter().collect();
    assert_eq!(counters["dropRunt"], 1);
    assert_eq!(counters["dropTooBig"], 1);
    assert_eq!(counters["fromPortFrames"], 3);
}

#[test]
fn a_removed_port_gets_nothing_and_its_stations_are_forgotten() {
    let sw = Switch::new(1500, DEFAULT_AGING);
    let (a, _) = port(&sw, "a", 0);
    let (b, b_log) = port(&sw, "b", 0);
    let (_c, c_log) = port(&sw, "c", 0);
    sw.forward_bytes(&b, &frame(BROADCAST, mac(2), 60));
    sw.remove_port(b.id);
    sw.forward_bytes(&a, &frame(mac(2), mac(1), 60));
    assert_eq!(count(&b_log), 0);
    assert_eq!(count(&c_log), 2, "the broadcast, then mac(2) unknown again: flooded");
    assert!(sw.mac_entries().iter().all(|e| e.port != b.id));
}

#[test]
fn a_detached_guest_port_counts_not_ready_and_never_blocks_the_sender() {
    let sw = Switch::new(1500, DEFAULT_AGING);
    let (a, _) = port(&sw, "a", 0);
    let guest = sw.add_port("guest", PortKind::VhostUser, 0);
    let (_c, c_log) = port(&sw, "c", 0);
    for _ in 0..1000 {
        sw.forward_bytes(&a, &frame(BROADCAST, mac(1), 60));
    }
    let counters: std::collections::HashMap<_, _> = guest.counters.snapshot().into_iter().collect();
    assert_eq!(counters["dropNotReady"], 1000);
    assert_eq!(count(&c_log), 1000);
}

#[test]
fn a_port_is_attached_only_while_its_frames_can_go_somewhere() {
    let sw = Switch::new(1500, DEFAULT_AGING);
    let guest = sw.add_port("guest", PortKind::VhostUser, 0);
    assert!(!guest.is_attached(), "no RX ring yet");
    let (uplink, _log) = port(&sw, "uplink", 0);
    assert!(uplink.is_attached());
    sw.remove_port(uplink.id);
    assert!(!uplink.is_attached(), "a removed port lets go of its writer");
}

/// A sender that keeps its state across frames, as a guest's TX worker does.
fn send(sw: &Switch, sender: &mut Sender, from: &SwitchPort, bytes: &[u8]) {
    let iov = [libc::iovec { iov_base: bytes.as_ptr() as *mut libc::c_void, iov_len: bytes.len() }];
    // SAFETY: `bytes` is a live slice for the whole call.
    sw.forward(from, &unsafe { Frame::new(&iov) }, sender);
}

/// Ports a, b, c; station mac(9) learned on b (its broadcast reached c).
fn station_on_b() -> (Arc<Switch>, [Arc<SwitchPort>; 3], Log, Log) {
    let sw = Switch::new(1500, DEFAULT_AGING);
    let (a, _) = port(&sw, "a", 0);
    let (b, b_log) = port(&sw, "b", 0);
    let (c, c_log) = port(&sw, "c", 0);
    sw.forward_bytes(&b, &frame(BROADCAST, mac(9), 60));
    (sw, [a, b, c], b_log, c_log)
}

#[test]
fn a_sender_memo_follows_a_station_that_moves() {
    let (sw, [a, _b, c], b_log, c_log) = station_on_b();
    let mut sender = Sender::default();
    for _ in 0..3 {
        send(&sw, &mut sender, &a, &frame(mac(9), mac(1), 60));
    }
    assert_eq!((count(&b_log), count(&c_log)), (3, 1), "unicast to b, remembered");
    sw.forward_bytes(&c, &frame(BROADCAST, mac(9), 60)); // mac(9) moves to c
    send(&sw, &mut sender, &a, &frame(mac(9), mac(1), 60));
    assert_eq!((count(&b_log), count(&c_log)), (4, 2), "b got c's broadcast; a's next frame went to c");
    sender.publish(&a);
}

#[test]
fn a_sender_memo_never_delivers_to_a_removed_port_or_a_flapping_station_s_old_port() {
    let (sw, [a, b, c], b_log, c_log) = station_on_b();
    let mut sender = Sender::default();
    send(&sw, &mut sender, &a, &frame(mac(9), mac(1), 60));
    sw.remove_port(b.id);
    send(&sw, &mut sender, &a, &frame(mac(9), mac(1), 60));
    assert_eq!(count(&b_log), 1, "nothing after removal");
    assert_eq!(count(&c_log), 2, "the broadcast, then mac(9) unknown: flooded");
    // One MAC sending from two ports (testpmd's flowgen does this): the table follows every move.
    let mut from_c = Sender::default();
    for round in 0..5 {
        send(&sw, &mut sender, &a, &frame(mac(7), mac(5), 60));
        send(&sw, &mut from_c, &c, &frame(mac(7), mac(5), 60));
        assert_eq!(sw.mac_entries().iter().find(|e| e.mac == mac(5)).map(|e| e.port), Some(c.id), "round {round}");
        send(&sw, &mut sender, &a, &frame(mac(5), mac(1), 60));
    }
    assert_eq!(count(&c_log), 2 + 5 + 5, "a's frames to mac(7) flood to c, its frames to mac(5) follow the station to c");
}

#[test]
fn a_sender_memo_of_an_unknown_destination_ends_when_the_station_appears() {
    let (sw, [a, _b, c], b_log, c_log) = station_on_b();
    let mut sender = Sender::default();
    for _ in 0..3 {
        send(&sw, &mut sender, &a, &frame(mac(8), mac(1), 60));
    }
    assert_eq!((count(&b_log), count(&c_log)), (3, 4), "mac(8) unknown: flooded every time");
    sw.forward_bytes(&c, &frame(BROADCAST, mac(8), 60)); // mac(8) appears on c
    send(&sw, &mut sender, &a, &frame(mac(8), mac(1), 60));
    assert_eq!((count(&b_log), count(&c_log)), (4, 5), "b got c's broadcast; a's next frame went to c only");
    sender.publish(&a);
}

#[test]
fn a_sender_counts_its_frames_on_its_port_when_it_publishes() {
    let sw = Switch::new(1500, DEFAULT_AGING);
    let (a, _) = port(&sw, "a", 0);
    let (_b, _) = port(&sw, "b", 0);
    let mut sender = Sender::default();
    for _ in 0..10 {
        send(&sw, &mut sender, &a, &frame(BROADCAST, mac(1), 100));
    }
    let from_frames = |p: &SwitchPort| p.counters.snapshot().into_iter().find(|(k, _)| *k == "fromPortFrames").unwrap().1;
    assert_eq!(from_frames(&a), 0, "counted once per batch");
    sender.publish(&a);
    assert_eq!(from_frames(&a), 10);
}

pub(super) fn drops_spoofed(port: &SwitchPort) -> u64 {
    port.counters.drop_spoofed.load(std::sync::atomic::Ordering::Relaxed)
}

#[test]
fn a_port_locked_to_a_mac_sends_only_from_it() {
    let sw = Switch::new(1500, DEFAULT_AGING);
    let (a, _) = port(&sw, "a", 0);
    let (_b, b_log) = port(&sw, "b", 0);
    sw.lock_mac(a.id, mac(1));
    sw.forward_bytes(&a, &frame(BROADCAST, mac(1), 60));
    sw.forward_bytes(&a, &frame(BROADCAST, mac(9), 60));
    assert_eq!(count(&b_log), 1, "only the frame from the locked MAC crosses");
    assert_eq!(drops_spoofed(&a), 1);
    assert_eq!(sw.locked_mac(a.id), Some(mac(1)));
}

#[test]
fn no_other_port_sends_from_a_locked_mac_nor_takes_its_traffic() {
    let sw = Switch::new(1500, DEFAULT_AGING);
    let (a, a_log) = port(&sw, "a", 0);
    let (b, b_log) = port(&sw, "b", 0);
    let (c, _) = port(&sw, "c", 0);
    sw.lock_mac(a.id, mac(1));
    sw.forward_bytes(&a, &frame(BROADCAST, mac(1), 60));
    // b claims a's MAC, by a frame and by an announcement (a RARP after a migration).
    sw.forward_bytes(&b, &frame(BROADCAST, mac(1), 60));
    sw.announce(&b, mac(1));
    assert_eq!(drops_spoofed(&b), 2);
    assert_eq!(count(&a_log), 0, "b's frame from a's MAC went nowhere");
    sw.forward_bytes(&c, &frame(mac(1), mac(3), 60));
    assert_eq!((count(&a_log), count(&b_log)), (1, 1), "a's traffic still goes to a only (b saw a's broadcast)");
    // Other MACs are as free as ever.
    sw.forward_bytes(&b, &frame(BROADCAST, mac(2), 60));
    assert_eq!(drops_spoofed(&b), 2);
}

#[test]
fn two_ports_locked_to_one_mac_both_send_from_it_as_a_migrating_guest_does() {
    let sw = Switch::new(1500, DEFAULT_AGING);
    let (source, source_log) = port(&sw, "vm1-source", 0);
    let (destination, destination_log) = port(&sw, "vm1-destination", 0);
    let (peer, _) = port(&sw, "peer", 0);
    sw.lock_mac(source.id, mac(1));
    sw.lock_mac(destination.id, mac(1));
    sw.forward_bytes(&source, &frame(BROADCAST, mac(1), 60));
    sw.announce(&destination, mac(1));
    sw.forward_bytes(&peer, &frame(mac(1), mac(3), 60));
    assert_eq!((count(&source_log), count(&destination_log)), (0, 2), "the station moved to the destination");
    assert_eq!(drops_spoofed(&destination), 0);
}

#[test]
fn a_lock_added_while_a_port_sends_applies_from_its_next_frame_and_ends_with_the_locked_port() {
    let sw = Switch::new(1500, DEFAULT_AGING);
    let (a, _) = port(&sw, "a", 0);
    let (b, _) = port(&sw, "b", 0);
    let (c, c_log) = port(&sw, "c", 0);
    sw.lock_mac(c.id, mac(3)); // locks exist from the start: b's sender remembers its answer
    let bytes = frame(BROADCAST, mac(1), 60);
    let iov = [libc::iovec { iov_base: bytes.as_ptr() as *mut libc::c_void, iov_len: bytes.len() }];
    // SAFETY: `bytes` outlives every use of the frame below.
    let frame_from_mac1 = unsafe { Frame::new(&iov) };
    // One sender across frames, as a guest's TX worker keeps it: its memo must not outlive a lock.
    let mut sender = Sender::default();
    sw.forward(&b, &frame_from_mac1, &mut sender);
    sw.lock_mac(a.id, mac(1));
    sw.forward(&b, &frame_from_mac1, &mut sender);
    sender.publish(&b);
    assert_eq!((count(&c_log), drops_spoofed(&b)), (1, 1));
    sw.remove_port(a.id);
    sw.forward(&b, &frame_from_mac1, &mut sender);
    sender.publish(&b);
    assert_eq!((count(&c_log), drops_spoofed(&b)), (2, 1), "the lock went with its port");
}

#[test]
fn a_reserved_mac_is_nobodys_until_a_port_locks_it_and_free_once_released() {
    let sw = Switch::new(1500, DEFAULT_AGING);
    let (a, _) = port(&sw, "a", 0);
    let (b, b_log) = port(&sw, "b", 0);
    // A named port whose guest is away keeps its MAC reserved; here twice (two named ports).
    sw.reserve_mac(mac(1));
    sw.reserve_mac(mac(1));
    sw.forward_bytes(&a, &frame(BROADCAST, mac(1), 60));
    assert_eq!((count(&b_log), drops_spoofed(&a)), (0, 1));
    sw.lock_mac(a.id, mac(1));
    sw.forward_bytes(&a, &frame(BROADCAST, mac(1), 60));
    assert_eq!(count(&b_log), 1, "the port locked to it sends from it");
    sw.remove_port(a.id);
    sw.release_mac(mac(1));
    sw.forward_bytes(&b, &frame(BROADCAST, mac(1), 60));
    assert_eq!(drops_spoofed(&b), 1, "still reserved once");
    sw.release_mac(mac(1));
    sw.forward_bytes(&b, &frame(BROADCAST, mac(1), 60));
    assert_eq!(drops_spoofed(&b), 1, "released: anybody's again");
}
