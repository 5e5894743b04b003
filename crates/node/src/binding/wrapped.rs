//! Rust values owned by JavaScript objects. `wrap` moves a value into a new object (Node drops it
//! when the object is collected) and tags the object with its type; `unwrap` borrows the value back
//! only from an object carrying that type's tag. Without the tag, any wrapped object passed where
//! another class is expected (a NetDevice given to `new NetDevice(switch, …)`) would be read as
//! the wrong type: memory corruption instead of a TypeError.

use std::ffi::c_void;
use std::ptr;

use super::js::*;
use crate::napi_sys::*;

/// A type JavaScript objects may own.
pub trait Wrapped: Sized + 'static {
    /// The JavaScript class name, for the error when an object is not one.
    const CLASS: &'static str;
    /// Unique to this type among the addon's wrapped types.
    const TAG: napi_type_tag;
}

/// Moves `value` into the object `this` and tags it.
///
/// # Safety
/// `env` and `this` come from the running callback (a constructor's fresh `this`).
pub unsafe fn wrap<T: Wrapped>(env: napi_env, this: napi_value, value: T) -> JsResult<()> {
    let native = Box::into_raw(Box::new(value));
    // SAFETY: valid env and object (caller); `native` is a live Box that the finalizer frees once.
    let status = unsafe { napi_wrap(env, this, native.cast(), Some(finalize::<T>), ptr::null_mut(), ptr::null_mut()) };
    if let Err(e) = check(status) {
        // Not wrapped: nothing else will free it.
        // SAFETY: `native` came from Box::into_raw above and was not handed to Node.
        drop(unsafe { Box::from_raw(native) });
        return Err(e);
    }
    // SAFETY: valid env and object. If tagging fails, `unwrap` refuses the object and the value is
    // still dropped when it is collected.
    check(unsafe { napi_type_tag_object(env, this, &T::TAG) })
}

/// The `T` that `wrap` put into `value`, or a TypeError if `value` is not such an object.
///
/// # Safety
/// `env` and `value` come from the running callback.
pub unsafe fn unwrap<'a, T: Wrapped>(env: napi_env, value: napi_value) -> JsResult<&'a mut T> {
    let not_one = || Throw::InvalidArg(format!("not a {} object", T::CLASS));
    let mut tagged = false;
    // SAFETY: valid env and value (caller); a non-object gives an error status.
    if unsafe { napi_check_object_type_tag(env, value, &T::TAG, &mut tagged) } != NAPI_OK || !tagged {
        return Err(not_one());
    }
    let mut native = ptr::null_mut();
    // SAFETY: valid env and value (caller).
    if unsafe { napi_unwrap(env, value, &mut native) } != NAPI_OK || native.is_null() {
        return Err(not_one());
    }
    // SAFETY: the tag says `wrap::<T>` put a `Box<T>` here, freed only by `finalize` once the
    // object is unreachable; callbacks run one at a time on this thread, so the borrow is unique.
    Ok(unsafe { &mut *(native as *mut T) })
}

unsafe extern "C" fn finalize<T>(_env: napi_env, data: *mut c_void, _hint: *mut c_void) {
    // SAFETY: `data` is the `Box<T>` from `wrap`; Node finalizes once.
    drop(unsafe { Box::from_raw(data as *mut T) });
}
