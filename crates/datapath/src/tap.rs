//! TAP port: opens a Linux TAP (or macvtap) device with one file descriptor per queue pair, with the
//! virtio-net header (`IFF_VNET_HDR`) so the guest's checksum/GSO metadata passes through untouched.
//!
//! Two kinds of name are accepted:
//! - an interface name (`tap0`): `/dev/net/tun` is opened once per queue pair and attached with
//!   `TUNSETIFF` (`IFF_MULTI_QUEUE` when there is more than one). An existing persistent TAP owned by the
//!   caller's uid needs no privilege; a missing one is created if the caller has `CAP_NET_ADMIN`.
//! - a character device path (`/dev/tap7`, the macvtap device node): opened once per queue pair.

use std::ffi::CString;
use std::fmt;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use vring::features::{
    VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_ECN, VIRTIO_NET_F_GUEST_TSO4,
    VIRTIO_NET_F_GUEST_TSO6, VIRTIO_NET_F_GUEST_UFO, VIRTIO_NET_F_GUEST_USO4,
    VIRTIO_NET_F_GUEST_USO6,
};

// <linux/if_tun.h> ioctls (not in the libc crate): _IOW('T', nr, int/unsigned int).
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TUNGETIFF: libc::c_ulong = 0x8004_54d2;
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
const TUNSETVNETHDRSZ: libc::c_ulong = 0x4004_54d8;

// <linux/if_tun.h> TUNSETOFFLOAD bits: what the TAP may hand us (and thus the guest) un-segmented.
/// Frames may carry a partial checksum (`VIRTIO_NET_HDR_F_NEEDS_CSUM`).
pub const TUN_F_CSUM: u32 = 0x01;
/// TCP segmentation offload over IPv4 may be left undone.
pub const TUN_F_TSO4: u32 = 0x02;
/// TCP segmentation offload over IPv6 may be left undone.
pub const TUN_F_TSO6: u32 = 0x04;
/// TSO frames may have the ECN (CWR) bit set.
pub const TUN_F_TSO_ECN: u32 = 0x08;
/// UDP fragmentation offload may be left undone.
pub const TUN_F_UFO: u32 = 0x10;
/// UDP segmentation offload over IPv4 may be left undone (Linux 6.2+).
pub const TUN_F_USO4: u32 = 0x20;
/// UDP segmentation offload over IPv6 may be left undone (Linux 6.2+).
pub const TUN_F_USO6: u32 = 0x40;

/// Guest receive features and the TAP offload each one allows.
const OFFLOAD_MAP: [(u32, u32); 7] = [
    (VIRTIO_NET_F_GUEST_CSUM, TUN_F_CSUM),
    (VIRTIO_NET_F_GUEST_TSO4, TUN_F_TSO4),
    (VIRTIO_NET_F_GUEST_TSO6, TUN_F_TSO6),
    (VIRTIO_NET_F_GUEST_ECN, TUN_F_TSO_ECN),
    (VIRTIO_NET_F_GUEST_UFO, TUN_F_UFO),
    (VIRTIO_NET_F_GUEST_USO4, TUN_F_USO4),
    (VIRTIO_NET_F_GUEST_USO6, TUN_F_USO6),
];

/// `struct ifreq` with the `ifr_flags` member of the union (the libc crate's union is cfg-dependent).
#[repr(C)]
struct IfReqFlags {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

impl IfReqFlags {
    fn new(name: &str, flags: libc::c_short) -> IfReqFlags {
        let mut req = IfReqFlags {
            name: [0; libc::IFNAMSIZ],
            flags,
            _pad: [0; 22],
        };
        for (dst, src) in req
            .name
            .iter_mut()
            .zip(name.bytes().take(libc::IFNAMSIZ - 1))
        {
            *dst = src as libc::c_char;
        }
        req
    }

