//! Conversions between JavaScript values and Rust, and errors thrown to JavaScript.
//!
//! Every JavaScript error this addon throws is an `Error` with a stable `code` (`VU_ERR_*`),
//! and, when a system call failed, `errno` (positive C value), `errnoName` (`'EAGAIN'`) and
//! `syscall` fields.
//!
//! Every `unsafe fn` here has the same contract: `env` is the env of the running callback, on
//! its JavaScript thread, and every `napi_value` argument was obtained from it in this callback.

use std::ffi::CStr;
use std::os::fd::RawFd;
use std::os::raw::c_char;
use std::ptr;

use crate::napi_sys::*;
use crate::sys_error::SysError;
use crate::transport_error::TransportError;

/// Why a binding call did not return a value.
pub enum Throw {
    Transport(TransportError),
    /// A system call outside the socket transport (memfd, mmap, eventfd, poll, close).
    Sys(SysError),
    /// JavaScript passed a value of the wrong type or range.
    InvalidArg(String),
    /// A Node-API call failed; a JavaScript exception may already be pending.
    Napi(napi_status),
    /// An error of the data plane with its own stable code (e.g. `VU_ERR_GUEST_MEMORY`).
    Coded { code: &'static str, message: String },
}

/// A `Throw` with a stable code of its own.
pub fn coded(code: &'static str, message: String) -> Throw {
    Throw::Coded { code, message }
}

pub type JsResult<T> = Result<T, Throw>;

impl From<TransportError> for Throw {
    fn from(e: TransportError) -> Self {
        Throw::Transport(e)
    }
}

impl From<SysError> for Throw {
    fn from(e: SysError) -> Self {
        Throw::Sys(e)
    }
}

/// Turns a Node-API status into a `JsResult`.
pub fn check(status: napi_status) -> JsResult<()> {
    if status == NAPI_OK {
        Ok(())
    } else {
        Err(Throw::Napi(status))
    }
}

/// Arguments and receiver of one JavaScript call; missing arguments read `undefined`.
pub struct CallInfo {
    pub this: napi_value,
    pub args: [napi_value; 4],
}

/// Runs a binding function body: reads the call's arguments, and throws its error, if any,
/// into JavaScript.
///
/// # Safety
/// `env` and `info` must be the ones Node passed to the current callback.
pub unsafe fn run(
    env: napi_env,
    info: napi_callback_info,
    body: impl FnOnce(&CallInfo) -> JsResult<napi_value>,
) -> napi_value {
    let mut call = CallInfo {
        this: ptr::null_mut(),
        args: [ptr::null_mut(); 4],
    };
    let mut argc = call.args.len();
    // SAFETY: `args` has room for `argc` values; Node fills the missing ones with undefined.
    let status = unsafe {
        napi_get_cb_info(
            env,
            info,
            &mut argc,
            call.args.as_mut_ptr(),
            &mut call.this,
            ptr::null_mut(),
        )
    };
    match check(status).and_then(|()| body(&call)) {
        Ok(value) => value,
        Err(throw) => {
            // SAFETY: same env, on the JavaScript thread.
            unsafe { throw_error(env, throw) };
            ptr::null_mut()
        }
    }
}

/// Throws `throw` as a JavaScript `Error` (unless a Node-API failure left one pending).
///
/// # Safety
/// `env` must be a live env on its JavaScript thread.
pub unsafe fn throw_error(env: napi_env, throw: Throw) {
    let mut pending = false;
    // SAFETY: valid env (caller).
    unsafe { napi_is_exception_pending(env, &mut pending) };
    if pending {
        return;
    }
    // SAFETY: valid env (caller).
    if let Ok(error) = unsafe { create_error(env, &throw) } {
        // SAFETY: valid env and a fresh error value.
        unsafe { napi_throw(env, error) };
    }
}

/// Builds the JavaScript `Error` for `throw`.
///
/// # Safety
/// `env` must be a live env on its JavaScript thread.
pub unsafe fn create_error(env: napi_env, throw: &Throw) -> JsResult<napi_value> {
    let (code, message, sys) = match throw {
        Throw::Transport(e) => (e.code(), e.to_string(), e.sys()),
        Throw::Sys(e) => ("VU_ERR_SYSCALL", e.to_string(), Some(*e)),
        Throw::InvalidArg(message) => ("VU_ERR_INVALID_ARG", message.clone(), None),
        Throw::Napi(status) => (
            "VU_ERR_NAPI",
            format!("Node-API call failed with status {status}"),
            None,
        ),
        Throw::Coded { code, message } => (*code, message.clone(), None),
    };
    let mut error = ptr::null_mut();
    // SAFETY: valid env (caller); the strings are created just before use.
    unsafe {
        check(napi_create_error(
            env,
            string(env, code)?,
            string(env, &message)?,
            &mut error,
        ))?;
        if let Some(sys) = sys {
            set(env, error, c"errno", int32(env, sys.errno)?)?;
            set(env, error, c"errnoName", string(env, sys.errno_name())?)?;
            set(env, error, c"syscall", string(env, sys.syscall)?)?;
        }
    }
    Ok(error)
}

// ---- JavaScript → Rust. All take the env of the current callback and a value from it. ----

unsafe fn type_of(env: napi_env, value: napi_value) -> JsResult<napi_valuetype> {
    let mut kind = NAPI_UNDEFINED;
    // SAFETY: valid env and value (caller).
    check(unsafe { napi_typeof(env, value, &mut kind) })?;
    Ok(kind)
}

/// A number that is an integer in `0..=max`.
pub unsafe fn get_integer(env: napi_env, value: napi_value, what: &str, max: f64) -> JsResult<f64> {
    let mut number = f64::NAN;
    // SAFETY: valid env and value (caller).
    if unsafe { type_of(env, value)? } == NAPI_NUMBER {
        // SAFETY: `value` is a number.
        check(unsafe { napi_get_value_double(env, value, &mut number) })?;
    }
    // NaN (also: not a number at all) fails both checks.
    if number.fract() != 0.0 || !(0.0..=max).contains(&number) {
        return Err(Throw::InvalidArg(format!(
            "{what} must be an integer from 0 to {max}"
        )));
    }
    Ok(number)
}

/// A file descriptor number.
pub unsafe fn get_fd(env: napi_env, value: napi_value, what: &str) -> JsResult<RawFd> {
    // SAFETY: forwarded from the caller.
    Ok(unsafe { get_integer(env, value, what, i32::MAX as f64)? } as RawFd)
}

/// A size or offset: an integer JavaScript represents exactly.
pub unsafe fn get_size(env: napi_env, value: napi_value, what: &str) -> JsResult<u64> {
    const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;
    // SAFETY: forwarded from the caller.
    Ok(unsafe { get_integer(env, value, what, MAX_SAFE_INTEGER)? } as u64)
}

pub unsafe fn get_string(env: napi_env, value: napi_value, what: &str) -> JsResult<String> {
    // SAFETY: valid env and value (caller).
    if unsafe { type_of(env, value)? } != NAPI_STRING {
        return Err(Throw::InvalidArg(format!("{what} must be a string")));
    }
    let mut len = 0;
    // SAFETY: a null buffer asks for the length only.
    check(unsafe { napi_get_value_string_utf8(env, value, ptr::null_mut(), 0, &mut len) })?;
    let mut buf = vec![0u8; len + 1];
    // SAFETY: `buf` has `len + 1` bytes, room for the string and its NUL.
    check(unsafe {
        napi_get_value_string_utf8(
            env,
            value,
            buf.as_mut_ptr() as *mut c_char,
            buf.len(),
            &mut len,
        )
    })?;
    buf.truncate(len);
    String::from_utf8(buf).map_err(|_| Throw::InvalidArg(format!("{what} is not valid UTF-8")))
}

/// A function, returned as is for use in this callback.
pub unsafe fn get_function(env: napi_env, value: napi_value, what: &str) -> JsResult<napi_value> {
    // SAFETY: valid env and value (caller).
    if unsafe { type_of(env, value)? } != NAPI_FUNCTION {
        return Err(Throw::InvalidArg(format!("{what} must be a function")));
    }
    Ok(value)
}

pub unsafe fn get_bigint_u64(env: napi_env, value: napi_value, what: &str) -> JsResult<u64> {
    let (mut number, mut lossless) = (0, false);
    // SAFETY: valid env and value (caller).
    if unsafe { type_of(env, value)? } != NAPI_BIGINT
        || unsafe { napi_get_value_bigint_uint64(env, value, &mut number, &mut lossless) }
            != NAPI_OK
        || !lossless
    {
        return Err(Throw::InvalidArg(format!(
            "{what} must be a bigint from 0n to 2n**64n - 1n"
        )));
    }
    Ok(number)
}

/// The bytes of a `Uint8Array` (or `Buffer`), borrowed for the current callback only.
pub unsafe fn get_bytes<'a>(env: napi_env, value: napi_value, what: &str) -> JsResult<&'a [u8]> {
    let mut is_typed = false;
    // SAFETY: valid env and value (caller).
    check(unsafe { napi_is_typedarray(env, value, &mut is_typed) })?;
    let (mut kind, mut len, mut data) = (0, 0, ptr::null_mut());
    if is_typed {
        // SAFETY: `value` is a typed array; unwanted outputs may be null.
        check(unsafe {
            napi_get_typedarray_info(
                env,
                value,
                &mut kind,
                &mut len,
                &mut data,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        })?;
    }
    if !is_typed || kind != NAPI_UINT8_ARRAY {
        return Err(Throw::InvalidArg(format!("{what} must be a Uint8Array")));
    }
    if len == 0 {
        return Ok(&[]);
    }
    // SAFETY: Node reports `len` bytes at `data` for this array; the array stays alive (it is an
    // argument of the running callback) and JavaScript cannot run until the callback returns.
    Ok(unsafe { std::slice::from_raw_parts(data as *const u8, len) })
}

pub unsafe fn get_boolean(env: napi_env, value: napi_value, what: &str) -> JsResult<bool> {
    // SAFETY: valid env and value (caller).
    if unsafe { type_of(env, value)? } != NAPI_BOOLEAN {
        return Err(Throw::InvalidArg(format!("{what} must be a boolean")));
    }
    let mut b = false;
    // SAFETY: `value` is a boolean.
    check(unsafe { napi_get_value_bool(env, value, &mut b) })?;
    Ok(b)
}

/// The words of a `BigUint64Array`, copied.
pub unsafe fn get_biguint64_array(env: napi_env, value: napi_value, what: &str) -> JsResult<Vec<u64>> {
    let mut is_typed = false;
    // SAFETY: valid env and value (caller).
    check(unsafe { napi_is_typedarray(env, value, &mut is_typed) })?;
    let (mut kind, mut len, mut data) = (0, 0, ptr::null_mut());
    if is_typed {
        // SAFETY: `value` is a typed array; unwanted outputs may be null.
        check(unsafe {
            napi_get_typedarray_info(env, value, &mut kind, &mut len, &mut data, ptr::null_mut(), ptr::null_mut())
        })?;
    }
    if !is_typed || kind != NAPI_BIGUINT64_ARRAY {
        return Err(Throw::InvalidArg(format!("{what} must be a BigUint64Array")));
    }
    if len == 0 {
        return Ok(Vec::new());
    }
    // SAFETY: Node reports `len` 8-byte elements at `data` (8-aligned by BigUint64Array's rules),
    // alive for this callback; they are copied before JavaScript can run again.
    Ok(unsafe { std::slice::from_raw_parts(data as *const u64, len) }.to_vec())
}

/// An optional array of fd numbers (`undefined`/`null` read as none).
pub unsafe fn get_fds(env: napi_env, value: napi_value, what: &str) -> JsResult<Vec<RawFd>> {
    // SAFETY: valid env and value (caller).
    let kind = unsafe { type_of(env, value)? };
    if kind == NAPI_UNDEFINED || kind == NAPI_NULL {
        return Ok(Vec::new());
    }
    let mut is_array = false;
    // SAFETY: valid env and value (caller).
    check(unsafe { napi_is_array(env, value, &mut is_array) })?;
    if !is_array {
        return Err(Throw::InvalidArg(format!("{what} must be an array of fds")));
    }
    let mut len = 0;
    // SAFETY: `value` is an array.
    check(unsafe { napi_get_array_length(env, value, &mut len) })?;
    (0..len)
        .map(|i| {
            let mut element = ptr::null_mut();
            // SAFETY: `value` is an array and `i` below its length.
            check(unsafe { napi_get_element(env, value, i, &mut element) })?;
            // SAFETY: `element` comes from this env.
            unsafe { get_fd(env, element, what) }
        })
        .collect()
}

// ---- Rust → JavaScript. ----

pub unsafe fn undefined(env: napi_env) -> JsResult<napi_value> {
    let mut value = ptr::null_mut();
    // SAFETY: valid env (caller).
    check(unsafe { napi_get_undefined(env, &mut value) })?;
    Ok(value)
}

pub unsafe fn null(env: napi_env) -> JsResult<napi_value> {
    let mut value = ptr::null_mut();
    // SAFETY: valid env (caller).
    check(unsafe { napi_get_null(env, &mut value) })?;
    Ok(value)
}

pub unsafe fn boolean(env: napi_env, b: bool) -> JsResult<napi_value> {
    let mut value = ptr::null_mut();
    // SAFETY: valid env (caller).
    check(unsafe { napi_get_boolean(env, b, &mut value) })?;
    Ok(value)
}

pub unsafe fn int32(env: napi_env, n: i32) -> JsResult<napi_value> {
    let mut value = ptr::null_mut();
    // SAFETY: valid env (caller).
    check(unsafe { napi_create_int32(env, n, &mut value) })?;
    Ok(value)
}

pub unsafe fn uint32(env: napi_env, n: u32) -> JsResult<napi_value> {
    let mut value = ptr::null_mut();
    // SAFETY: valid env (caller).
    check(unsafe { napi_create_uint32(env, n, &mut value) })?;
    Ok(value)
}

pub unsafe fn bigint_u64(env: napi_env, n: u64) -> JsResult<napi_value> {
    let mut value = ptr::null_mut();
    // SAFETY: valid env (caller).
    check(unsafe { napi_create_bigint_uint64(env, n, &mut value) })?;
    Ok(value)
}

pub unsafe fn string(env: napi_env, s: &str) -> JsResult<napi_value> {
    let mut value = ptr::null_mut();
    // SAFETY: `s` is `s.len()` bytes of UTF-8.
    check(unsafe {
        napi_create_string_utf8(env, s.as_ptr() as *const c_char, s.len(), &mut value)
    })?;
    Ok(value)
}

pub unsafe fn object(env: napi_env) -> JsResult<napi_value> {
    let mut value = ptr::null_mut();
    // SAFETY: valid env (caller).
    check(unsafe { napi_create_object(env, &mut value) })?;
    Ok(value)
}

pub unsafe fn set(
    env: napi_env,
    object: napi_value,
    name: &CStr,
    value: napi_value,
) -> JsResult<()> {
    // SAFETY: valid env and values (caller); `name` is NUL-terminated.
    check(unsafe { napi_set_named_property(env, object, name.as_ptr(), value) })
}

/// A new `Uint8Array` holding a copy of `bytes`.
pub unsafe fn uint8_array(env: napi_env, bytes: &[u8]) -> JsResult<napi_value> {
    let (mut buffer, mut data) = (ptr::null_mut(), ptr::null_mut());
    // SAFETY: valid env (caller).
    check(unsafe { napi_create_arraybuffer(env, bytes.len(), &mut data, &mut buffer) })?;
    if !bytes.is_empty() {
        // SAFETY: Node allocated `bytes.len()` writable bytes at `data` for the new buffer.
        unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), data as *mut u8, bytes.len()) };
    }
    let mut array = ptr::null_mut();
    // SAFETY: `buffer` is an ArrayBuffer of exactly `bytes.len()` bytes.
    check(unsafe {
        napi_create_typedarray(env, NAPI_UINT8_ARRAY, bytes.len(), buffer, 0, &mut array)
    })?;
    Ok(array)
}

