//! `memfdCreate`, `mapShared`: guest-RAM stand-ins for the test front-end.

use std::ffi::c_void;
use std::os::fd::{BorrowedFd, IntoRawFd};
use std::ptr;

use super::js::*;
use crate::memfd::memfd_create;
use crate::napi_sys::*;
use crate::shared_mapping::SharedMapping;
use crate::sys_error::SysError;

/// `memfdCreate(name, size)` → fd.
pub unsafe extern "C" fn memfd(env: napi_env, info: napi_callback_info) -> napi_value {
    // SAFETY: env and info of this callback.
    unsafe {
        run(env, info, |call| {
            let name = get_string(env, call.args[0], "name")?;
            let size = get_size(env, call.args[1], "size")?;
            int32(env, memfd_create(&name, size)?.into_raw_fd())
        })
    }
}

/// `mapShared(fd, offset, length)` → an `ArrayBuffer` over a `MAP_SHARED` mapping, unmapped
/// when the buffer is garbage collected. The fd may be closed meanwhile.
pub unsafe extern "C" fn map_shared(env: napi_env, info: napi_callback_info) -> napi_value {
    // SAFETY: env and info of this callback.
    unsafe {
        run(env, info, |call| {
            let fd = get_fd(env, call.args[0], "fd")?;
            let offset = get_size(env, call.args[1], "offset")?;
            let length =
                usize::try_from(get_size(env, call.args[2], "length")?).map_err(|_| SysError {
                    syscall: "mmap",
                    errno: libc::EINVAL,
                })?;
            // SAFETY: mmap only uses the fd during the call; a bad fd is EBADF.
            let mapping = Box::new(SharedMapping::map(
                BorrowedFd::borrow_raw(fd),
                offset,
                length,
            )?);
            let (addr, len) = (mapping.as_ptr(), mapping.size());
            let hint = Box::into_raw(mapping);
            let mut buffer = ptr::null_mut();
            // SAFETY: `addr` is valid for `len` bytes until `unmap` drops the mapping, which
            // V8 calls once the buffer is unreachable.
            let status = napi_create_external_arraybuffer(
                env,
                addr as *mut c_void,
                len,
                Some(unmap),
                hint as *mut c_void,
                &mut buffer,
            );
            if let Err(e) = check(status) {
                // No buffer: the finalizer will not run.
                drop(Box::from_raw(hint));
                return Err(e);
            }
            Ok(buffer)
        })
    }
}

unsafe extern "C" fn unmap(_env: napi_env, _data: *mut c_void, hint: *mut c_void) {
    // SAFETY: `hint` is the `Box<SharedMapping>` from `map_shared`, finalized once.
    drop(unsafe { Box::from_raw(hint as *mut SharedMapping) });
}