    fn name(&self) -> String {
        let bytes: Vec<u8> = self
            .name
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// Why a TAP could not be opened or configured. None of these is caused by a guest.
#[derive(Debug)]
pub enum TapError {
    /// The name is empty or longer than IFNAMSIZ-1, or `queue_pairs` is 0.
    InvalidArgument(String),
    /// open() of `/dev/net/tun` or of the macvtap device node failed.
    Open { path: String, errno: i32 },
    /// An ioctl on queue `queue` failed; `hint` says what usually causes that errno for this call.
    Ioctl {
        name: String,
        ioctl: &'static str,
        queue: u16,
        errno: i32,
        hint: String,
    },
    /// A socket() for the interface-flags helper failed.
    Socket { errno: i32 },
    /// Writing a frame of the back-end's own (e.g. a RARP announcement) failed.
    Write { name: String, errno: i32 },
}

impl TapError {
    /// The stable code JavaScript sees on the thrown Error.
    pub fn code(&self) -> &'static str {
        match self {
            TapError::InvalidArgument(_) => "VU_ERR_TAP_ARGUMENT",
            TapError::Open { .. } | TapError::Ioctl { .. } | TapError::Socket { .. } | TapError::Write { .. } => "VU_ERR_TAP",
        }
    }
}

impl fmt::Display for TapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TapError::InvalidArgument(what) => write!(f, "invalid TAP argument: {what}"),
            TapError::Open { path, errno } => {
                write!(f, "open({path}) failed: {}", errno_text(*errno))
            }
            TapError::Ioctl {
                name,
                ioctl,
                queue,
                errno,
                hint,
            } => {
                write!(
                    f,
                    "{ioctl} on TAP {name} (queue {queue}) failed: {}",
                    errno_text(*errno)
                )?;
                if !hint.is_empty() {
                    write!(f, " ({hint})")?;
                }
                Ok(())
            }
            TapError::Socket { errno } => write!(
                f,
                "socket(AF_INET, SOCK_DGRAM) failed: {}",
                errno_text(*errno)
            ),
            TapError::Write { name, errno } => {
                write!(f, "writing a frame to TAP {name} failed: {}", errno_text(*errno))
            }
        }
    }
}

impl std::error::Error for TapError {}

fn errno_text(errno: i32) -> String {
    format!(
        "{} (errno {errno})",
        std::io::Error::from_raw_os_error(errno)
    )
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// What the kernel accepted from `set_offloads`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppliedOffloads {
    /// TUN_F_* bits in effect.
    pub tun_flags: u32,
    /// USO bits that were asked for but refused by this kernel (it predates Linux 6.2).
    pub refused_uso: u32,
}

/// An open TAP device: one non-blocking, close-on-exec fd per queue pair.
#[derive(Debug)]
pub struct Tap {
    name: String,
    queues: Vec<Arc<OwnedFd>>,
}

impl Tap {
    /// Opens `name` with `queue_pairs` queues (`IFF_TAP | IFF_NO_PI | IFF_VNET_HDR`, plus
    /// `IFF_MULTI_QUEUE` when `queue_pairs > 1`). A name starting with `/` is a macvtap device node.
    pub fn open(name: &str, queue_pairs: u16) -> Result<Tap, TapError> {
        if queue_pairs == 0 {
            return Err(TapError::InvalidArgument(
                "queue_pairs must be at least 1".into(),
            ));
        }
        if name.starts_with('/') {
            Tap::open_macvtap(name, queue_pairs)
        } else {
            Tap::open_tun(name, queue_pairs)
        }
    }

