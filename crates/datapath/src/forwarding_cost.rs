//! How much CPU the switch's per-frame path costs on one CPU, with every line in cache: guest A's
//! TX ring → `TxRing` → `Port::Switch` → `Switch::forward` → guest B's RX ring, frames of 60 and
//! 1514 bytes. In the test run it only checks that every frame arrives, intact; to measure, give
//! it 100 windows of 20 ms when changing the data path,
//!
//!   FORWARDING_COST_WINDOWS=100 cargo test --release -p datapath --lib forwarding_cost -- --nocapture
//!
//! and compare builds by their ns per frame (the 10th percentile of the windows), alternately and
//! several times: code layout alone moves it by a few per cent.
//!
//! The VM-to-VM bench (`bench/`) measures the real thing, with the two guests' rings shared
//! between CPUs; its figures drift by 2× on these machines, which hides changes of a few per
//! cent. This one leaves the cross-CPU cache misses out, so it shows what a change does to the
//! instructions the path runs, and only that: those misses limit the real rate, and a change can
//! gain here without moving the bench (cached chain lengths: −10% here, nothing seen there).

use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vring::mock::{MockDriver, MockGuest};
use vring::{VirtioNetHdr, Virtqueue};

use crate::counters::Counters;
use crate::port::Port;
use crate::ring::Ring;
use crate::switch::{Accepts, GuestRx, PortKind, Switch, DEFAULT_AGING};
use crate::tx::{TxRing, TX_BATCH};

const QUEUE_SIZE: u16 = 256;
const MEM_SIZE: u64 = 4 << 20;
const HDR_LEN: usize = 12;
const RX_BUFFER: u32 = 2048;
const A_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
const B_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xb];
/// Measured windows per frame size (`FORWARDING_COST_WINDOWS`, default 3 for the test run), and
/// the time each one forwards for.
const WINDOWS_IN_TESTS: usize = 3;
const WINDOW: Duration = Duration::from_millis(20);

/// One guest's driver side: TX chains posted once and re-posted every batch, or RX buffers.
struct Poster {
    driver: MockDriver,
    heads: Vec<u16>,
}

impl Poster {
    /// `TX_BATCH` one-buffer chains of `len` bytes (`fill` writes their content), writable or not.
    fn new(guest: &MockGuest, len: u32, writable: bool, mut fill: impl FnMut(u64, &MockDriver)) -> Poster {
        let mut driver = MockDriver::with_layout(guest.memory(), QUEUE_SIZE, 0, MEM_SIZE, 7);
        let heads = (0..TX_BATCH)
            .map(|_| {
                let addr = driver.alloc(len);
                fill(addr, &driver);
                driver.add_desc_chain(&[(addr, len, writable)])
            })
            .collect();
        driver.publish_avail();
        Poster { driver, heads }
    }

    /// Makes the same chains available again (the device has used them).
    fn repost(&mut self) {
        for &head in &self.heads {
            self.driver.push_avail_head(head);
        }
        self.driver.publish_avail();
    }
}

