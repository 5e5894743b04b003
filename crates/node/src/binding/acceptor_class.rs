//! `class Acceptor`: accepts on a listening socket from its own thread (see `crate::acceptor`)
//! and calls `onConnection(fd)` on the JavaScript thread; the fd is the callback's to own.
//! A running acceptor keeps the event loop alive until `close()`.

use std::os::fd::{AsRawFd, BorrowedFd, IntoRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::js::*;
use super::tsfn::Tsfn;
use super::wrapped::{unwrap, wrap, Wrapped};
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
            // Dropped (and stopped) when the object is collected, or here if wrapping fails.
            wrap(env, call.this, AcceptorHandle { acceptor, closed })?;
            undefined(env)
        })
    }
}

/// `close()`: stops accepting; idempotent.
pub unsafe extern "C" fn close(env: napi_env, info: napi_callback_info) -> napi_value {
    // SAFETY: env and info of this callback.
    unsafe {
        run(env, info, |call| {
            let handle = unwrap::<AcceptorHandle>(env, call.this)?;
            handle.closed.store(true, Ordering::Release);
            handle.acceptor.close();
            undefined(env)
        })
    }
}

impl Wrapped for AcceptorHandle {
    const CLASS: &'static str = "Acceptor";
    const TAG: napi_type_tag = napi_type_tag { lower: 0x778b_cede_0372_09d9, upper: 0xde84_a13a_1978_f657 };
}