    fn open_tun(name: &str, queue_pairs: u16) -> Result<Tap, TapError> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains('/') {
            return Err(TapError::InvalidArgument(format!(
                "interface name {name:?} (1 to 15 bytes, no '/')"
            )));
        }
        let mut flags = libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR;
        if queue_pairs > 1 {
            flags |= libc::IFF_MULTI_QUEUE;
        }
        let mut queues = Vec::with_capacity(queue_pairs as usize);
        let mut actual_name = name.to_string();
        for queue in 0..queue_pairs {
            let fd = open_nonblocking("/dev/net/tun")?;
            let mut req = IfReqFlags::new(name, flags as libc::c_short);
            // SAFETY: TUNSETIFF reads and writes a `struct ifreq`; `req` is a live, properly sized and
            // laid-out ifreq (name + flags + padding to 40 bytes).
            let rc = unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF, &mut req as *mut IfReqFlags) };
            if rc < 0 {
                let errno = last_errno();
                return Err(TapError::Ioctl {
                    name: name.into(),
                    ioctl: "TUNSETIFF",
                    queue,
                    errno,
                    hint: tunsetiff_hint(name, errno, queue_pairs),
                });
            }
            actual_name = req.name();
            queues.push(Arc::new(fd));
        }
        Ok(Tap {
            name: actual_name,
            queues,
        })
    }

    fn open_macvtap(path: &str, queue_pairs: u16) -> Result<Tap, TapError> {
        let mut queues = Vec::with_capacity(queue_pairs as usize);
        let mut name = path.to_string();
        for queue in 0..queue_pairs {
            let fd = open_nonblocking(path)?;
            let mut req = IfReqFlags::new(
                "",
                (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as libc::c_short,
            );
            // SAFETY: as in open_tun: `req` is a valid `struct ifreq` for the duration of the call.
            let rc = unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF, &mut req as *mut IfReqFlags) };
            if rc < 0 {
                let errno = last_errno();
                return Err(TapError::Ioctl {
                    name: path.into(),
                    ioctl: "TUNSETIFF",
                    queue,
                    errno,
                    hint: String::new(),
                });
            }
            let mut get = IfReqFlags::new("", 0);
            // SAFETY: TUNGETIFF fills a `struct ifreq`; `get` is valid and writable for the call.
            if unsafe { libc::ioctl(fd.as_raw_fd(), TUNGETIFF, &mut get as *mut IfReqFlags) } == 0 {
                name = get.name();
            }
            queues.push(Arc::new(fd));
        }
        Ok(Tap { name, queues })
    }

    /// The interface name (for a macvtap node: the macvtap interface's name when the kernel tells it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of queue fds (= queue pairs).
    pub fn queue_count(&self) -> u16 {
        self.queues.len() as u16
    }

    /// The fd of queue pair `i`, shared with the worker that serves it.
    pub fn queue_fd(&self, i: u16) -> Option<Arc<OwnedFd>> {
        self.queues.get(i as usize).cloned()
    }

    /// Sets the size of the virtio-net header in front of every frame on every queue: 12 with
    /// VIRTIO_F_VERSION_1 or VIRTIO_NET_F_MRG_RXBUF, else 10.
    pub fn set_vnet_hdr_len(&self, len: usize) -> Result<(), TapError> {
        if len != 10 && len != 12 {
            return Err(TapError::InvalidArgument(format!(
                "vnet header length {len} (must be 10 or 12)"
            )));
        }
        let value = len as libc::c_int;
        for (queue, fd) in self.queues.iter().enumerate() {
            // SAFETY: TUNSETVNETHDRSZ reads one `int` through the pointer; `value` outlives the call.
            let rc = unsafe {
                libc::ioctl(
                    fd.as_raw_fd(),
                    TUNSETVNETHDRSZ,
                    &value as *const libc::c_int,
                )
            };
            if rc < 0 {
                return Err(self.ioctl_error("TUNSETVNETHDRSZ", queue, String::new()));
            }
        }
        Ok(())
    }

    /// Tells the TAP which offloads the guest accepts on receive (the GUEST_* feature bits negotiated),
    /// so the kernel may hand over un-segmented / partially-checksummed frames. A kernel that refuses
    /// USO (EINVAL, before Linux 6.2) is retried without it; the result says what was applied.
    pub fn set_offloads(&self, guest_features: u64) -> Result<AppliedOffloads, TapError> {
        let wanted = offload_flags(guest_features);
        match self.apply_offloads(wanted) {
            Ok(()) => Ok(AppliedOffloads {
                tun_flags: wanted,
                refused_uso: 0,
            }),
            Err(TapError::Ioctl {
                errno: libc::EINVAL,
                ..
            }) if wanted & (TUN_F_USO4 | TUN_F_USO6) != 0 => {
                let without_uso = wanted & !(TUN_F_USO4 | TUN_F_USO6);
                self.apply_offloads(without_uso)?;
                Ok(AppliedOffloads {
                    tun_flags: without_uso,
                    refused_uso: wanted & (TUN_F_USO4 | TUN_F_USO6),
                })
            }
            Err(e) => Err(e),
        }
    }

    fn apply_offloads(&self, flags: u32) -> Result<(), TapError> {
        for (queue, fd) in self.queues.iter().enumerate() {
            // SAFETY: TUNSETOFFLOAD takes its argument by value (an unsigned int), no memory is accessed.
            let rc = unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETOFFLOAD, flags as libc::c_ulong) };
            if rc < 0 {
                return Err(self.ioctl_error("TUNSETOFFLOAD", queue, format!("flags {flags:#x}")));
            }
        }
        Ok(())
    }

    /// Brings the interface up (SIOCSIFFLAGS |= IFF_UP). Needs CAP_NET_ADMIN; meant for tests and setup.
    pub fn set_link_up(&self) -> Result<(), TapError> {
        // SAFETY: plain socket(2) call; the returned fd is owned right below.
        let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(TapError::Socket {
                errno: last_errno(),
            });
        }
        // SAFETY: `raw` is a freshly created fd that nothing else owns.
        let sock = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut req = IfReqFlags::new(&self.name, 0);
        // SAFETY: SIOCGIFFLAGS fills the flags of a valid, writable `struct ifreq`.
        if unsafe {
            libc::ioctl(
                sock.as_raw_fd(),
                libc::SIOCGIFFLAGS,
                &mut req as *mut IfReqFlags,
            )
        } < 0
        {
            return Err(self.ioctl_error("SIOCGIFFLAGS", 0, String::new()));
        }
        req.flags |= libc::IFF_UP as libc::c_short;
        // SAFETY: SIOCSIFFLAGS reads a valid `struct ifreq`.
        if unsafe {
            libc::ioctl(
                sock.as_raw_fd(),
                libc::SIOCSIFFLAGS,
                &mut req as *mut IfReqFlags,
            )
        } < 0
        {
            return Err(self.ioctl_error("SIOCSIFFLAGS", 0, "needs CAP_NET_ADMIN".into()));
        }
        Ok(())
    }

    /// Sends one frame of the back-end's own out of queue 0, behind an all-zero virtio-net header
    /// of `vnet_hdr_len` bytes (no checksum offload, no GSO). One write is one frame on a TAP.
    pub fn send_frame(&self, vnet_hdr_len: usize, frame: &[u8]) -> Result<(), TapError> {
        let header = [0u8; 12];
        let iov = [
            libc::iovec { iov_base: header.as_ptr() as *mut libc::c_void, iov_len: vnet_hdr_len.min(header.len()) },
            libc::iovec { iov_base: frame.as_ptr() as *mut libc::c_void, iov_len: frame.len() },
        ];
        // SAFETY: both iovecs point into live buffers of the given lengths, which writev only reads.
        let n = unsafe { libc::writev(self.queues[0].as_raw_fd(), iov.as_ptr(), iov.len() as libc::c_int) };
        if n < 0 {
            return Err(TapError::Write { name: self.name.clone(), errno: last_errno() });
        }
        Ok(())
    }

    fn ioctl_error(&self, ioctl: &'static str, queue: usize, hint: String) -> TapError {
        TapError::Ioctl {
            name: self.name.clone(),
            ioctl,
            queue: queue as u16,
            errno: last_errno(),
            hint,
        }
    }
}

