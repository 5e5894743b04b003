/**
 * The virtio-net device this back-end presents: the features it offers, its configuration
 * space and its queue layout (virtio 1.2 §5.1: queue 2N is receiveqN, 2N+1 is transmitqN).
 */
import type { MacAddress } from './mac.ts';
import { encodeNetConfig, readConfigWindow, VIRTIO_NET_S_LINK_UP, type NetConfig } from './config-space.ts';
import { VirtioFeature } from '../protocol/virtio-features.ts';
import { featureMask } from '../protocol/feature-bits.ts';
import { VhostUserProtocolFeature } from '../protocol/protocol-features.ts';

export const DEFAULT_MTU = 1500;

export interface NetDeviceOptions {
  queuePairs: number;
  mac: MacAddress;
  mtu?: number;
  /**
   * Checksum and segmentation offloads: 'all' (default: a TAP takes every kind), 'tcp' (checksum
   * and TCP segmentation only: the switch finishes those in software for a port that does not
   * take them, but not UDP fragmentation), or 'none'.
   */
  offloads?: 'all' | 'tcp' | 'none';
  /**
   * Offer VIRTIO_NET_F_GUEST_ANNOUNCE: after a live migration the guest announces itself (QEMU
   * then sends no SEND_RARP). Default false: the back-end's RARP does it (docs/announce.md).
   */
  guestAnnounce?: boolean;
}

/** The offload features: partial checksums and GSO frames in either direction. */
const OFFLOAD_FEATURES = [
  VirtioFeature.VIRTIO_NET_F_CSUM,
  VirtioFeature.VIRTIO_NET_F_GUEST_CSUM,
  VirtioFeature.VIRTIO_NET_F_GUEST_TSO4,
  VirtioFeature.VIRTIO_NET_F_GUEST_TSO6,
  VirtioFeature.VIRTIO_NET_F_GUEST_ECN,
  VirtioFeature.VIRTIO_NET_F_GUEST_UFO,
  VirtioFeature.VIRTIO_NET_F_HOST_TSO4,
  VirtioFeature.VIRTIO_NET_F_HOST_TSO6,
  VirtioFeature.VIRTIO_NET_F_HOST_ECN,
  VirtioFeature.VIRTIO_NET_F_HOST_UFO,
];

/** UDP fragmentation offload (UFO), both directions: deprecated in Linux, not finished by the switch. */
const UDP_FRAGMENTATION_FEATURES = [VirtioFeature.VIRTIO_NET_F_GUEST_UFO, VirtioFeature.VIRTIO_NET_F_HOST_UFO];

/** Virtio features offered to every driver (see README, "What is negotiated"). */
const BASE_FEATURES = [
  ...OFFLOAD_FEATURES,
  VirtioFeature.VIRTIO_NET_F_MTU,
  VirtioFeature.VIRTIO_NET_F_MAC,
  VirtioFeature.VIRTIO_NET_F_MRG_RXBUF,
  VirtioFeature.VIRTIO_NET_F_STATUS,
  VirtioFeature.VIRTIO_RING_F_INDIRECT_DESC,
  VirtioFeature.VIRTIO_RING_F_EVENT_IDX,
  // Every ring's buffers are used in the order they were made available: TX chains one by one, RX
  // chains taken from the front and put back from the first unused one (`rewind_to`). Drivers with
  // in-order paths (DPDK's virtio PMD) then skip their free-list bookkeeping.
  VirtioFeature.VIRTIO_F_IN_ORDER,
  // Used only when the front-end asks for it (QEMU `packed=on`, testpmd `packed_vq=1`).
  VirtioFeature.VIRTIO_F_RING_PACKED,
  VirtioFeature.VHOST_USER_F_PROTOCOL_FEATURES,
  VirtioFeature.VIRTIO_F_VERSION_1,
  // Live migration: every device write into guest memory is logged while the front-end sets it.
  VirtioFeature.VHOST_F_LOG_ALL,
];

const PROTOCOL_FEATURES = [
  VhostUserProtocolFeature.MQ,
  VhostUserProtocolFeature.LOG_SHMFD,
  VhostUserProtocolFeature.RARP,
  VhostUserProtocolFeature.REPLY_ACK,
  VhostUserProtocolFeature.MTU,
  VhostUserProtocolFeature.CONFIG,
  VhostUserProtocolFeature.CONFIGURE_MEM_SLOTS,
  VhostUserProtocolFeature.STATUS,
  // Back-end state (MAC, MTU, ring bases, counters) travels with a migration (SET_DEVICE_STATE_FD).
  VhostUserProtocolFeature.DEVICE_STATE,
];

export class NetDevice {
  readonly queuePairs: number;
  /** Set at start; a loaded device state (live migration) replaces it. */
  mac: MacAddress;
  mtu: number;
  readonly offeredFeatures: bigint;
  readonly offeredProtocolFeatures: bigint;

  constructor(options: NetDeviceOptions) {
    this.queuePairs = options.queuePairs;
    this.mac = options.mac;
    this.mtu = options.mtu ?? DEFAULT_MTU;
    let features = options.queuePairs > 1 ? [...BASE_FEATURES, VirtioFeature.VIRTIO_NET_F_MQ] : BASE_FEATURES;
    if (options.offloads === 'none') features = features.filter((f) => !OFFLOAD_FEATURES.includes(f));
    if (options.offloads === 'tcp') features = features.filter((f) => !UDP_FRAGMENTATION_FEATURES.includes(f));
    if (options.guestAnnounce) features = [...features, VirtioFeature.VIRTIO_NET_F_GUEST_ANNOUNCE];
    this.offeredFeatures = featureMask(...features);
    this.offeredProtocolFeatures = featureMask(...PROTOCOL_FEATURES);
  }

  /** Number of virtqueues: one RX and one TX per queue pair (no control queue: the front-end handles it). */
  get queueCount(): number {
    return this.queuePairs * 2;
  }

  config(): NetConfig {
    return { mac: this.mac, status: VIRTIO_NET_S_LINK_UP, maxVirtqueuePairs: this.queuePairs, mtu: this.mtu };
  }

  configBytes(): Uint8Array {
    return encodeNetConfig(this.config());
  }

  readConfig(offset: number, size: number): Uint8Array {
    return readConfigWindow(this.config(), offset, size);
  }
}
