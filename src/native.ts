/**
 * The one typed loader of the Rust addon (`crates/node`, built by `npm run build:native` into
 * `vhost-user-net.<platform>-<arch>-gnu.node` at the package root, napi-rs naming).
 *
 * Fds are plain numbers. Whoever receives one owns it and must `closeFd` it (or hand it to a
 * `Connection`, which then owns it). Errors thrown (or passed to `onClose`, or rejected) are
 * `Error`s with a stable `code`, see `NativeError`.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** Stable codes of errors raised by the addon. */
export type NativeErrorCode =
  /** A socket system call failed, or listen/connect refused the path (errno says why). */
  | 'VU_ERR_SOCKET'
  /** Hostile front-end: a header announced a payload larger than 4096 bytes (nothing read). */
  | 'VU_ERR_MSG_TOO_LARGE'
  /** Hostile front-end: more than 16 fds on one message (MSG_CTRUNC); those that arrived were closed. */
  | 'VU_ERR_FDS_TRUNCATED'
  /** The peer closed the socket in the middle of a message. */
  | 'VU_ERR_CLOSED_MID_MESSAGE'
  /** send/start/peerCredentials on a closed Connection. */
  | 'VU_ERR_CLOSED'
  /** start() called twice. */
  | 'VU_ERR_INVALID_STATE'
  /** A non-socket system call failed (memfd_create, ftruncate, mmap, eventfd, read, write, poll, close). */
  | 'VU_ERR_SYSCALL'
  /** An argument had the wrong type or range (also: more than 16 fds or zero bytes to send). */
  | 'VU_ERR_INVALID_ARG'
  /** A Node-API call failed inside the addon (a bug, or the environment is shutting down). */
  | 'VU_ERR_NAPI';

export interface NativeError extends Error {
  code: NativeErrorCode;
  /** Positive C errno, when a system call failed. */
  errno?: number;
  /** Symbolic errno ('EAGAIN', 'ENOENT', ...; 'UNKNOWN' for rare ones), when a system call failed. */
  errnoName?: string;
  /** The system call that failed ('sendmsg', 'connect', ...). */
  syscall?: string;
}

/** True if `err` came from the addon (optionally: with this `code`). */
export function isNativeError(err: unknown, code?: NativeErrorCode): err is NativeError {
  if (!(err instanceof Error)) return false;
  const c = (err as { code?: unknown }).code;
  return typeof c === 'string' && c.startsWith('VU_ERR_') && (code === undefined || c === code);
}

export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

/** Accepts connections on a listening socket from a thread of its own; keeps the process alive until closed. */
export interface Acceptor {
  /** Stops accepting (the listening fd stays open, and the caller's). Idempotent. */
  close(): void;
}

/**
 * A connected vhost-user socket. Messages carry fds via SCM_RIGHTS, which Node's `net` cannot
 * receive, so reading and sending are done by the addon.
 */
export interface Connection {
  /**
   * Starts the reader thread. It reads one vhost-user message at a time: the 12-byte header
   * with up to 16 fds, then exactly the payload size the header announces (at most 4096, else
   * `VU_ERR_MSG_TOO_LARGE` without reading it). Each message reaches `onMessage(bytes, fds)`
   * in order (`bytes` = header + payload; the fds are the callee's to close). After end-of-file,
   * an error, or `close()`, `onClose(error | null)` is called once, last. At most 64 delivered
   * messages may be in flight: the reader waits for `onMessage` calls to return. A peer that
   * stops mid-message blocks only this connection's thread. While started and open, the
   * connection keeps the process alive.
   */
  start(onMessage: (msg: Uint8Array, fds: number[]) => void, onClose: (err: NativeError | null) => void): void;
  /**
   * Sends one message (fds via SCM_RIGHTS; they stay the caller's) with MSG_DONTWAIT|MSG_NOSIGNAL:
   * a peer that does not read its replies eventually gets `VU_ERR_SOCKET` / errnoName 'EAGAIN'
   * (close the connection then: part of the message may have been sent); a gone peer 'EPIPE'.
   */
  send(bytes: Uint8Array, fds?: number[]): void;
  /** SO_PEERCRED of the peer. */
  peerCredentials(): PeerCredentials;
  /**
   * Whether the peer has closed its end, asked of the kernel without waiting: true as soon as the
   * peer closes, possibly before `onClose` is called (and always after `close()`).
   */
  peerHungUp(): boolean;
  /** Shuts the socket down, waits for the reader thread, closes the fd. Idempotent. */
  close(): void;
}