/// TUN_F_* bits for the negotiated guest features.
pub fn offload_flags(guest_features: u64) -> u32 {
    OFFLOAD_MAP
        .iter()
        .filter(|(bit, _)| vring::features::has_feature(guest_features, *bit))
        .fold(0, |acc, (_, flag)| acc | flag)
}

fn open_nonblocking(path: &str) -> Result<OwnedFd, TapError> {
    let cpath = CString::new(path)
        .map_err(|_| TapError::InvalidArgument(format!("path {path:?} contains NUL")))?;
    // SAFETY: `cpath` is a valid NUL-terminated string for the duration of the call.
    let raw: RawFd = unsafe {
        libc::open(
            cpath.as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if raw < 0 {
        return Err(TapError::Open {
            path: path.into(),
            errno: last_errno(),
        });
    }
    // SAFETY: `raw` was just returned by open() and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Explains the usual cause of a TUNSETIFF failure. Existence is checked in this thread's network
/// namespace; the owner is read from sysfs, which only shows the namespace sysfs was mounted in.
fn tunsetiff_hint(name: &str, errno: i32, queue_pairs: u16) -> String {
    let exists = CString::new(name)
        // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
        .map(|c| unsafe { libc::if_nametoindex(c.as_ptr()) } != 0)
        .unwrap_or(false);
    // SAFETY: getuid() has no preconditions.
    let me = unsafe { libc::getuid() };
    match errno {
        libc::EPERM | libc::EACCES if exists => {
            match std::fs::read_to_string(format!("/sys/class/net/{name}/owner")).as_deref().map(str::trim) {
                Ok(uid) if uid != "-1" => {
                    format!("TAP {name} exists and is owned by uid {uid}, this process runs as uid {me}")
                }
                Ok(_) => format!("TAP {name} exists without an owner: attaching needs CAP_NET_ADMIN"),
                Err(_) => format!(
                    "TAP {name} exists but is not owned by uid {me} (this process), which lacks CAP_NET_ADMIN"
                ),
            }
        }
        libc::EPERM | libc::EACCES => format!(
            "TAP {name} does not exist and creating it needs CAP_NET_ADMIN \
             (create it with `ip tuntap add {name} mode tap user {me}`)"
        ),
        libc::EINVAL if exists => format!(
            "{name} exists with different flags: it must be a TAP (not TUN){}",
            if queue_pairs > 1 {
                " created with multi_queue"
            } else {
                " created without multi_queue"
            }
        ),
        libc::EBUSY => format!(
            "{name} is already attached to another process (not multi-queue, or all queues taken)"
        ),
        libc::ENOENT | libc::ENODEV => {
            "the tun module is not loaded (/dev/net/tun unusable)".into()
        }
        _ => String::new(),
    }
}
