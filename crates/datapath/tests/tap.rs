//! Opening and configuring TAP devices.

mod common;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use common::*;
use datapath::tap::{TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, TUN_F_USO4, TUN_F_USO6};
use datapath::{Tap, TapError};
use vring::features::*;

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TUNSETPERSIST: libc::c_ulong = 0x4004_54cb;
const TUNSETOWNER: libc::c_ulong = 0x4004_54cc;

#[test]
fn multi_queue_tap_has_one_fd_per_queue_pair() {
    in_fresh_netns(|| {
        let name = unique_tap_name();
        let tap = Tap::open(&name, 4).expect("open multi-queue TAP");
        assert_eq!(tap.name(), name);
        assert_eq!(tap.queue_count(), 4);
        let fds: Vec<i32> = (0..4)
            .map(|i| tap.queue_fd(i).unwrap().as_raw_fd())
            .collect();
        assert!(fds.windows(2).all(|w| w[0] != w[1]));
        assert!(tap.queue_fd(4).is_none());
        for fd in fds {
            // SAFETY: F_GETFL/F_GETFD on an open fd.
            let (fl, fdfl) = unsafe {
                (
                    libc::fcntl(fd, libc::F_GETFL),
                    libc::fcntl(fd, libc::F_GETFD),
                )
            };
            assert!(fl & libc::O_NONBLOCK != 0 && fdfl & libc::FD_CLOEXEC != 0);
        }
        tap.set_vnet_hdr_len(12).unwrap();
        tap.set_vnet_hdr_len(10).unwrap();
        assert!(matches!(
            tap.set_vnet_hdr_len(11),
            Err(TapError::InvalidArgument(_))
        ));
    });
}

#[test]
fn offloads_follow_the_guest_features() {
    in_fresh_netns(|| {
        let tap = Tap::open(&unique_tap_name(), 1).unwrap();
        let bit = |b: u32| 1u64 << b;
        let applied = tap.set_offloads(bit(VIRTIO_NET_F_GUEST_CSUM)).unwrap();
        assert_eq!(applied.tun_flags, TUN_F_CSUM);
        let all = [
            VIRTIO_NET_F_GUEST_CSUM,
            VIRTIO_NET_F_GUEST_TSO4,
            VIRTIO_NET_F_GUEST_TSO6,
            VIRTIO_NET_F_GUEST_USO4,
            VIRTIO_NET_F_GUEST_USO6,
            VIRTIO_NET_F_MRG_RXBUF, // not an offload: ignored
        ]
        .into_iter()
        .fold(0, |acc, b| acc | bit(b));
        let applied = tap.set_offloads(all).unwrap();
        // Linux 6.2+ takes USO; older kernels refuse it and the retry applies the rest.
        assert_eq!(
            applied.tun_flags | applied.refused_uso,
            TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_USO4 | TUN_F_USO6
        );
        assert_eq!(tap.set_offloads(0).unwrap().tun_flags, 0);
    });
}

#[test]
fn bad_arguments_are_refused() {
    assert!(matches!(
        Tap::open("", 1),
        Err(TapError::InvalidArgument(_))
    ));
    assert!(matches!(
        Tap::open("a-name-way-too-long", 1),
        Err(TapError::InvalidArgument(_))
    ));
    assert!(matches!(
        Tap::open("tap0", 0),
        Err(TapError::InvalidArgument(_))
    ));
    match Tap::open("/nonexistent/tap99", 1) {
        Err(TapError::Open { errno, .. }) => assert_eq!(errno, libc::ENOENT),
        other => panic!("{other:?}"),
    }
}

/// Creates a persistent single-queue TAP owned by `uid` (what `ip tuntap add NAME mode tap user UID` does).
fn create_persistent_tap(name: &str, uid: u32) -> OwnedFd {
    // SAFETY: open of a constant path; the fd is owned right below.
    let raw = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    assert!(raw >= 0);
    // SAFETY: fresh fd.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut req = [0u8; 40];
    req[..name.len()].copy_from_slice(name.as_bytes());
    req[16..18].copy_from_slice(&((libc::IFF_TAP | libc::IFF_NO_PI) as i16).to_ne_bytes());
    // SAFETY: `req` is a 40-byte struct ifreq image; the other two ioctls take integers by value.
    unsafe {
        assert_eq!(libc::ioctl(fd.as_raw_fd(), TUNSETIFF, req.as_mut_ptr()), 0);
        assert_eq!(
            libc::ioctl(fd.as_raw_fd(), TUNSETOWNER, uid as libc::c_ulong),
            0
        );
        assert_eq!(
            libc::ioctl(fd.as_raw_fd(), TUNSETPERSIST, 1 as libc::c_ulong),
            0
        );
    }
    fd
}

/// Runs `f` on a thread (same network namespace) whose uids are `uid`: no capabilities.
fn as_uid<T: Send + 'static>(uid: u32, f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        // The raw syscall changes this thread only (glibc's setresuid would change every thread).
        // SAFETY: plain syscall with integer arguments.
        let rc = unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) };
        assert_eq!(rc, 0);
        f()
    })
    .join()
    .unwrap()
}

#[test]
fn persistent_tap_owned_by_the_user_opens_without_privilege() {
    in_fresh_netns(|| {
        let name = unique_tap_name();
        let creator = create_persistent_tap(&name, 4242);
        drop(creator); // persists without any fd
        let n = name.clone();
        let opened = as_uid(4242, move || Tap::open(&n, 1).map(|t| t.name().to_string()));
        assert_eq!(opened.expect("owner opens its TAP"), name);
        let n = name.clone();
        let refused = as_uid(4243, move || Tap::open(&n, 1).map(|_| ()));
        match refused {
            Err(
                e @ TapError::Ioctl {
                    errno: libc::EPERM, ..
                },
            ) => {
                let text = e.to_string();
                // The owner's uid is named when sysfs shows this network namespace.
                assert!(
                    text.contains("exists")
                        && text.contains("uid 4243")
                        && text.contains("TUNSETIFF"),
                    "{text}"
                );
            }
            other => panic!("expected EPERM, got {other:?}"),
        }
        // A multi-queue request on a single-queue persistent TAP: the hint says why.
        match Tap::open(&name, 2) {
            Err(
                e @ TapError::Ioctl {
                    errno: libc::EINVAL,
                    ..
                },
            ) => assert!(e.to_string().contains("multi_queue"), "{e}"),
            other => panic!("expected EINVAL, got {other:?}"),
        }
        // Clean up explicitly too (the namespace would remove it anyway).
        let tap = Tap::open(&name, 1).unwrap();
        // SAFETY: TUNSETPERSIST takes an integer by value.
        assert_eq!(
            unsafe {
                libc::ioctl(
                    tap.queue_fd(0).unwrap().as_raw_fd(),
                    TUNSETPERSIST,
                    0 as libc::c_ulong,
                )
            },
            0
        );
    });
}
