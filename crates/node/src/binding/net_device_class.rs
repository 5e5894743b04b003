//! `class NetDevice`: the data plane of one vhost-user-net device on a TAP
//! (`datapath::device::NetDevice`). One method per ring/memory request; this file only converts.
//!
//! `new NetDevice(tapName, queuePairs, onEvent)` opens the TAP; `onEvent({ kind, queuePair, message })`
//! receives guest faults ('fault') and notices ('notice') from the worker threads.
//! Fd arguments are owned by the device from the call on, also when the call throws.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};

use datapath::device::{DeviceEvent, NetDevice, VringAddrs};
use datapath::Tap;
use vring::RegionSpec;

use super::js::*;
use super::tsfn::Tsfn;
use super::wrapped::{unwrap, wrap, Wrapped};
use crate::napi_sys::*;

/// The wrapped state: None once `close()` ran (workers stopped, TAP closed, fds released).
struct Device(Option<NetDevice>);

pub unsafe extern "C" fn constructor(env: napi_env, info: napi_callback_info) -> napi_value {
    // SAFETY: env and info of this callback.
    unsafe {
        run(env, info, |call| {
            let on_event = get_function(env, call.args[2], "onEvent")?;
            // new NetDevice(tapName, queuePairs, onEvent) | new NetDevice(switch, portName, onEvent, vlan)
            let mut kind = NAPI_UNDEFINED;
            check(napi_typeof(env, call.args[0], &mut kind))?;
            let switch = if kind == NAPI_OBJECT { Some(super::switch_class::switch_of(env, call.args[0])?) } else { None };
            // SAFETY (of the deliver closure): Tsfn calls it on the JavaScript thread with the env
            // and callbacks of the running threadsafe-function call, as deliver_event requires.
            let deliver = Box::new(|env, callbacks: &[napi_value], event| deliver_event(env, callbacks, event));
            let tsfn = Tsfn::new(env, "vhost-user-net:device", &[on_event], deliver)?;
            let tsfn = Mutex::new(tsfn);
            let sink = Arc::new(move |event: DeviceEvent| tsfn.lock().unwrap_or_else(|e| e.into_inner()).call(event));
            let device = match switch {
                Some(switch) => {
                    let name = get_string(env, call.args[1], "portName")?;
                    let vlan = get_integer(env, call.args[3], "vlan", 4094.0)? as u16;
                    NetDevice::new_switch_port(&switch, &name, vlan, sink)
                }
                None => {
                    let tap_name = get_string(env, call.args[0], "tapName")?;
                    let queue_pairs = get_integer(env, call.args[1], "queuePairs", u16::MAX as f64)? as u16;
                    let tap = Tap::open(&tap_name, queue_pairs).map_err(|e| coded(e.code(), e.to_string()))?;
                    NetDevice::new(tap, sink)
                }
            };
            set(env, call.this, c"tapName", string(env, device.port_name())?)?;
            if let Some(port) = device.switch_port() {
                set(env, call.this, c"portId", uint32(env, port.id)?)?;
            }
            wrap(env, call.this, Device(Some(device)))?;
            undefined(env)
        })
    }
}

/// Runs on the JavaScript thread for each device event.
///
/// # Safety
/// `env` and `callbacks` (onEvent) come from the running threadsafe-function call.
unsafe fn deliver_event(env: napi_env, callbacks: &[napi_value], event: DeviceEvent) -> JsResult<()> {
    // SAFETY: as documented on this function.
    unsafe {
        let (kind, queue_pair, message) = match event {
            DeviceEvent::Fault { queue_pair, message } => ("fault", Some(queue_pair), message),
            DeviceEvent::HostFailure { queue_pair, message } => ("host-failure", Some(queue_pair), message),
            DeviceEvent::Notice { message } => ("notice", None, message),
        };
        let value = object(env)?;
        set(env, value, c"kind", string(env, kind)?)?;
        if let Some(queue_pair) = queue_pair {
            set(env, value, c"queuePair", uint32(env, queue_pair as u32)?)?;
        }
        set(env, value, c"message", string(env, &message)?)?;
        call(env, callbacks[0], &[value])
    }
}

/// Declares a method `$name(env, info)` whose body gets the open device and the call.
macro_rules! method {
    ($name:ident, |$env:ident, $device:ident, $call:ident| $body:expr) => {
        pub unsafe extern "C" fn $name($env: napi_env, info: napi_callback_info) -> napi_value {
            // SAFETY: env and info of this callback.
            unsafe {
                run($env, info, |$call| {
                    let $device = open_device($env, $call.this)?;
                    $body
                })
            }
        }
    };
}

