//! `class Acceptor`: accepts on a listening socket from its own thread (see `crate::acceptor`)
//! and calls `onConnection(fd)` on the JavaScript thread; the fd is the callback's to own.
//! A running acceptor keeps the event loop alive until `close()`.

use std::ffi::c_void;
use std::os::fd::{AsRawFd, BorrowedFd, IntoRawFd, OwnedFd};
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::js::*;
use super::tsfn::Tsfn;
use crate::acceptor::Acceptor;
use crate::napi_sys::*;

/// What the JavaScript object wraps.
struct AcceptorHandle {
    acceptor: Acceptor,
    /// Set by `close()`: connections accepted just before and still queued for JavaScript are
    /// then closed instead of delivered.
    closed: Arc<AtomicBool>,
}

/// `new Acceptor(listenFd, onConnection)`: the listening fd stays the caller's.
pub unsafe extern "C" fn constructor(env: napi_env, info: napi_callback_info) -> napi_value {
    // SAFETY: env and info of this callback.
    unsafe {
        run(env, info, |call| {
            let listen_fd = get_fd(env, call.args[0], "listenFd")?;
            let on_connection = get_function(env, call.args[1], "onConnection")?;
            let closed = Arc::new(AtomicBool::new(false));
            let closed_for_delivery = Arc::clone(&closed);
            let tsfn: Tsfn<OwnedFd> = Tsfn::new(
                env,
                "vhost-user-net:acceptor",
                &[on_connection],
                Box::new(move |env, callbacks, socket: OwnedFd| {
                    if closed_for_delivery.load(Ordering::Acquire) {
                        return Ok(());
                    }
                    // (Unsafe context:) env and callbacks of the running threadsafe-function call.
                    let fd = int32(env, socket.as_raw_fd())?;
                    // From here the fd belongs to JavaScript.
                    let _ = socket.into_raw_fd();
                    super::js::call(env, callbacks[0], &[fd])
                }),
            )?;
            // SAFETY: the fd only has to be valid during `start`, which duplicates it (fcntl
            // fails with EBADF otherwise).
            let listener = BorrowedFd::borrow_raw(listen_fd);
            // The accept thread owns the Tsfn: when it ends, the Tsfn is released.
            let acceptor = Acceptor::start(listener, move |socket| tsfn.call(socket))?;
            let native = Box::into_raw(Box::new(AcceptorHandle { acceptor, closed }));
            let status = napi_wrap(
                env,
                call.this,
                native as *mut c_void,
                Some(finalize),
                ptr::null_mut(),
                ptr::null_mut(),
            );
            if let Err(e) = check(status) {
                // Not wrapped: nothing else will free (and stop) it.
                drop(Box::from_raw(native));
                return Err(e);
            }
            undefined(env)
        })
    }
}

/// `close()`: stops accepting; idempotent.
pub unsafe extern "C" fn close(env: napi_env, info: napi_callback_info) -> napi_value {
    // SAFETY: env and info of this callback.
    unsafe {
        run(env, info, |call| {
            let mut native = ptr::null_mut();
            if napi_unwrap(env, call.this, &mut native) != NAPI_OK || native.is_null() {
                return Err(Throw::InvalidArg("this is not an Acceptor".into()));
            }
            // SAFETY: only `constructor` wraps, with a `Box<AcceptorHandle>` freed only by
            // `finalize` once the object is unreachable; this thread runs one callback at a time.
            let handle = &mut *(native as *mut AcceptorHandle);
            handle.closed.store(true, Ordering::Release);
            handle.acceptor.close();
            undefined(env)
        })
    }
}

unsafe extern "C" fn finalize(_env: napi_env, data: *mut c_void, _hint: *mut c_void) {
    // SAFETY: `data` is the `Box<AcceptorHandle>` from `constructor`; Node finalizes once.
    drop(unsafe { Box::from_raw(data as *mut AcceptorHandle) });
}