/** What a NetDevice reports from its worker threads. */
export type DeviceEvent =
  /** Hostile guest: a queue pair stopped because the driver broke a ring (one per fault). */
  | { kind: 'fault'; queuePair: number; message: string }
  /** A queue pair stopped because the host side failed (the TAP deleted under it): not the guest. */
  | { kind: 'host-failure'; queuePair: number; message: string }
  /** Worth a log line, no action needed. */
  | { kind: 'notice'; message: string };

/**
 * The Rust data plane of one virtio-net device on a TAP (crates/datapath/src/device.rs): one
 * method per ring/memory request. Fd arguments belong to the device from the call on, also when
 * it throws. Errors carry codes VU_ERR_GUEST_MEMORY, VU_ERR_BAD_RING, VU_ERR_BAD_QUEUE_INDEX,
 * VU_ERR_TAP, VU_ERR_WORKER, VU_ERR_DIRTY_LOG, VU_ERR_CLOSED, VU_ERR_INVALID_ARG.
 */
export interface NetDevice {
  /** The TAP's interface name as the kernel reports it (in switch mode: the port's name). */
  readonly tapName: string;
  /** In switch mode: the id of the device's switch port. */
  readonly portId?: number;
  /** Applies acked virtio features; returns the TUN_F_* offload flags the TAP accepted. */
  setFeatures(features: bigint): number;
  setMtu(mtu: number): void;
  /** 4 words per region: guestPhysAddr, memorySize, userspaceAddr, mmapOffset; one fd per region. */
  setMemTable(regions: BigUint64Array, fds: number[]): void;
  addMemRegion(region: BigUint64Array, fd: number): void;
  removeMemRegion(region: BigUint64Array): void;
  /** SET_LOG_BASE: maps the dirty-page log; the fd is the device's from the call on. Error code VU_ERR_DIRTY_LOG. */
  setLogBase(mmapSize: bigint, mmapOffset: bigint, fd: number): void;
  /** How long a worker keeps polling after it last found work, in µs (0: off, the default); for queue pairs started later. */
  setBusyPoll(microseconds: number): void;
  /** SEND_RARP: broadcasts a RARP announcement from the 6-byte MAC out of the TAP. */
  sendRarp(mac: Uint8Array): void;
  /** 6·n bytes: the MACs the switch last saw on this port, most recent first, at most `max` (none for a TAP). */
  stations(max: number): Uint8Array;
  /** 6·n bytes of MACs the switch points at this port at once (a TAP ignores them). */
  adoptStations(macs: Uint8Array): void;
  setVringNum(index: number, num: number): void;
  /** [descUserAddr, availUserAddr, usedUserAddr, logGuestAddr, flags]. */
  setVringAddr(index: number, addrs: BigUint64Array): void;
  setVringBase(index: number, nextAvail: number): void;
  getVringBase(index: number): number;
  setVringKick(index: number, fd: number): void;
  /** fd -1: no call fd (the front-end polls or does not want interrupts). */
  setVringCall(index: number, fd: number): void;
  setVringErr(index: number, fd: number): void;
  setVringEnable(index: number, enabled: boolean): void;
  reset(): void;
  /** 8 words per queue pair: rxFrames, rxBytes, rxDroppedNoBuffer, rxTruncated, txFrames, txBytes, txDropped, txErrors. */
  counters(): BigUint64Array;
  /** Stops the workers, releases memory and fds, closes the TAP. Idempotent. */
  close(): void;
}

