/** A DataPlane that records every call (and closes the fds it is given, as the real one does). */
import type { DataPlane, QueuePairCounters } from '../../src/device/data-plane.ts';
import type { MemoryRegion, VringAddr } from '../../src/protocol/payloads.ts';

export type Call = [string, ...unknown[]];

export class RecordingDataPlane implements DataPlane {
  readonly calls: Call[] = [];
  readonly closedFds: number[] = [];
  /** Makes the next call of this name throw (like the native device refusing a value). */
  failNext: string | undefined;
  nextAvail = new Map<number, number>();

  private record(name: string, ...args: unknown[]): void {
    this.calls.push([name, ...args]);
    if (this.failNext === name) {
      this.failNext = undefined;
      throw Object.assign(new Error(`${name} refused`), { code: 'VU_ERR_GUEST_MEMORY' });
    }
  }

  private owned(fds: (number | null)[]): void {
    for (const fd of fds) if (fd !== null) this.closedFds.push(fd);
  }

  setFeatures(features: bigint): void {
    this.record('setFeatures', features);
  }
  setMemTable(regions: MemoryRegion[], fds: number[]): void {
    this.owned(fds);
    this.record('setMemTable', regions.length, fds);
  }
  addMemRegion(region: MemoryRegion, fd: number): void {
    this.owned([fd]);
    this.record('addMemRegion', region.guestPhysAddr, fd);
  }
  removeMemRegion(region: MemoryRegion): void {
    this.record('removeMemRegion', region.guestPhysAddr);
  }
  setLogBase(mmapSize: bigint, mmapOffset: bigint, fd: number): void {
    this.owned([fd]);
    this.record('setLogBase', mmapSize, mmapOffset, fd);
  }
  sendRarp(mac: Uint8Array): void {
    this.record('sendRarp', [...mac]);
  }
  stations(): Uint8Array[] {
    this.record('stations');
    return [];
  }
  adoptStations(macs: Uint8Array[]): void {
    this.record('adoptStations', macs.map((mac) => [...mac]));
  }
  setVringNum(index: number, num: number): void {
    this.record('setVringNum', index, num);
  }
  setVringAddr(index: number, addr: VringAddr): void {
    this.record('setVringAddr', index, addr.descUserAddr);
  }
  setVringBase(index: number, nextAvail: number): void {
    this.record('setVringBase', index, nextAvail);
    this.nextAvail.set(index, nextAvail);
  }
  getVringBase(index: number): number {
    this.record('getVringBase', index);
    return this.nextAvail.get(index) ?? 0;
  }
  setVringKick(index: number, fd: number): void {
    this.owned([fd]);
    this.record('setVringKick', index, fd);
  }
  setVringCall(index: number, fd: number | null): void {
    this.owned([fd]);
    this.record('setVringCall', index, fd);
  }
  setVringErr(index: number, fd: number | null): void {
    this.owned([fd]);
    this.record('setVringErr', index, fd);
  }
  setVringEnable(index: number, enabled: boolean): void {
    this.record('setVringEnable', index, enabled);
  }
  reset(): void {
    this.record('reset');
  }
  counters(): QueuePairCounters[] {
    return [];
  }
}