fn eventfd() -> Arc<OwnedFd> {
    // SAFETY: eventfd returns a new fd we own, or -1 (checked).
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    assert!(fd >= 0);
    // SAFETY: just created, owned by nobody else.
    Arc::new(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// ns per frame forwarded from A to B in each of `windows` windows, frames of `frame_len` bytes
/// (after the virtio-net header).
fn ns_per_frame(frame_len: u32, windows: usize) -> Vec<f64> {
    let (a, b) = (MockGuest::new(MEM_SIZE), MockGuest::new(MEM_SIZE));
    let mut sent = vec![0u8; HDR_LEN + frame_len as usize];
    sent[HDR_LEN..HDR_LEN + 6].copy_from_slice(&B_MAC);
    sent[HDR_LEN + 6..HDR_LEN + 12].copy_from_slice(&A_MAC);
    sent[HDR_LEN + 12..HDR_LEN + 14].copy_from_slice(&0x88b5u16.to_be_bytes());
    sent[HDR_LEN + 14..].iter_mut().enumerate().for_each(|(i, byte)| *byte = i as u8);
    let mut tx = Poster::new(&a, sent.len() as u32, false, |addr, driver| driver.write_bytes(addr, &sent));
    let mut rx_buffers = Vec::new();
    let mut rx = Poster::new(&b, RX_BUFFER, true, |addr, _| rx_buffers.push(addr));

    let switch = Switch::new(1500, DEFAULT_AGING);
    let (port_a, port_b) = (switch.add_port("a", PortKind::VhostUser, 0), switch.add_port("b", PortKind::VhostUser, 0));
    let rx_queue = Virtqueue::new(b.memory().clone(), rx.driver.state(false)).unwrap();
    port_b.attach_guest_rx(GuestRx::new(rx_queue, None, true, true, HDR_LEN, Accepts::NONE), Box::new(|fault| panic!("{fault}")));
    let tx_queue = Virtqueue::new(a.memory().clone(), tx.driver.state(false)).unwrap();
    let mut tx_ring = TxRing::new(Ring { queue: tx_queue, kick: eventfd(), call: None, enabled: true }, HDR_LEN);
    let port = Port::switch(switch.clone(), port_a, HDR_LEN);
    let counters = Counters::default();
    // B's first frame teaches the switch where B_MAC is (else A's frames are flooded).
    let mut from_b = [0u8; 60];
    from_b[..6].copy_from_slice(&A_MAC);
    from_b[6..12].copy_from_slice(&B_MAC);
    switch.forward_bytes(&port_b, &from_b);

    let mut batch = |tx: &mut Poster, rx: &mut Poster| {
        let start = Instant::now();
        tx_ring.process(&port, &counters, true).unwrap();
        let took = start.elapsed();
        tx.repost();
        rx.repost();
        took
    };
    // Warm-up: every line in cache, the MAC learned by the switch's memo.
    for _ in 0..1000 {
        batch(&mut tx, &mut rx);
    }
    let delivered_before = port_b.counters.to_port_frames.load(Ordering::Relaxed);
    let mut total_frames = 0u64;
    let windows = (0..windows)
        .map(|_| {
            let (mut busy, mut frames) = (Duration::ZERO, 0u64);
            while busy < WINDOW {
                busy += batch(&mut tx, &mut rx);
                frames += TX_BATCH as u64;
            }
            total_frames += frames;
            busy.as_nanos() as f64 / frames as f64
        })
        .collect();
    let delivered = port_b.counters.to_port_frames.load(Ordering::Relaxed) - delivered_before;
    assert_eq!(delivered, total_frames, "every frame must reach B (else the figure measures drops)");
    // Each RX buffer holds the last frame delivered into it: header (num_buffers 1) and bytes.
    let mut expected = sent.clone();
    expected[..HDR_LEN].copy_from_slice(&VirtioNetHdr { num_buffers: 1, ..VirtioNetHdr::default() }.to_le_bytes());
    for addr in rx_buffers {
        assert_eq!(rx.driver.read_bytes(addr, expected.len()), expected);
    }
    windows
}

#[test]
fn forwarding_cost() {
    let windows = std::env::var("FORWARDING_COST_WINDOWS").map_or(WINDOWS_IN_TESTS, |n| n.parse().expect("FORWARDING_COST_WINDOWS: a number"));
    for frame_len in [60, 1514] {
        let mut windows = ns_per_frame(frame_len, windows);
        windows.sort_by(f64::total_cmp);
        let at = |percentile: usize| windows[(windows.len() - 1) * percentile / 100];
        // The low percentile is the steadiest figure: other work on the machine only adds time.
        println!("forwarding_cost {frame_len}B: p10 {:.1} ns/frame (min {:.1}, median {:.1})", at(10), at(0), at(50));
    }
}