/** One switch port as `Switch.ports()` lists it. */
export interface SwitchPortInfo {
  id: number;
  name: string;
  kind: 'vhost-user' | 'tap' | 'stream' | 'host';
  vlan: number;
  /** Port security: the one MAC the port sends from, which no other port sends from. */
  lockedMac?: string;
  /** IPv4 port security: the addresses the port sends IPv4 and ARP from, which no other port claims. */
  lockedIps?: string[];
  /** Frames forwarded to the port can go somewhere: false while a guest's RX ring is not started (or broke), and once a stream uplink's peer has left. */
  attached: boolean;
  /** toPortFrames, toPortBytes, fromPortFrames, fromPortBytes, dropNoBuffer, dropNotReady, dropRunt, dropTooBig, dropTagged, dropSpoofed, dropPortError, dropBadOffload, learnTableFull. */
  counters: Record<string, bigint>;
}

export interface SwitchMacEntry {
  mac: string;
  vlan: number;
  portId: number;
  ageMs: number;
}

/**
 * The userspace L2 switch (crates/datapath/src/switch): guest ports are `new NetDevice(switch,
 * portName, onEvent, vlan)`; uplinks and the host port (the control plane's DHCP server) are
 * added here. Errors: VU_ERR_TAP, VU_ERR_UPLINK_CONNECT, VU_ERR_BAD_UPLINK, VU_ERR_NO_SUCH_PORT.
 */
export interface Switch {
  ports(): SwitchPortInfo[];
  macs(): SwitchMacEntry[];
  addTapUplink(name: string, vlan: number): number;
  /** 'unix:PATH' or 'tcp:HOST:PORT' (QEMU's socket netdev framing); connects now. */
  addStreamUplink(address: string, vlan: number): number;
  /** Frames for the control plane (DHCP to a server, ARP) reach `onFrame`, with the port they came in on. */
  addHostPort(name: string, onFrame: (frame: Uint8Array, fromPortId: number) => void): number;
  removeUplink(portId: number): void;
  /** Port security for the port: it sends only from `mac` (6 bytes, unicast), and no other port does. */
  lockMac(portId: number, mac: Uint8Array): void;
  /** No port without a lock of its own sends from `mac` until `releaseMac(mac)` (a named port's MAC while its guest is away). */
  reserveMac(mac: Uint8Array): void;
  releaseMac(mac: Uint8Array): void;
  /**
   * IP port security for the port (`addresses`: IPv4 and IPv6 in text, comma-separated): it sends
   * IPv4, IPv6 and ARP only from them (or from 0.0.0.0 or :: what a station without an address
   * sends) and nothing but IPv4, IPv6, ARP and RARP, no DHCP or DHCPv6 server's message and no
   * router advertisement, and no other port claims them.
   */
  lockIps(portId: number, addresses: string): void;
  /** No port without a lock of its own claims `addresses` until `releaseIps` (a named port's addresses while its guest is away). */
  reserveIps(addresses: string): void;
  releaseIps(addresses: string): void;
  /** Sends a frame into the switch from a host port. */
  inject(portId: number, frame: Uint8Array): void;
  close(): void;
}

interface AddonExports {
  listenUnix(path: string, mode: number): number;
  connectUnix(path: string): number;
  closeFd(fd: number): void;
  openFdCount(): number;
  waitReadable(fd: number, timeoutMs: number): Promise<boolean>;
  memfdCreate(name: string, size: number): number;
  mapShared(fd: number, offset: number, length: number): ArrayBuffer;
  eventfdCreate(): number;
  eventfdWrite(fd: number, value: bigint): void;
  eventfdRead(fd: number): bigint | null;
  Connection: new (fd: number) => Connection;
  Acceptor: new (listenFd: number, onConnection: (fd: number) => void) => Acceptor;
  NetDevice: NetDeviceConstructor;
  Switch: new (mtu: number, agingSeconds: number) => Switch;
}