/// A new `BigUint64Array` holding a copy of `words`.
pub unsafe fn biguint64_array(env: napi_env, words: &[u64]) -> JsResult<napi_value> {
    let (mut buffer, mut data) = (ptr::null_mut(), ptr::null_mut());
    let bytes = std::mem::size_of_val(words);
    // SAFETY: valid env (caller).
    check(unsafe { napi_create_arraybuffer(env, bytes, &mut data, &mut buffer) })?;
    if !words.is_empty() {
        // SAFETY: Node allocated `bytes` writable bytes at `data`; ArrayBuffer data is 8-aligned.
        unsafe { ptr::copy_nonoverlapping(words.as_ptr(), data as *mut u64, words.len()) };
    }
    let mut array = ptr::null_mut();
    // SAFETY: `buffer` holds exactly `words.len()` u64 elements.
    check(unsafe { napi_create_typedarray(env, NAPI_BIGUINT64_ARRAY, words.len(), buffer, 0, &mut array) })?;
    Ok(array)
}

/// A JavaScript array of fd numbers.
pub unsafe fn fd_array(env: napi_env, fds: &[RawFd]) -> JsResult<napi_value> {
    let mut array = ptr::null_mut();
    // SAFETY: valid env (caller).
    check(unsafe { napi_create_array_with_length(env, fds.len(), &mut array) })?;
    for (i, fd) in fds.iter().enumerate() {
        // SAFETY: valid env; `array` was just created.
        check(unsafe { napi_set_element(env, array, i as u32, int32(env, *fd)?) })?;
    }
    Ok(array)
}

/// Calls `function` with `this` undefined.
pub unsafe fn call(env: napi_env, function: napi_value, args: &[napi_value]) -> JsResult<()> {
    let mut result = ptr::null_mut();
    // SAFETY: valid env and values (caller); `args` holds `args.len()` values.
    check(unsafe {
        napi_call_function(
            env,
            undefined(env)?,
            function,
            args.len(),
            args.as_ptr(),
            &mut result,
        )
    })
}
