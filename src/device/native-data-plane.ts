/**
 * The DataPlane backed by the Rust NetDevice (crates/datapath/src/device.rs) through the addon:
 * converts the codec's structs to the flat arguments the binding takes, nothing else.
 */
import * as native from '../native.ts';
import type { MemoryRegion, VringAddr } from '../protocol/payloads.ts';
import type { DataPlane, QueuePairCounters } from './data-plane.ts';
import { MAX_CARRIED_STATIONS } from './limits.ts';

function regionWords(r: MemoryRegion): bigint[] {
  return [r.guestPhysAddr, r.memorySize, r.userspaceAddr, r.mmapOffset];
}

export class NativeDataPlane implements DataPlane {
  constructor(private readonly device: native.NetDevice) {}

  setFeatures(features: bigint): void {
    this.device.setFeatures(features);
  }

  setMtu(mtu: number): void {
    this.device.setMtu(mtu);
  }

  setMemTable(regions: MemoryRegion[], fds: number[]): void {
    this.device.setMemTable(BigUint64Array.from(regions.flatMap(regionWords)), fds);
  }

  addMemRegion(region: MemoryRegion, fd: number): void {
    this.device.addMemRegion(BigUint64Array.from(regionWords(region)), fd);
  }

  removeMemRegion(region: MemoryRegion): void {
    this.device.removeMemRegion(BigUint64Array.from(regionWords(region)));
  }

  setLogBase(mmapSize: bigint, mmapOffset: bigint, fd: number): void {
    this.device.setLogBase(mmapSize, mmapOffset, fd);
  }

  sendRarp(mac: Uint8Array): void {
    this.device.sendRarp(mac);
  }

  stations(): Uint8Array[] {
    const bytes = this.device.stations(MAX_CARRIED_STATIONS);
    return Array.from({ length: bytes.length / 6 }, (_, i) => bytes.slice(i * 6, i * 6 + 6));
  }

  adoptStations(macs: Uint8Array[]): void {
    const bytes = new Uint8Array(macs.length * 6);
    macs.forEach((mac, i) => bytes.set(mac, i * 6));
    this.device.adoptStations(bytes);
  }

  setVringNum(index: number, num: number): void {
    this.device.setVringNum(index, num);
  }

  setVringAddr(index: number, addr: VringAddr): void {
    const words = BigUint64Array.from([addr.descUserAddr, addr.availUserAddr, addr.usedUserAddr, addr.logGuestAddr, BigInt(addr.flags)]);
    this.device.setVringAddr(index, words);
  }

  setVringBase(index: number, nextAvail: number): void {
    this.device.setVringBase(index, nextAvail);
  }

  getVringBase(index: number): number {
    return this.device.getVringBase(index);
  }

  setVringKick(index: number, fd: number): void {
    this.device.setVringKick(index, fd);
  }

  setVringCall(index: number, fd: number | null): void {
    this.device.setVringCall(index, fd ?? -1);
  }

  setVringErr(index: number, fd: number | null): void {
    this.device.setVringErr(index, fd ?? -1);
  }

  setVringEnable(index: number, enabled: boolean): void {
    this.device.setVringEnable(index, enabled);
  }

  reset(): void {
    this.device.reset();
  }

  counters(): QueuePairCounters[] {
    const words = this.device.counters();
    const pairs: QueuePairCounters[] = [];
    for (let i = 0; i + 8 <= words.length; i += 8) {
      const [rxFrames, rxBytes, rxDroppedNoBuffer, rxTruncated, txFrames, txBytes, txDropped, txErrors] = words.subarray(i, i + 8);
      pairs.push({ rxFrames, rxBytes, rxDroppedNoBuffer, rxTruncated, txFrames, txBytes, txDropped, txErrors });
    }
    return pairs;
  }
}