interface NetDeviceConstructor {
  /** A device on a TAP, opened (or created when privileged) with `queuePairs` queues. */
  new (tapName: string, queuePairs: number, onEvent: (event: DeviceEvent) => void): NetDevice;
  /** A device on a new port of the switch `segment` (one queue pair); closing the device removes the port. */
  new (segment: Switch, portName: string, onEvent: (event: DeviceEvent) => void, vlan: number): NetDevice;
}

function loadAddon(): AddonExports {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(`vhost-user-net: no native addon for ${process.platform}-${process.arch} (only linux-x64-gnu is built)`);
  }
  const file = fileURLToPath(new URL('../vhost-user-net.linux-x64-gnu.node', import.meta.url));
  return createRequire(import.meta.url)(file) as AddonExports;
}

const addon = loadAddon();

/**
 * Creates a listening UNIX socket at `path` (non-blocking, CLOEXEC) with permissions `mode`
 * (e.g. 0o600); returns its fd. A socket file nobody listens on is replaced; a live socket
 * (errnoName 'EADDRINUSE') or a non-socket file ('EEXIST') is refused.
 */
export const listenUnix: (path: string, mode: number) => number = addon.listenUnix;
/**
 * Connects to `path` without waiting; returns a blocking, CLOEXEC socket fd. Throws
 * `VU_ERR_SOCKET` with errnoName 'ENOENT' / 'ECONNREFUSED' / 'EAGAIN' (backlog full) so the caller can retry.
 */
export const connectUnix: (path: string) => number = addon.connectUnix;
/** Closes an fd this process owns. */
export const closeFd: (fd: number) => void = addon.closeFd;
/** Number of open fds in this process (entries of /proc/self/fd), for resource-hygiene tests. */
export const openFdCount: () => number = addon.openFdCount;
/** Resolves true when `fd` is readable (or hung up), false after `timeoutMs`. Polls on a thread of its own. */
export const waitReadable: (fd: number, timeoutMs: number) => Promise<boolean> = addon.waitReadable;
/** A CLOEXEC memfd of `size` zero bytes (guest RAM for the test front-end). */
export const memfdCreate: (name: string, size: number) => number = addon.memfdCreate;
/**
 * Maps `length` bytes of `fd` from `offset` (page aligned) MAP_SHARED read-write, as an
 * ArrayBuffer that unmaps when garbage collected. The fd may be closed afterwards.
 */
export const mapShared: (fd: number, offset: number, length: number) => ArrayBuffer = addon.mapShared;
/** A new eventfd (EFD_CLOEXEC | EFD_NONBLOCK), counter 0. */
export const eventfdCreate: () => number = addon.eventfdCreate;
/** Adds `value` to the eventfd counter. */
export const eventfdWrite: (fd: number, value: bigint) => void = addon.eventfdWrite;
/** Reads and resets the counter; null when it was zero. */
export const eventfdRead: (fd: number) => bigint | null = addon.eventfdRead;

/** `new Connection(fd)` takes ownership of a connected socket fd. */
export const Connection: new (fd: number) => Connection = addon.Connection;
/**
 * `new Acceptor(listenFd, onConnection)` accepts on `listenFd` (which stays the caller's) and
 * calls `onConnection(fd)` with each new connected socket fd, owned by the callee.
 */
export const Acceptor: new (listenFd: number, onConnection: (fd: number) => void) => Acceptor = addon.Acceptor;

/** Opens the TAP (creating it when privileged) and makes a device with `queuePairs` queue pairs. */
export const NetDevice: NetDeviceConstructor = addon.NetDevice;

/** A switch for frames of up to `mtu` payload bytes; MAC entries age out after `agingSeconds`. */
export const Switch: new (mtu: number, agingSeconds: number) => Switch = addon.Switch;