method!(set_features, |env, device, call| {
    let features = get_bigint_u64(env, call.args[0], "features")?;
    let applied = device.set_features(features).map_err(device_error)?;
    uint32(env, applied.tun_flags)
});

method!(set_mtu, |env, device, call| {
    let mtu = get_integer(env, call.args[0], "mtu", u16::MAX as f64)? as u16;
    device.set_mtu(mtu).map_err(device_error)?;
    undefined(env)
});

// `setBusyPoll(microseconds)`: how long a worker keeps polling after it last found work (0: off);
// for the queue pairs started from now on.
method!(set_busy_poll, |env, device, call| {
    let micros = get_integer(env, call.args[0], "microseconds", 1_000_000.0)? as u64;
    device.set_busy_poll(std::time::Duration::from_micros(micros));
    undefined(env)
});

method!(set_mem_table, |env, device, call| {
    let fds = owned(get_fds(env, call.args[1], "fds")?);
    let words = get_biguint64_array(env, call.args[0], "regions")?;
    if words.len() != fds.len() * 4 {
        return Err(Throw::InvalidArg(format!("{} region words for {} fds (4 words per region)", words.len(), fds.len())));
    }
    let regions = words.chunks(4).map(region_spec).zip(fds).collect();
    device.set_mem_table(regions).map_err(device_error)?;
    undefined(env)
});

method!(add_mem_region, |env, device, call| {
    let fd = owned_fd(get_fd(env, call.args[1], "fd")?);
    let words = get_biguint64_array(env, call.args[0], "region")?;
    let spec = one_region(&words)?;
    device.add_mem_region(spec, fd).map_err(device_error)?;
    undefined(env)
});

method!(remove_mem_region, |env, device, call| {
    let words = get_biguint64_array(env, call.args[0], "region")?;
    device.remove_mem_region(one_region(&words)?).map_err(device_error)?;
    undefined(env)
});

// `setLogBase(mmapSize: bigint, mmapOffset: bigint, fd)`: maps the dirty-page log (SET_LOG_BASE).
method!(set_log_base, |env, device, call| {
    let fd = owned_fd(get_fd(env, call.args[2], "fd")?);
    let mmap_size = get_bigint_u64(env, call.args[0], "mmapSize")?;
    let mmap_offset = get_bigint_u64(env, call.args[1], "mmapOffset")?;
    device.set_log_base(mmap_size, mmap_offset, fd).map_err(device_error)?;
    undefined(env)
});

// `sendRarp(mac: Uint8Array)`: broadcasts a RARP announcement from the 6-byte MAC (SEND_RARP).
method!(send_rarp, |env, device, call| {
    let bytes = get_bytes(env, call.args[0], "mac")?;
    let mac: [u8; 6] = bytes.try_into().map_err(|_| Throw::InvalidArg(format!("mac must be 6 bytes, got {}", bytes.len())))?;
    device.send_rarp(mac).map_err(device_error)?;
    undefined(env)
});

// `stations(max)` → Uint8Array of 6·n bytes: the MACs the switch last saw on this port, most
// recent first (empty for a TAP).
method!(stations, |env, device, call| {
    let max = get_integer(env, call.args[0], "max", 65536.0)? as usize;
    uint8_array(env, &device.stations(max).concat())
});

// `adoptStations(macs: Uint8Array)`: 6·n bytes of MACs the switch points at this port at once.
method!(adopt_stations, |env, device, call| {
    let bytes = get_bytes(env, call.args[0], "macs")?;
    if bytes.len() % 6 != 0 {
        return Err(Throw::InvalidArg(format!("macs must be 6·n bytes, got {}", bytes.len())));
    }
    let macs: Vec<[u8; 6]> = bytes.chunks_exact(6).map(|m| m.try_into().unwrap()).collect();
    device.adopt_stations(&macs);
    undefined(env)
});

method!(set_vring_num, |env, device, call| {
    let index = queue_index(env, call.args[0])?;
    let num = get_integer(env, call.args[1], "num", u16::MAX as f64)? as u16;
    device.set_vring_num(index, num).map_err(device_error)?;
    undefined(env)
});

method!(set_vring_addr, |env, device, call| {
    let index = queue_index(env, call.args[0])?;
    let words = get_biguint64_array(env, call.args[1], "addrs")?;
    let [desc, avail, used, log, flags] = words[..] else {
        return Err(Throw::InvalidArg("addrs must hold [desc, avail, used, log, flags]".into()));
    };
    let addrs = VringAddrs {
        desc_user_addr: desc,
        avail_user_addr: avail,
        used_user_addr: used,
        log_guest_addr: log,
        flags: flags as u32,
    };
    device.set_vring_addr(index, addrs).map_err(device_error)?;
    undefined(env)
});

