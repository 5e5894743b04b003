//! `closeFd`, `openFdCount`, `waitReadable`: fd housekeeping for the control plane and tests.

use std::os::fd::BorrowedFd;
use std::ptr;
use std::time::Duration;

use super::js::*;
use super::tsfn::Tsfn;
use crate::fd::{close_fd, open_fd_count};
use crate::napi_sys::*;
use crate::poll::poll_readable;
use crate::sys_error::SysError;

/// `closeFd(fd)`.
pub unsafe extern "C" fn close(env: napi_env, info: napi_callback_info) -> napi_value {
    // SAFETY: env and info of this callback.
    unsafe {
        run(env, info, |call| {
            close_fd(get_fd(env, call.args[0], "fd")?)?;
            undefined(env)
        })
    }
}

/// `openFdCount()` → number of open fds in this process.
pub unsafe extern "C" fn open_count(env: napi_env, info: napi_callback_info) -> napi_value {
    // SAFETY: env and info of this callback.
    unsafe { run(env, info, |_| int32(env, open_fd_count()? as i32)) }
}

/// `waitReadable(fd, timeoutMs)` → `Promise<boolean>`: polls on a thread of its own, so the
/// event loop and libuv's thread pool stay free; resolves false on timeout.
pub unsafe extern "C" fn wait_readable(env: napi_env, info: napi_callback_info) -> napi_value {
    // SAFETY: env and info of this callback.
    unsafe {
        run(env, info, |call| {
            let fd = get_fd(env, call.args[0], "fd")?;
            let timeout = Duration::from_millis(get_size(env, call.args[1], "timeoutMs")?);
            let (mut deferred, mut promise) = (ptr::null_mut(), ptr::null_mut());
            check(napi_create_promise(env, &mut deferred, &mut promise))?;
            let mut deferred = Some(deferred);
            let tsfn: Tsfn<Result<bool, SysError>> = Tsfn::new(
                env,
                "vhost-user-net:waitReadable",
                &[],
                Box::new(move |env, _, outcome| {
                    let Some(deferred) = deferred.take() else {
                        return Ok(());
                    };
                    // (Unsafe context:) env of the running threadsafe-function call; `deferred`
                    // is settled once.
                    match outcome {
                        Ok(readable) => check(napi_resolve_deferred(
                            env,
                            deferred,
                            boolean(env, readable)?,
                        )),
                        Err(e) => check(napi_reject_deferred(
                            env,
                            deferred,
                            create_error(env, &Throw::Sys(e))?,
                        )),
                    }
                }),
            )?;
            std::thread::Builder::new()
                .name("vu-wait-readable".into())
                .spawn(move || {
                    // (Unsafe context:) poll only reads the fd number; if JavaScript closes the fd
                    // meanwhile, poll reports it (POLLNVAL → EBADF) or keeps waiting on the old
                    // file until the timeout; it never touches memory through it.
                    let fd = BorrowedFd::borrow_raw(fd);
                    tsfn.call(poll_readable(&[fd], Some(timeout)).map(|ready| ready[0]));
                })
                .map_err(|e| SysError::from_io("pthread_create", &e))?;
            Ok(promise)
        })
    }
}
