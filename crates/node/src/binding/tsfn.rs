//! Delivering values from Rust threads to JavaScript: a typed wrapper over Node-API
//! threadsafe functions.
//!
//! A `Tsfn<T>` is created on the JavaScript thread with the callbacks it will call and a
//! `deliver` function; any thread may then `call` it with values of `T`, which `deliver`
//! receives, in order, on the JavaScript thread. Dropping the `Tsfn` releases it: once every
//! queued value is delivered, the callbacks' references are deleted and it stops keeping the
//! event loop alive. Values still queued when the environment shuts down are dropped (an
//! `OwnedFd` in them is closed) without reaching JavaScript.
//!
//! At environment teardown (`process.exit()` with a connection still open) Node finalizes and
//! frees a threadsafe function even while threads still hold it. `alive` guards against that:
//! `finalize` clears it under the lock, and `call`/`drop` only touch the handle while holding
//! the lock and seeing it set.

use std::ffi::c_void;
use std::marker::PhantomData;
use std::ptr;
use std::sync::{Arc, Mutex};

use super::js::{check, string, throw_error, JsResult};
use crate::napi_sys::*;

/// Runs on the JavaScript thread with the callbacks (in creation order) and one value.
pub type Deliver<T> = Box<dyn FnMut(napi_env, &[napi_value], T) -> JsResult<()>>;

pub struct Tsfn<T> {
    raw: napi_threadsafe_function,
    /// False once Node finalized `raw`.
    alive: Arc<Mutex<bool>>,
    _values: PhantomData<fn(T)>,
}

// SAFETY: Node-API threadsafe functions may be called and released from any thread; the values
// handed over are `Send`, and the context (`Deliver` and references) is only ever touched on the
// JavaScript thread, by `call_js` and `finalize`.
unsafe impl<T: Send> Send for Tsfn<T> {}

struct Context<T> {
    callbacks: Vec<napi_ref>,
    deliver: Deliver<T>,
    alive: Arc<Mutex<bool>>,
}

impl<T: Send + 'static> Tsfn<T> {
    /// Creates the threadsafe function (unbounded queue: `call` never blocks).
    ///
    /// # Safety
    /// `env` is the env of the running callback, and `callbacks` are function values from it.
    pub unsafe fn new(
        env: napi_env,
        name: &str,
        callbacks: &[napi_value],
        deliver: Deliver<T>,
    ) -> JsResult<Self> {
        // SAFETY: valid env (caller).
        let name = unsafe { string(env, name)? };
        let mut refs = Vec::with_capacity(callbacks.len());
        for callback in callbacks {
            let mut reference = ptr::null_mut();
            // SAFETY: valid env and function value (caller).
            check(unsafe { napi_create_reference(env, *callback, 1, &mut reference) })?;
            refs.push(reference);
        }
        let alive = Arc::new(Mutex::new(true));
        let context = Box::into_raw(Box::new(Context {
            callbacks: refs,
            deliver,
            alive: Arc::clone(&alive),
        }));
        let mut raw = ptr::null_mut();
        // SAFETY: valid env; a null `func` is allowed with a `call_js`; `context` stays valid
        // until `finalize::<T>` takes it back, which Node calls exactly once.
        let status = unsafe {
            napi_create_threadsafe_function(
                env,
                ptr::null_mut(),
                ptr::null_mut(),
                name,
                0,
                1,
                context as *mut c_void,
                Some(finalize::<T>),
                context as *mut c_void,
                Some(call_js::<T>),
                &mut raw,
            )
        };
        if let Err(e) = check(status) {
            // SAFETY: creation failed, so Node will never call `finalize`: the context is ours.
            unsafe { finalize::<T>(env, context as *mut c_void, ptr::null_mut()) };
            return Err(e);
        }
        Ok(Tsfn {
            raw,
            alive,
            _values: PhantomData,
        })
    }

    /// Queues `value` for delivery. If the function is closing or gone (environment shutting
    /// down), the value is dropped here.
    pub fn call(&self, value: T) {
        let alive = lock(&self.alive);
        if !*alive {
            return;
        }
        let data = Box::into_raw(Box::new(value));
        // SAFETY: `raw` is live: this `Tsfn` holds one of its thread counts, and Node has not
        // finalized it (`alive`, held locked across the call).
        let status = unsafe {
            napi_call_threadsafe_function(self.raw, data as *mut c_void, NAPI_TSFN_NONBLOCKING)
        };
        if status != NAPI_OK {
            // SAFETY: Node did not take `data`; it is still the box made above.
            drop(unsafe { Box::from_raw(data) });
        }
    }
}

impl<T> Drop for Tsfn<T> {
    fn drop(&mut self) {
        let alive = lock(&self.alive);
        if *alive {
            // SAFETY: gives back the thread count this `Tsfn` held, while Node has not finalized
            // it (`alive`, held locked); `raw` is not used afterwards.
            unsafe { napi_release_threadsafe_function(self.raw, NAPI_TSFN_RELEASE) };
        }
    }
}

fn lock(alive: &Mutex<bool>) -> std::sync::MutexGuard<'_, bool> {
    // A plain flag cannot be left inconsistent by a panicking holder.
    alive
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

unsafe extern "C" fn call_js<T>(
    env: napi_env,
    _js_callback: napi_value,
    context: *mut c_void,
    data: *mut c_void,
) {
    // SAFETY: `data` is a `Box<T>` made by `Tsfn::call`, delivered exactly once.
    let value = unsafe { Box::from_raw(data as *mut T) };
    if env.is_null() {
        // The environment is shutting down: drop the value (closing any fds it owns).
        return;
    }
    // SAFETY: `context` is the `Context<T>` made in `Tsfn::new`, alive until `finalize`, which
    // Node calls after the last `call_js`; only this (JavaScript) thread touches it.
    let context = unsafe { &mut *(context as *mut Context<T>) };
    let result = (|| {
        let mut callbacks = Vec::with_capacity(context.callbacks.len());
        for reference in &context.callbacks {
            let mut callback = ptr::null_mut();
            // SAFETY: valid env; the reference is alive until `finalize`.
            check(unsafe { napi_get_reference_value(env, *reference, &mut callback) })?;
            callbacks.push(callback);
        }
        (context.deliver)(env, &callbacks, *value)
    })();
    if let Err(throw) = result {
        // A pending exception from a callback surfaces as an uncaught exception in Node.
        // SAFETY: valid env on the JavaScript thread.
        unsafe { throw_error(env, throw) };
    }
}

unsafe extern "C" fn finalize<T>(env: napi_env, data: *mut c_void, _hint: *mut c_void) {
    // SAFETY: `data` is the `Context<T>` made in `Tsfn::new`; Node calls this once, last.
    let context = unsafe { Box::from_raw(data as *mut Context<T>) };
    *lock(&context.alive) = false;
    for reference in context.callbacks {
        // SAFETY: valid env on the JavaScript thread; each reference is deleted once.
        unsafe { napi_delete_reference(env, reference) };
    }
}
