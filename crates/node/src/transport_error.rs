//! Errors of the vhost-user socket transport (listen, connect, accept, read and send messages).

use std::fmt;

use crate::sys_error::SysError;

/// What went wrong on a vhost-user socket. Variants marked *hostile* are caused by what the
/// front-end sent: the connection must be closed, the process carries on.
#[derive(Debug)]
pub enum TransportError {
    /// A socket system call failed.
    Socket(SysError),
    /// `listen`: the path exists and is not a socket; it is never replaced.
    PathNotSocket { path: String },
    /// `listen`: another process accepts connections on the path.
    PathInUse { path: String },
    /// `listen`/`connect`: the path does not fit `sockaddr_un.sun_path` or contains a NUL byte.
    InvalidPath { path: String, syscall: &'static str },
    /// *Hostile*: the header's size field exceeds the largest payload a request may carry.
    PayloadTooLarge { size: u32, max: u32 },
    /// *Hostile*: the front-end attached more fds than a message may carry (`MSG_CTRUNC`);
    /// the `received` ones that did arrive were closed.
    FdsTruncated { received: usize },
    /// The peer closed the socket `received` bytes into a message of `expected` bytes.
    ClosedMidMessage { received: usize, expected: usize },
    /// `send`: more fds than a message may carry.
    TooManyFds { count: usize, max: usize },
    /// `send` of zero bytes (a stream socket would not deliver the fds either).
    EmptyMessage,
    /// `send`/`start`/`peerCredentials` after `close`.
    Closed,
    /// `start` on a connection whose reader already runs.
    AlreadyStarted,
}

impl TransportError {
    /// The stable code JavaScript callers branch on.
    pub fn code(&self) -> &'static str {
        match self {
            TransportError::Socket(_)
            | TransportError::PathNotSocket { .. }
            | TransportError::PathInUse { .. }
            | TransportError::InvalidPath { .. } => "VU_ERR_SOCKET",
            TransportError::PayloadTooLarge { .. } => "VU_ERR_MSG_TOO_LARGE",
            TransportError::FdsTruncated { .. } => "VU_ERR_FDS_TRUNCATED",
            TransportError::ClosedMidMessage { .. } => "VU_ERR_CLOSED_MID_MESSAGE",
            TransportError::TooManyFds { .. } | TransportError::EmptyMessage => {
                "VU_ERR_INVALID_ARG"
            }
            TransportError::Closed => "VU_ERR_CLOSED",
            TransportError::AlreadyStarted => "VU_ERR_INVALID_STATE",
        }
    }

    /// The system call and errno behind the error, when there is one (path checks report the
    /// errno `bind`/`connect` would have given).
    pub fn sys(&self) -> Option<SysError> {
        match self {
            TransportError::Socket(e) => Some(*e),
            TransportError::PathNotSocket { .. } => Some(SysError {
                syscall: "bind",
                errno: libc::EEXIST,
            }),
            TransportError::PathInUse { .. } => Some(SysError {
                syscall: "bind",
                errno: libc::EADDRINUSE,
            }),
            TransportError::InvalidPath { syscall, .. } => Some(SysError {
                syscall,
                errno: libc::ENAMETOOLONG,
            }),
            _ => None,
        }
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportError::Socket(e) => write!(f, "{e}"),
            TransportError::PathNotSocket { path } => {
                write!(f, "{path} exists and is not a socket; refusing to replace it")
            }
            TransportError::PathInUse { path } => write!(f, "another process is listening on {path}"),
            TransportError::InvalidPath { path, .. } => {
                write!(f, "{path:?} is not a valid UNIX socket path (at most 107 bytes, no NUL)")
            }
            TransportError::PayloadTooLarge { size, max } => {
                write!(f, "front-end sent a message with a {size}-byte payload (at most {max})")
            }
            TransportError::FdsTruncated { received } => write!(
                f,
                "front-end attached more fds than a message may carry; closed the {received} that arrived"
            ),
            TransportError::ClosedMidMessage { received, expected } => write!(
                f,
                "peer closed the connection {received} bytes into a {expected}-byte message"
            ),
            TransportError::TooManyFds { count, max } => {
                write!(f, "cannot send {count} fds in one message (at most {max})")
            }
            TransportError::EmptyMessage => write!(f, "cannot send an empty message"),
            TransportError::Closed => write!(f, "connection is closed"),
            TransportError::AlreadyStarted => write!(f, "connection reader already started"),
        }
    }
}

impl std::error::Error for TransportError {}

impl From<SysError> for TransportError {
    fn from(e: SysError) -> Self {
        TransportError::Socket(e)
    }
}
