//! `class Switch`: the userspace L2 switch (`datapath::switch`) and the uplinks it owns.
//!
//! `new Switch(mtu, agingSeconds)`; `ports()`, `macs()`; `addTapUplink(name, vlan)`,
//! `addStreamUplink(address, vlan)` ('unix:PATH' | 'tcp:HOST:PORT'), `addHostPort(name, onFrame)`,
//! `removeUplink(portId)`, `lockMac(portId, mac)`, `reserveMac(mac)`, `releaseMac(mac)`,
//! `lockIps(portId, addresses)`, `reserveIps(addresses)`, `releaseIps(addresses)`,
//! `inject(portId, frame)`, `close()`. Guest ports are made by
//! `new NetDevice(switch, portName, onEvent, vlan)`.

use std::net::IpAddr;
use std::ptr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datapath::switch::{HostFrame, HostPort, PortKind, StreamAddress, StreamUplink, Switch, TapUplink, Uplink};

use super::js::*;
use super::tsfn::Tsfn;
use super::wrapped::{unwrap, wrap, Wrapped};
use crate::napi_sys::*;

struct SwitchHandle {
    switch: Arc<Switch>,
    uplinks: Vec<Uplink>,
}

pub unsafe extern "C" fn constructor(env: napi_env, info: napi_callback_info) -> napi_value {
    // SAFETY: env and info of this callback.
    unsafe {
        run(env, info, |call| {
            let mtu = get_integer(env, call.args[0], "mtu", u16::MAX as f64)? as u16;
            let aging = get_integer(env, call.args[1], "agingSeconds", 86_400.0)?;
            let handle = SwitchHandle { switch: Switch::new(mtu, Duration::from_secs_f64(aging)), uplinks: Vec::new() };
            wrap(env, call.this, Some(handle))?;
            undefined(env)
        })
    }
}

/// The switch of a JavaScript `Switch` (for `new NetDevice(switch, …)`).
///
/// # Safety
/// `env` and `value` come from the running callback.
pub unsafe fn switch_of(env: napi_env, value: napi_value) -> JsResult<Arc<Switch>> {
    // SAFETY: forwarded from the caller.
    Ok(unsafe { open(env, value)? }.switch.clone())
}

macro_rules! method {
    ($name:ident, |$env:ident, $handle:ident, $call:ident| $body:expr) => {
        pub unsafe extern "C" fn $name($env: napi_env, info: napi_callback_info) -> napi_value {
            // SAFETY: env and info of this callback.
            unsafe {
                run($env, info, |$call| {
                    let $handle = open($env, $call.this)?;
                    $body
                })
            }
        }
    };
}

/// 'aa:bb:cc:dd:ee:ff'.
fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

// `ports()` → [{ id, name, kind, vlan, lockedMac?, lockedIps?, attached, counters: { name: bigint } }].
method!(ports, |env, handle, _call| {
    let ports = handle.switch.ports();
    let mut array = ptr::null_mut();
    check(napi_create_array_with_length(env, ports.len(), &mut array))?;
    for (i, port) in ports.iter().enumerate() {
        let row = object(env)?;
        set(env, row, c"id", uint32(env, port.id)?)?;
        set(env, row, c"name", string(env, &port.name)?)?;
        set(env, row, c"kind", string(env, &port.kind.to_string())?)?;
        set(env, row, c"vlan", uint32(env, port.vlan as u32)?)?;
        if let Some(mac) = handle.switch.locked_mac(port.id) {
            set(env, row, c"lockedMac", string(env, &format_mac(&mac))?)?;
        }
        let ips = handle.switch.locked_ips(port.id);
        if !ips.is_empty() {
            let mut list = ptr::null_mut();
            check(napi_create_array_with_length(env, ips.len(), &mut list))?;
            for (j, ip) in ips.iter().enumerate() {
                check(napi_set_element(env, list, j as u32, string(env, &ip.to_string())?))?;
            }
            set(env, row, c"lockedIps", list)?;
        }
        set(env, row, c"attached", boolean(env, port.is_attached())?)?;
        let counters = object(env)?;
        for (name, value) in port.counters.snapshot() {
            let key = std::ffi::CString::new(name).expect("static counter names have no NUL");
            set(env, counters, &key, bigint_u64(env, value)?)?;
        }
        set(env, row, c"counters", counters)?;
        check(napi_set_element(env, array, i as u32, row))?;
    }
    Ok(array)
});

