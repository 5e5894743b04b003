//! The Node-API surface: registers the functions and classes `src/native.ts` declares. Each
//! entry converts its arguments, calls a plain-Rust module, and converts the result or error.
#![warn(unsafe_op_in_unsafe_fn)]

mod acceptor_class;
mod connection_class;
mod eventfd_functions;
mod fd_functions;
mod js;
mod memory_functions;
mod net_device_class;
mod socket_functions;
mod switch_class;
mod tsfn;
mod wrapped;

use std::ffi::CStr;
use std::ptr;

use crate::napi_sys::*;

type Callback = unsafe extern "C" fn(napi_env, napi_callback_info) -> napi_value;

const FUNCTIONS: &[(&CStr, Callback)] = &[
    (c"listenUnix", socket_functions::listen),
    (c"connectUnix", socket_functions::connect),
    (c"closeFd", fd_functions::close),
    (c"openFdCount", fd_functions::open_count),
    (c"waitReadable", fd_functions::wait_readable),
    (c"memfdCreate", memory_functions::memfd),
    (c"mapShared", memory_functions::map_shared),
    (c"eventfdCreate", eventfd_functions::create),
    (c"eventfdWrite", eventfd_functions::write),
    (c"eventfdRead", eventfd_functions::read),
];

const CONNECTION_METHODS: &[(&CStr, Callback)] = &[
    (c"start", connection_class::start),
    (c"send", connection_class::send),
    (c"peerCredentials", connection_class::peer_credentials),
    (c"peerHungUp", connection_class::peer_hung_up),
    (c"close", connection_class::close),
];

const ACCEPTOR_METHODS: &[(&CStr, Callback)] = &[(c"close", acceptor_class::close)];

const SWITCH_METHODS: &[(&CStr, Callback)] = &[
    (c"ports", switch_class::ports),
    (c"macs", switch_class::macs),
    (c"addTapUplink", switch_class::add_tap_uplink),
    (c"addStreamUplink", switch_class::add_stream_uplink),
    (c"addHostPort", switch_class::add_host_port),
    (c"removeUplink", switch_class::remove_uplink),
    (c"lockMac", switch_class::lock_mac),
    (c"reserveMac", switch_class::reserve_mac),
    (c"releaseMac", switch_class::release_mac),
    (c"lockIps", switch_class::lock_ips),
    (c"reserveIps", switch_class::reserve_ips),
    (c"releaseIps", switch_class::release_ips),
    (c"inject", switch_class::inject),
    (c"close", switch_class::close),
];

const NET_DEVICE_METHODS: &[(&CStr, Callback)] = &[
    (c"setFeatures", net_device_class::set_features),
    (c"setMtu", net_device_class::set_mtu),
    (c"setMemTable", net_device_class::set_mem_table),
    (c"addMemRegion", net_device_class::add_mem_region),
    (c"removeMemRegion", net_device_class::remove_mem_region),
    (c"setLogBase", net_device_class::set_log_base),
    (c"sendRarp", net_device_class::send_rarp),
    (c"setBusyPoll", net_device_class::set_busy_poll),
    (c"stations", net_device_class::stations),
    (c"adoptStations", net_device_class::adopt_stations),
    (c"setVringNum", net_device_class::set_vring_num),
    (c"setVringAddr", net_device_class::set_vring_addr),
    (c"setVringBase", net_device_class::set_vring_base),
    (c"getVringBase", net_device_class::get_vring_base),
    (c"setVringKick", net_device_class::set_vring_kick),
    (c"setVringCall", net_device_class::set_vring_call),
    (c"setVringErr", net_device_class::set_vring_err),
    (c"setVringEnable", net_device_class::set_vring_enable),
    (c"reset", net_device_class::reset),
    (c"counters", net_device_class::counters),
    (c"close", net_device_class::close),
];

/// Module entry point Node looks up when it loads the addon.
///
/// # Safety
/// Called by Node with a live env and the module's `exports` object.
#[no_mangle]
pub unsafe extern "C" fn napi_register_module_v1(env: napi_env, exports: napi_value) -> napi_value {
    // SAFETY: env and exports from Node (see above).
    let result = unsafe { register(env, exports) };
    if let Err(throw) = result {
        // SAFETY: as above.
        unsafe { js::throw_error(env, throw) };
    }
    exports
}

unsafe fn register(env: napi_env, exports: napi_value) -> js::JsResult<()> {
    let mut properties: Vec<_> = FUNCTIONS
        .iter()
        .map(|(name, method)| {
            property(
                name,
                Some(*method),
                ptr::null_mut(),
                NAPI_DEFAULT_JSPROPERTY,
            )
        })
        .collect();
    // SAFETY: env from Node (caller).
    unsafe {
        let connection = class(
            env,
            c"Connection",
            connection_class::constructor,
            CONNECTION_METHODS,
        )?;
        let acceptor = class(
            env,
            c"Acceptor",
            acceptor_class::constructor,
            ACCEPTOR_METHODS,
        )?;
        let net_device = class(env, c"NetDevice", net_device_class::constructor, NET_DEVICE_METHODS)?;
        properties.push(property(c"NetDevice", None, net_device, NAPI_DEFAULT_JSPROPERTY));
        let switch = class(env, c"Switch", switch_class::constructor, SWITCH_METHODS)?;
        properties.push(property(c"Switch", None, switch, NAPI_DEFAULT_JSPROPERTY));
        properties.push(property(
            c"Connection",
            None,
            connection,
            NAPI_DEFAULT_JSPROPERTY,
        ));
        properties.push(property(
            c"Acceptor",
            None,
            acceptor,
            NAPI_DEFAULT_JSPROPERTY,
        ));
        js::check(napi_define_properties(
            env,
            exports,
            properties.len(),
            properties.as_ptr(),
        ))
    }
}

unsafe fn class(
    env: napi_env,
    name: &CStr,
    constructor: Callback,
    methods: &[(&'static CStr, Callback)],
) -> js::JsResult<napi_value> {
    let properties: Vec<_> = methods
        .iter()
        .map(|(name, method)| property(name, Some(*method), ptr::null_mut(), NAPI_DEFAULT_METHOD))
        .collect();
    let mut class = ptr::null_mut();
    // SAFETY: env from Node (caller); `name` is NUL-terminated (length: NAPI_AUTO_LENGTH) and
    // `properties` holds `properties.len()` descriptors with static names.
    js::check(unsafe {
        napi_define_class(
            env,
            name.as_ptr(),
            usize::MAX,
            Some(constructor),
            ptr::null_mut(),
            properties.len(),
            properties.as_ptr(),
            &mut class,
        )
    })?;
    Ok(class)
}

/// A method (`value` null) or a value property (`method` None).
fn property(
    name: &'static CStr,
    method: Option<Callback>,
    value: napi_value,
    attributes: napi_property_attributes,
) -> napi_property_descriptor {
    napi_property_descriptor {
        utf8name: name.as_ptr(),
        name: ptr::null_mut(),
        method,
        getter: None,
        setter: None,
        value,
        attributes,
        data: ptr::null_mut(),
    }
}
