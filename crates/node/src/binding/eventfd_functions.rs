//! `eventfdCreate`, `eventfdWrite`, `eventfdRead`: kick/call notifications for the test front-end.

use std::os::fd::{BorrowedFd, IntoRawFd};

use super::js::*;
use crate::eventfd::{eventfd_create, eventfd_read, eventfd_write};
use crate::napi_sys::*;

/// `eventfdCreate()` → fd (`EFD_CLOEXEC | EFD_NONBLOCK`).
pub unsafe extern "C" fn create(env: napi_env, info: napi_callback_info) -> napi_value {
    // SAFETY: env and info of this callback.
    unsafe { run(env, info, |_| int32(env, eventfd_create()?.into_raw_fd())) }
}

/// `eventfdWrite(fd, value: bigint)`.
pub unsafe extern "C" fn write(env: napi_env, info: napi_callback_info) -> napi_value {
    // SAFETY: env and info of this callback.
    unsafe {
        run(env, info, |call| {
            let fd = get_fd(env, call.args[0], "fd")?;
            let value = get_bigint_u64(env, call.args[1], "value")?;
            // SAFETY: write only uses the fd during the call; a bad fd is EBADF.
            eventfd_write(BorrowedFd::borrow_raw(fd), value)?;
            undefined(env)
        })
    }
}

/// `eventfdRead(fd)` → `bigint`, or `null` when the counter is zero.
pub unsafe extern "C" fn read(env: napi_env, info: napi_callback_info) -> napi_value {
    // SAFETY: env and info of this callback.
    unsafe {
        run(env, info, |call| {
            let fd = get_fd(env, call.args[0], "fd")?;
            // SAFETY: read only uses the fd during the call; a bad fd is EBADF.
            match eventfd_read(BorrowedFd::borrow_raw(fd))? {
                Some(value) => bigint_u64(env, value),
                None => null(env),
            }
        })
    }
}
