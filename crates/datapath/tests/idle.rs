//! An idle worker uses no CPU: it sleeps in epoll with no timeout (its own binary, so no other
//! test's worker threads are running).

mod common;

use std::time::Duration;

use common::*;

/// utime + stime (clock ticks) of every thread of this process named like a worker.
fn worker_cpu_ticks() -> Vec<u64> {
    let mut ticks = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != "vu-net-qp" {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap();
        // Fields after the ")" that ends the command name: state is field 3, utime 14, stime 15.
        let rest: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        ticks.push(rest[11].parse::<u64>().unwrap() + rest[12].parse::<u64>().unwrap());
    }
    ticks
}

#[test]
fn idle_worker_uses_no_cpu() {
    in_fresh_netns(|| {
        let mut rig = Rig::new(MERGEABLE);
        rig.guest_post_rx(&[&[4096u32] as &[u32]; 4]);
        let worker = rig.start();
        // Some traffic both ways first, then silence.
        rig.guest_send(&[0; 12], &test_frame([0xff; 6], GUEST_MAC, 64, 1), &[]);
        kick(&rig.tx_kick);
        rig.host_send(&test_frame(GUEST_MAC, HOST_MAC, 64, 2));
        wait_until("traffic", || {
            rig.tx.used_idx() == 1 && rig.rx.used_idx() == 1
        });
        std::thread::sleep(Duration::from_millis(50));
        let before = worker_cpu_ticks();
        assert_eq!(before.len(), 1, "one worker thread");
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(worker_cpu_ticks(), before, "CPU time used while idle");
        worker.stop();
        assert!(worker_cpu_ticks().is_empty(), "stop() ended the thread");
    });
}
