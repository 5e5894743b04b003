//! `class Connection`: a connected vhost-user socket (see `crate::connection`).
//!
//! `start(onMessage, onClose)` delivers `onMessage(bytes: Uint8Array, fds: number[])` per message
//! (the fds are the caller's to close) and then `onClose(error | null)` once.

use std::ffi::c_void;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::ptr;

use super::js::*;
use super::tsfn::Tsfn;
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
            let native = Box::into_raw(Box::new(connection));
            let status = napi_wrap(
                env,
                call.this,
                native as *mut c_void,
                Some(finalize),
                ptr::null_mut(),
                ptr::null_mut(),
            );
            if let Err(e) = check(status) {
                // Not wrapped: nothing else will free it.
                drop(Box::from_raw(native));
                return Err(e);
            }
            undefined(env)
        })
    }
}

/// `start(onMessage, onClose)`.
pub unsafe extern "C" fn start(env: napi_env, info: napi_callback_info) -> napi_value {
    // SAFETY: env and info of this callback.
    unsafe {
        run(env, info, |call| {
            let connection = unwrap(env, call.this)?;
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
            let connection = unwrap(env, call.this)?;
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
            let cred = unwrap(env, call.this)?.peer_credentials()?;
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
            let hung_up = unwrap(env, call.this)?.peer_hung_up()?;
            boolean(env, hung_up)
        })
    }
}

/// `close()`: idempotent.
pub unsafe extern "C" fn close(env: napi_env, info: napi_callback_info) -> napi_value {
    // SAFETY: env and info of this callback.
    unsafe {
        run(env, info, |call| {
            unwrap(env, call.this)?.close();
            undefined(env)
        })
    }
}

/// The `Connection` wrapped in `this`.
///
/// # Safety
/// `env` and `this` come from the running callback.
unsafe fn unwrap<'a>(env: napi_env, this: napi_value) -> JsResult<&'a mut Connection> {
    let mut native = ptr::null_mut();
    // SAFETY: valid env and value (caller).
    if unsafe { napi_unwrap(env, this, &mut native) } != NAPI_OK || native.is_null() {
        return Err(Throw::InvalidArg("this is not a Connection".into()));
    }
    // SAFETY: only `constructor` wraps, with a `Box<Connection>`, freed only by `finalize` after the
    // object is unreachable; callbacks run one at a time on this thread, so the borrow is unique.
    Ok(unsafe { &mut *(native as *mut Connection) })
}

unsafe extern "C" fn finalize(_env: napi_env, data: *mut c_void, _hint: *mut c_void) {
    // SAFETY: `data` is the `Box<Connection>` from `constructor`; Node finalizes once. Dropping it
    // closes the connection if JavaScript did not.
    drop(unsafe { Box::from_raw(data as *mut Connection) });
}
