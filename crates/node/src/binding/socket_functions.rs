//! `listenUnix`, `connectUnix`: the socket transport's entry points that return fd numbers.

use std::os::fd::IntoRawFd;

use super::js::*;
use crate::napi_sys::*;
use crate::unix_socket::{connect_unix, listen_unix};

/// `listenUnix(path, mode)` → listening fd.
pub unsafe extern "C" fn listen(env: napi_env, info: napi_callback_info) -> napi_value {
    // SAFETY: env and info of this callback.
    unsafe {
        run(env, info, |call| {
            let path = get_string(env, call.args[0], "path")?;
            let mode = get_integer(env, call.args[1], "mode", 0o7777 as f64)? as u32;
            int32(env, listen_unix(&path, mode)?.into_raw_fd())
        })
    }
}

/// `connectUnix(path)` → connected fd.
pub unsafe extern "C" fn connect(env: napi_env, info: napi_callback_info) -> napi_value {
    // SAFETY: env and info of this callback.
    unsafe {
        run(env, info, |call| {
            let path = get_string(env, call.args[0], "path")?;
            int32(env, connect_unix(&path)?.into_raw_fd())
        })
    }
}
