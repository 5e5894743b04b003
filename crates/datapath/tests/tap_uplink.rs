//! A switch's TAP uplink when its TAP goes away under it.

mod common;

use std::time::Duration;

use common::*;
use datapath::switch::{Switch, TapUplink};

#[test]
fn a_deleted_tap_leaves_its_uplink_port_broken_without_a_panic() {
    in_fresh_netns(|| {
        let switch = Switch::new(1500, Duration::from_secs(300));
        let name = unique_tap_name();
        let uplink = TapUplink::open(&switch, &name, 0).expect("open the TAP uplink");
        let port = switch.ports().into_iter().next().expect("the uplink's port");
        assert!(port.is_attached());
        let deleted = std::process::Command::new("ip").args(["link", "del", &name]).status().expect("run ip");
        assert!(deleted.success());
        // The reader sees the TAP's fd fail: the port is detached (its thread used to panic on
        // the failed read and leave the port shown as connected).
        wait_until("the port detached", || !port.is_attached());
        drop(uplink);
    });
}
