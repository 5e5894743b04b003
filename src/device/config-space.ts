/**
 * The virtio-net device configuration space (virtio 1.2 §5.1.4, struct virtio_net_config), served to
 * the front-end through GET_CONFIG. Little-endian; fields past `mtu` are zero (no speed/duplex/RSS).
 */
import type { MacAddress } from './mac.ts';

/** VIRTIO_NET_S_LINK_UP: the link is up (only meaningful with VIRTIO_NET_F_STATUS). */
export const VIRTIO_NET_S_LINK_UP = 1;
/** VIRTIO_NET_S_ANNOUNCE: the driver should send a gratuitous packet (GUEST_ANNOUNCE). */
export const VIRTIO_NET_S_ANNOUNCE = 2;

/** sizeof(struct virtio_net_config) up to and including supported_hash_types. */
export const NET_CONFIG_SIZE = 24;

export interface NetConfig {
  mac: MacAddress;
  status: number;
  maxVirtqueuePairs: number;
  mtu: number;
}

export function encodeNetConfig(config: NetConfig): Uint8Array {
  const bytes = new Uint8Array(NET_CONFIG_SIZE);
  const view = new DataView(bytes.buffer);
  bytes.set(config.mac, 0); // mac[6] at 0
  view.setUint16(6, config.status, true); // status at 6
  view.setUint16(8, config.maxVirtqueuePairs, true); // max_virtqueue_pairs at 8
  view.setUint16(10, config.mtu, true); // mtu at 10
  return bytes;
}

/**
 * The bytes GET_CONFIG returns for [offset, offset+size): the front-end may ask for any window,
 * including past the fields we define (those read as zero), up to the 256-byte message limit.
 */
export function readConfigWindow(config: NetConfig, offset: number, size: number): Uint8Array {
  const window = new Uint8Array(size);
  const full = encodeNetConfig(config);
  if (offset < full.length) window.set(full.subarray(offset, Math.min(full.length, offset + size)));
  return window;
}
