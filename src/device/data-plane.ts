/**
 * What the session asks of the data plane, one method per ring/memory request. The real one is the
 * Rust NetDevice (src/native.ts); tests use a recording fake.
 *
 * Ownership: every method that takes a file descriptor owns it from the call on — also when it
 * throws — and closes it exactly once. Errors are thrown as Error objects with a stable `code`
 * (e.g. VU_ERR_GUEST_MEMORY); the session turns them into a failure reply.
 */
import type { MemoryRegion, VringAddr } from '../protocol/payloads.ts';

export interface QueuePairCounters {
  rxFrames: bigint;
  rxBytes: bigint;
  rxDroppedNoBuffer: bigint;
  rxTruncated: bigint;
  txFrames: bigint;
  txBytes: bigint;
  txDropped: bigint;
  txErrors: bigint;
}

export interface DataPlane {
  /** The virtio features the driver acked (SET_FEATURES): header length, MRG_RXBUF, EVENT_IDX, TAP offloads. */
  setFeatures(features: bigint): void;
  /** Replaces the whole memory table (SET_MEM_TABLE); rings are re-translated and keep running. */
  setMemTable(regions: MemoryRegion[], fds: number[]): void;
  addMemRegion(region: MemoryRegion, fd: number): void;
  removeMemRegion(region: MemoryRegion): void;
  /**
   * Maps the dirty-page log (SET_LOG_BASE): `mmapSize` bytes from `mmapOffset` of `fd`; it is
   * written while VHOST_F_LOG_ALL is in the features and replaces the previous log.
   */
  setLogBase(mmapSize: bigint, mmapOffset: bigint, fd: number): void;
  /** Broadcasts a RARP announcement from `mac` (6 bytes) out of the port (SEND_RARP). */
  sendRarp(mac: Uint8Array): void;
  /** MACs the port's switch last saw on it, most recent first, at most MAX_CARRIED_STATIONS (none for a TAP). */
  stations(): Uint8Array[];
  /** Points `macs` at this port at once (stations arriving with a migrated guest; a TAP ignores them). */
  adoptStations(macs: Uint8Array[]): void;
  setVringNum(index: number, num: number): void;
  /** Ring addresses are front-end virtual addresses; they must lie inside the memory table. */
  setVringAddr(index: number, addr: VringAddr): void;
  setVringBase(index: number, nextAvail: number): void;
  /** Stops the ring and returns the index of the next available descriptor to process. */
  getVringBase(index: number): number;
  /** Starts the ring (it is processed from now on; enabled or not is separate). */
  setVringKick(index: number, fd: number): void;
  setVringCall(index: number, fd: number | null): void;
  setVringErr(index: number, fd: number | null): void;
  setVringEnable(index: number, enabled: boolean): void;
  /** Stops every ring, unmaps guest memory, closes every fd: back to a fresh device. */
  reset(): void;
  counters(): QueuePairCounters[];
}
