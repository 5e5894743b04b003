//! A macvtap device node (`--tap /dev/tapN`) as the port, against the kernel's macvtap: it sits on
//! one end of a veth pair, and the other end plays the network. Two queues (the node opened twice),
//! as with `--queues 2`; and a passthru macvtap as a switch uplink (`--uplink tap:/dev/tapN`).

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use datapath::switch::{Frame, FrameWriter, PortId, PortKind, Switch, TapUplink};
use datapath::{Tap, Worker};
use vring::features::*;

const WAIT: Duration = Duration::from_secs(3);
/// The veth end the macvtap sits on, and the end that plays the network.
const LOWER: &str = "vumvlow";
const NETWORK: &str = "vumvnet";
const MACVTAP: &str = "vumvtap";
/// Flows sent from the network: with 16, both queues get some (all on one: 2 in 65536).
const FLOWS: usize = 16;

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("run ip");
    assert!(status.success(), "ip {}: {status}", args.join(" "));
}

/// Creates the veth pair and a macvtap in `mode` with the guest's MAC on it (inside the calling
/// thread's network namespace); returns the macvtap's device node.
fn macvtap_node(mode: &str) -> String {
    // The node is named after the ifindex, and /dev is shared by every namespace: an index unique
    // to this process and call, not the namespace's next one (a parallel test would have it too).
    static CALLS: AtomicU32 = AtomicU32::new(0);
    let ifindex = 1_000_000 + (std::process::id() % 100_000) * 16 + CALLS.fetch_add(1, Ordering::Relaxed);
    ip(&["link", "add", LOWER, "type", "veth", "peer", "name", NETWORK]);
    let mac = GUEST_MAC.map(|b| format!("{b:02x}")).join(":");
    ip(&["link", "add", "link", LOWER, "name", MACVTAP, "index", &ifindex.to_string(), "address", &mac, "type", "macvtap", "mode", mode]);
    for name in [LOWER, NETWORK, MACVTAP] {
        ip(&["link", "set", name, "up"]);
    }
    let node = format!("/dev/tap{ifindex}");
    wait_until("the macvtap's device node", || std::path::Path::new(&node).exists());
    node
}

/// An IPv4/UDP frame to the guest from source port 1000 + `flow` (its own flow hash).
fn udp_frame(flow: u16) -> Vec<u8> {
    let payload = 64u16;
    let mut f = Vec::new();
    f.extend_from_slice(&GUEST_MAC);
    f.extend_from_slice(&HOST_MAC);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    f.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    let ip_len = 20 + 8 + payload;
    f[16..18].copy_from_slice(&ip_len.to_be_bytes());
    f.extend_from_slice(&(1000 + flow).to_be_bytes());
    f.extend_from_slice(&9u16.to_be_bytes());
    f.extend_from_slice(&(8 + payload).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend((0..payload).map(|i| i as u8 ^ flow as u8));
    f
}

#[test]
fn a_macvtap_device_node_carries_frames_both_ways_on_each_queue() {
    in_fresh_netns(|| {
        let node = macvtap_node("bridge");
        let tap = Arc::new(Tap::open(&node, 2).expect("open the macvtap node twice (two queues)"));
        assert_eq!(tap.name(), MACVTAP, "the interface's name, from TUNGETIFF");
        assert_eq!(tap.queue_count(), 2);
        let bit = |b: u32| 1u64 << b;
        let offloads = tap
            .set_offloads(bit(VIRTIO_NET_F_GUEST_CSUM) | bit(VIRTIO_NET_F_GUEST_TSO4) | bit(VIRTIO_NET_F_GUEST_TSO6))
            .expect("TUNSETOFFLOAD on a macvtap");
        assert_eq!(offloads.refused_uso, 0);

        let mut rigs: Vec<Rig> = (0..2).map(|queue| Rig::with_network(PLAIN, tap.clone(), queue, NETWORK)).collect();
        let posted: Vec<_> = rigs.iter_mut().map(|rig| rig.guest_post_rx(&[&[2048u32][..]; FLOWS])).collect();
        let workers: Vec<Worker> = rigs.iter().map(Rig::start).collect();

        for (queue, rig) in rigs.iter_mut().enumerate() {
            let sent = test_frame([0xff; 6], GUEST_MAC, 200, queue as u8);
            rig.guest_send(&[0; 12], &sent, &[]);
            kick(&rig.tx_kick);
            // Every rig's socket sees every queue's frames: look past the earlier queues'.
            let arrived = (0..=queue).any(|_| rig.sock.recv_from(GUEST_MAC, WAIT).as_deref() == Some(&sent[..]));
            assert!(arrived, "queue {queue}: the guest's frame on the network");
        }

        // The macvtap spreads arriving frames over its queues by flow hash: one frame per flow.
        let arriving: Vec<Vec<u8>> = (0..FLOWS as u16).map(udp_frame).collect();
        for frame in &arriving {
            rigs[0].host_send(frame);
        }
        wait_until("every frame from the network in the guest", || rigs.iter().map(|r| r.rx.used_idx() as usize).sum::<usize>() == FLOWS);
        let mut received = Vec::new();
        for (rig, posted) in rigs.iter().zip(&posted) {
            for i in 0..rig.rx.used_idx() {
                let (head, len) = rig.rx.used_elem(i);
                let bufs = &posted.iter().find(|(h, _)| u32::from(*h) == head).expect("a posted head").1;
                received.push(rig.read_chain(bufs, len as usize)[12..].to_vec());
            }
        }
        received.sort();
        let mut expected = arriving.clone();
        expected.sort();
        assert_eq!(received, expected, "each frame arrived once, as sent");
        assert!(rigs.iter().all(|r| r.rx.used_idx() > 0), "both queues received: {:?}", rigs.iter().map(|r| r.rx.used_idx()).collect::<Vec<_>>());
        for worker in workers {
            worker.stop();
        }
    });
}

/// A switch port that keeps what reaches it.
struct Recorder(Arc<Mutex<Vec<Vec<u8>>>>);

impl FrameWriter for Recorder {
    fn write_frame(&mut self, frame: &Frame, _from: PortId) -> std::io::Result<()> {
        self.0.lock().unwrap().push(frame.to_vec());
        Ok(())
    }
}

#[test]
fn a_macvtap_in_passthru_mode_is_a_switch_uplink_for_every_station() {
    in_fresh_netns(|| {
        // Passthru: the macvtap takes every frame of the link (a bridge-mode one only its own
        // MAC's, too few for an uplink that carries many stations).
        let node = macvtap_node("passthru");
        let switch = Switch::new(1500, Duration::from_secs(300));
        let _uplink = TapUplink::open(&switch, &node, 0).expect("a macvtap node as a TAP uplink");
        let recorded: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let station = switch.add_writer_port("station", PortKind::Stream, 0, Box::new(Recorder(recorded.clone())));
        let network = PacketSocket::bind(NETWORK);

        let station_mac = [0x02, 0, 0, 0, 0x33, 0x01];
        let outgoing = test_frame(HOST_MAC, station_mac, 200, 1);
        switch.forward_bytes(&station, &outgoing);
        assert_eq!(network.recv_from(station_mac, WAIT).as_deref(), Some(&outgoing[..]), "the station's frame on the network");

        let incoming = test_frame(station_mac, HOST_MAC, 300, 2);
        network.send(&incoming);
        wait_until("the network's frame at the station", || recorded.lock().unwrap().contains(&incoming));
    });
}