// `macs()` → [{ mac: 'aa:bb:…', vlan, portId, ageMs }].
method!(macs, |env, handle, _call| {
    let entries = handle.switch.mac_entries();
    let mut array = ptr::null_mut();
    check(napi_create_array_with_length(env, entries.len(), &mut array))?;
    for (i, e) in entries.iter().enumerate() {
        let row = object(env)?;
        set(env, row, c"mac", string(env, &format_mac(&e.mac))?)?;
        set(env, row, c"vlan", uint32(env, e.vlan as u32)?)?;
        set(env, row, c"portId", uint32(env, e.port)?)?;
        set(env, row, c"ageMs", uint32(env, e.age.as_millis().min(u32::MAX as u128) as u32)?)?;
        check(napi_set_element(env, array, i as u32, row))?;
    }
    Ok(array)
});

method!(add_tap_uplink, |env, handle, call| {
    let name = get_string(env, call.args[0], "name")?;
    let vlan = get_integer(env, call.args[1], "vlan", 4094.0)? as u16;
    let uplink = TapUplink::open(&handle.switch, &name, vlan).map_err(|e| coded(e.code(), e.to_string()))?;
    let id = uplink.port.id;
    handle.uplinks.push(Uplink::Tap(uplink));
    uint32(env, id)
});

method!(add_stream_uplink, |env, handle, call| {
    let spec = get_string(env, call.args[0], "address")?;
    let vlan = get_integer(env, call.args[1], "vlan", 4094.0)? as u16;
    let address = match spec.split_once(':') {
        Some(("unix", path)) if !path.is_empty() => StreamAddress::Unix(path.to_string()),
        Some(("tcp", addr)) if addr.contains(':') => StreamAddress::Tcp(addr.to_string()),
        _ => return Err(coded("VU_ERR_BAD_UPLINK", format!("'{spec}' is not unix:PATH or tcp:HOST:PORT"))),
    };
    let uplink = StreamUplink::connect(&handle.switch, address, vlan).map_err(|e| coded(e.code(), e.to_string()))?;
    let id = uplink.port.id;
    handle.uplinks.push(Uplink::Stream(uplink));
    uint32(env, id)
});

// `addHostPort(name, onFrame)`: frames for the control plane (DHCP, ARP) reach
// `onFrame(bytes, fromPortId)`.
method!(add_host_port, |env, handle, args| {
    let name = get_string(env, args.args[0], "name")?;
    let on_frame = get_function(env, args.args[1], "onFrame")?;
    // SAFETY (of the deliver closure): Tsfn calls it on the JavaScript thread with a live env. The
    // frame is dropped after the call, which gives its place in the host port's backlog back.
    let deliver = Box::new(|env, callbacks: &[napi_value], frame: HostFrame| call(env, callbacks[0], &[uint8_array(env, &frame.bytes)?, uint32(env, frame.from)?]));
    let tsfn = Mutex::new(Tsfn::new(env, "vhost-user-net:host-port", &[on_frame], deliver)?);
    let writer = HostPort::new(Box::new(move |frame| tsfn.lock().unwrap_or_else(|e| e.into_inner()).call(frame)));
    let port = handle.switch.add_writer_port(&name, PortKind::Host, 0, Box::new(writer));
    let id = port.id;
    handle.uplinks.push(Uplink::Host(port));
    uint32(env, id)
});

method!(remove_uplink, |env, handle, call| {
    let id = get_integer(env, call.args[0], "portId", u32::MAX as f64)? as u32;
    let Some(position) = handle.uplinks.iter().position(|u| u.port().id == id) else {
        return Err(coded("VU_ERR_NO_SUCH_PORT", format!("no uplink with port id {id}")));
    };
    handle.switch.remove_port(id);
    handle.uplinks.remove(position);
    undefined(env)
});

/// The id of one of the switch's ports, from JavaScript.
unsafe fn existing_port_id(env: napi_env, handle: &SwitchHandle, value: napi_value) -> JsResult<u32> {
    // SAFETY: forwarded from the caller (env and value of the running callback).
    let id = unsafe { get_integer(env, value, "portId", u32::MAX as f64)? } as u32;
    if !handle.switch.ports().iter().any(|p| p.id == id) {
        return Err(coded("VU_ERR_NO_SUCH_PORT", format!("no port with id {id}")));
    }
    Ok(id)
}

/// A NIC's MAC from JavaScript: 6 bytes, unicast.
unsafe fn get_mac(env: napi_env, value: napi_value) -> JsResult<[u8; 6]> {
    // SAFETY: forwarded from the caller (env and value of the running callback).
    let bytes = unsafe { get_bytes(env, value, "mac")? };
    let mac: [u8; 6] = bytes.try_into().map_err(|_| coded("VU_ERR_INVALID_ARG", "mac: not 6 bytes".into()))?;
    if mac[0] & 1 != 0 {
        return Err(coded("VU_ERR_INVALID_ARG", format!("mac: {} is multicast; a NIC's MAC is unicast", format_mac(&mac))));
    }
    Ok(mac)
}

