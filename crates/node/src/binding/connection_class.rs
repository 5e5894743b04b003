//! `class Connection`: a connected vhost-user socket (see `crate::connection`).
//!
//! `start(onMessage, onClose)` delivers `onMessage(bytes: Uint8Array, fds: number[])` per message
//! (the fds are the caller's to close) and then `onClose(error | null)` once.

use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};

use super::js::*;
use super::tsfn::Tsfn;
use super::wrapped::{unwrap, wrap, Wrapped};
use crate::connection::{Connection, InFlight, ReaderEvent};
use crate::message::Message;
use crate::napi_sys::*;

/// `new Connection(fd)`: takes ownership of the connected socket `fd`.
pub unsafe extern "C" fn constructor(env: napi_env, info: napi_callback_info) -> napi_value {
    // SAFETY: env and info of this callback.
    unsafe {
        run(env, info, |call| {
            let fd = get_fd(env, call.args[0], "fd")?;
            // SAFETY: the caller hands the fd over; from here this object owns it.
            let connection = Connection::new(OwnedFd::from_raw_fd(fd))?;
            // Dropping it (when the object is collected) closes the connection if JavaScript did not.
            wrap(env, call.this, connection)?;
            undefined(env)
        })
    }
}

/// `start(onMessage, onClose)`.
pub unsafe extern "C" fn start(env: napi_env, info: napi_callback_info) -> napi_value {
    // SAFETY: env and info of this callback.
    unsafe {
        run(env, info, |call| {
            let connection = unwrap::<Connection>(env, call.this)?;
            let on_message = get_function(env, call.args[0], "onMessage")?;
            let on_close = get_function(env, call.args[1], "onClose")?;
            let in_flight = connection.in_flight();
            let tsfn = Tsfn::new(
                env,
                "vhost-user-net:connection",
                &[on_message, on_close],
                Box::new(move |env, callbacks, event| deliver(env, callbacks, &in_flight, event)),
            )?;
            // The reader thread owns the Tsfn: when it ends, the Tsfn is released.
            connection.start(move |event| tsfn.call(event))?;
            undefined(env)
        })
    }
}

/// Runs on the JavaScript thread for each reader event.
///
/// # Safety
/// `env` and `callbacks` (onMessage, onClose) come from the running threadsafe-function call.
unsafe fn deliver(
    env: napi_env,
    callbacks: &[napi_value],
    in_flight: &InFlight,
    event: ReaderEvent,
) -> JsResult<()> {
    match event {
        ReaderEvent::Message(message) => {
            if in_flight.is_closed() {
                // Closed by the owner after the reader queued it: drop it, closing its fds.
                return Ok(());
            }
            // SAFETY: as documented on this function.
            let result = unsafe { deliver_message(env, callbacks[0], message) };
            in_flight.handled();
            result
        }
        ReaderEvent::Closed(error) => {
            // SAFETY: as documented on this function.
            unsafe {
                let error = match error {
                    Some(e) => create_error(env, &Throw::Transport(e))?,
                    None => null(env)?,
                };
                call(env, callbacks[1], &[error])
            }
        }
    }
}

/// Calls `onMessage(bytes, fds)`. The fds pass to JavaScript only if the call is made;
/// otherwise dropping `message` closes them.
///
/// # Safety
/// As for `deliver`.
unsafe fn deliver_message(env: napi_env, on_message: napi_value, message: Message) -> JsResult<()> {
    let numbers: Vec<_> = message.fds.iter().map(AsRawFd::as_raw_fd).collect();
    // SAFETY: as documented on this function.
    let (bytes, fds) = unsafe { (uint8_array(env, &message.bytes)?, fd_array(env, &numbers)?) };
    for fd in message.fds {
        // From here the fd belongs to JavaScript.
        let _ = fd.into_raw_fd();
    }
    // SAFETY: as documented on this function.
    unsafe { call(env, on_message, &[bytes, fds]) }
}

/// `send(bytes, fds?)`.
pub unsafe extern "C" fn send(env: napi_env, info: napi_callback_info) -> napi_value {
    // SAFETY: env and info of this callback.
    unsafe {
        run(env, info, |call| {
            let connection = unwrap::<Connection>(env, call.this)?;
            let bytes = get_bytes(env, call.args[0], "bytes")?;
            let fds = get_fds(env, call.args[1], "fds")?;
            connection.send(bytes, &fds)?;
            undefined(env)
        })
    }
}

/// `peerCredentials()` → `{ pid, uid, gid }`.
pub unsafe extern "C" fn peer_credentials(env: napi_env, info: napi_callback_info) -> napi_value {
    // SAFETY: env and info of this callback.
    unsafe {
        run(env, info, |call| {
            let cred = unwrap::<Connection>(env, call.this)?.peer_credentials()?;
            let result = object(env)?;
            set(env, result, c"pid", int32(env, cred.pid)?)?;
            set(env, result, c"uid", uint32(env, cred.uid)?)?;
            set(env, result, c"gid", uint32(env, cred.gid)?)?;
            Ok(result)
        })
    }
}

/// `peerHungUp()` → whether the peer has closed its end (see `Connection::peer_hung_up`).
pub unsafe extern "C" fn peer_hung_up(env: napi_env, info: napi_callback_info) -> napi_value {
    // SAFETY: env and info of this callback.
    unsafe {
        run(env, info, |call| {
            let hung_up = unwrap::<Connection>(env, call.this)?.peer_hung_up()?;
            boolean(env, hung_up)
        })
    }
}

/// `close()`: idempotent.
pub unsafe extern "C" fn close(env: napi_env, info: napi_callback_info) -> napi_value {
    // SAFETY: env and info of this callback.
    unsafe {
        run(env, info, |call| {
            unwrap::<Connection>(env, call.this)?.close();
            undefined(env)
        })
    }
}

impl Wrapped for Connection {
    const CLASS: &'static str = "Connection";
    const TAG: napi_type_tag = napi_type_tag { lower: 0x757e_0cf2_bb3d_2867, upper: 0x1885_97d1_a439_493e };
}