method!(set_vring_base, |env, device, call| {
    let index = queue_index(env, call.args[0])?;
    let base = get_integer(env, call.args[1], "base", u32::MAX as f64)? as u32;
    device.set_vring_base(index, base).map_err(device_error)?;
    undefined(env)
});

method!(get_vring_base, |env, device, call| {
    let index = queue_index(env, call.args[0])?;
    let base = device.get_vring_base(index).map_err(device_error)?;
    uint32(env, base)
});

method!(set_vring_kick, |env, device, call| {
    let fd = owned_fd(get_fd(env, call.args[1], "fd")?);
    let index = queue_index(env, call.args[0])?;
    device.set_vring_kick(index, fd).map_err(device_error)?;
    undefined(env)
});

method!(set_vring_call, |env, device, call| {
    let fd = optional_fd(env, call.args[1])?;
    let index = queue_index(env, call.args[0])?;
    device.set_vring_call(index, fd).map_err(device_error)?;
    undefined(env)
});

method!(set_vring_err, |env, device, call| {
    let fd = optional_fd(env, call.args[1])?;
    let index = queue_index(env, call.args[0])?;
    device.set_vring_err(index, fd).map_err(device_error)?;
    undefined(env)
});

method!(set_vring_enable, |env, device, call| {
    let index = queue_index(env, call.args[0])?;
    let enabled = get_boolean(env, call.args[1], "enabled")?;
    device.set_vring_enable(index, enabled).map_err(device_error)?;
    undefined(env)
});

method!(reset, |env, device, _call| {
    device.reset();
    undefined(env)
});

// `counters()` → BigUint64Array, 8 words per queue pair (CountersSnapshot's field order).
method!(counters, |env, device, _call| {
    let words: Vec<u64> = device
        .counters()
        .iter()
        .flat_map(|c| {
            [c.rx_frames, c.rx_bytes, c.rx_dropped_no_buffer, c.rx_truncated, c.tx_frames, c.tx_bytes, c.tx_dropped, c.tx_errors]
        })
        .collect();
    biguint64_array(env, &words)
});

/// `close()`: stops the workers, releases guest memory and fds, closes the TAP. Idempotent.
pub unsafe extern "C" fn close(env: napi_env, info: napi_callback_info) -> napi_value {
    // SAFETY: env and info of this callback.
    unsafe {
        run(env, info, |call| {
            unwrap::<Device>(env, call.this)?.0 = None;
            undefined(env)
        })
    }
}

fn region_spec(words: &[u64]) -> RegionSpec {
    RegionSpec { guest_phys_addr: words[0], memory_size: words[1], userspace_addr: words[2], mmap_offset: words[3] }
}

fn one_region(words: &[u64]) -> JsResult<RegionSpec> {
    if words.len() != 4 {
        return Err(Throw::InvalidArg("a region is [guestPhysAddr, memorySize, userspaceAddr, mmapOffset]".into()));
    }
    Ok(region_spec(words))
}

fn owned_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: the JavaScript caller hands this fd over (documented on the class).
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn owned(fds: Vec<RawFd>) -> Vec<OwnedFd> {
    fds.into_iter().map(owned_fd).collect()
}

/// An fd number, or -1 for "none".
unsafe fn optional_fd(env: napi_env, value: napi_value) -> JsResult<Option<OwnedFd>> {
    let mut number = f64::NAN;
    // SAFETY: valid env and value (caller); a non-number leaves NaN, refused below.
    unsafe { napi_get_value_double(env, value, &mut number) };
    if number == -1.0 {
        return Ok(None);
    }
    // SAFETY: forwarded from the caller.
    Ok(Some(owned_fd(unsafe { get_fd(env, value, "fd")? })))
}

unsafe fn queue_index(env: napi_env, value: napi_value) -> JsResult<u16> {
    // SAFETY: forwarded from the caller.
    Ok(unsafe { get_integer(env, value, "queue index", u16::MAX as f64)? } as u16)
}

fn device_error(e: datapath::device::DeviceError) -> Throw {
    coded(e.code(), e.to_string())
}

/// The open device wrapped in `this`.
///
/// # Safety
/// `env` and `this` come from the running callback.
unsafe fn open_device<'a>(env: napi_env, this: napi_value) -> JsResult<&'a mut NetDevice> {
    // SAFETY: forwarded from the caller.
    unsafe { unwrap::<Device>(env, this)? }.0.as_mut().ok_or_else(|| coded("VU_ERR_CLOSED", "the device is closed".into()))
}

impl Wrapped for Device {
    const CLASS: &'static str = "NetDevice";
    const TAG: napi_type_tag = napi_type_tag { lower: 0x810f_d53c_5d7b_9376, upper: 0x84f9_513d_62b6_9925 };
}