// `lockMac(portId, mac)`: port security for the port: it sends only from `mac`, and no other port
// does.
method!(lock_mac, |env, handle, call| {
    let id = existing_port_id(env, handle, call.args[0])?;
    handle.switch.lock_mac(id, get_mac(env, call.args[1])?);
    undefined(env)
});

// `reserveMac(mac)`: no port without a lock of its own sends from `mac` until `releaseMac(mac)`
// (a named port's MAC while its guest is away).
method!(reserve_mac, |env, handle, call| {
    handle.switch.reserve_mac(get_mac(env, call.args[0])?);
    undefined(env)
});

method!(release_mac, |env, handle, call| {
    handle.switch.release_mac(get_mac(env, call.args[0])?);
    undefined(env)
});

/// IP addresses from JavaScript: IPv4 and IPv6 in text, separated by commas ("10.0.0.5,fd00::5"),
/// each a host's: not unspecified, multicast or broadcast, and IPv6 not an IPv4-mapped address.
unsafe fn get_ips(env: napi_env, value: napi_value) -> JsResult<Vec<IpAddr>> {
    // SAFETY: forwarded from the caller (env and value of the running callback).
    let text = unsafe { get_string(env, value, "addresses")? };
    text.split(',')
        .map(|item| {
            let bad = |why: &str| coded("VU_ERR_INVALID_ARG", format!("addresses: '{item}' {why}"));
            let address: IpAddr = item.parse().map_err(|_| bad("is not an IPv4 or IPv6 address"))?;
            let host = match address {
                IpAddr::V4(a) => !(a.is_unspecified() || a.is_multicast() || a.is_broadcast()),
                IpAddr::V6(a) => !(a.is_unspecified() || a.is_multicast() || a.to_ipv4_mapped().is_some()),
            };
            if host {
                Ok(address)
            } else {
                Err(bad("is not a host's address"))
            }
        })
        .collect()
}

// `lockIps(portId, addresses)`: IP port security for the port (`get_ips`; see the data path's
// ip_guard): it sends only from them, and no other port claims them.
method!(lock_ips, |env, handle, call| {
    let id = existing_port_id(env, handle, call.args[0])?;
    handle.switch.lock_ips(id, &get_ips(env, call.args[1])?);
    undefined(env)
});

// `reserveIps(addresses)`: no port without a lock of its own claims them until
// `releaseIps(addresses)` (a named port's addresses while its guest is away).
method!(reserve_ips, |env, handle, call| {
    get_ips(env, call.args[0])?.into_iter().for_each(|a| handle.switch.reserve_ip(a));
    undefined(env)
});

method!(release_ips, |env, handle, call| {
    get_ips(env, call.args[0])?.into_iter().for_each(|a| handle.switch.release_ip(a));
    undefined(env)
});

// `inject(portId, frame)`: a frame the control plane sends from one of its ports (a DHCP reply).
method!(inject, |env, handle, call| {
    let id = get_integer(env, call.args[0], "portId", u32::MAX as f64)? as u32;
    let frame = get_bytes(env, call.args[1], "frame")?;
    let Some(uplink) = handle.uplinks.iter().find(|u| u.port().id == id) else {
        return Err(coded("VU_ERR_NO_SUCH_PORT", format!("no host port with id {id}")));
    };
    handle.switch.forward_bytes(uplink.port(), frame);
    undefined(env)
});

/// `close()`: removes every uplink (stopping their threads). Idempotent.
pub unsafe extern "C" fn close(env: napi_env, info: napi_callback_info) -> napi_value {
    // SAFETY: env and info of this callback.
    unsafe {
        run(env, info, |call| {
            if let Some(handle) = unwrap::<Option<SwitchHandle>>(env, call.this)?.take() {
                for uplink in &handle.uplinks {
                    handle.switch.remove_port(uplink.port().id);
                }
            }
            undefined(env)
        })
    }
}

unsafe fn open<'a>(env: napi_env, this: napi_value) -> JsResult<&'a mut SwitchHandle> {
    // SAFETY: forwarded from the caller.
    unsafe { unwrap::<Option<SwitchHandle>>(env, this)? }.as_mut().ok_or_else(|| coded("VU_ERR_CLOSED", "the switch is closed".into()))
}

/// None once `close()` ran.
impl Wrapped for Option<SwitchHandle> {
    const CLASS: &'static str = "Switch";
    const TAG: napi_type_tag = napi_type_tag { lower: 0x8620_d8df_b518_a1e2, upper: 0x1a6a_9e7a_0d28_800f };
}
