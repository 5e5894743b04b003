/**
 * The driver side of a split virtqueue (virtio 1.2 §2.7), laid out in the test front-end's guest
 * memory: what the guest's virtio-net driver does, so tests can say `addDescChain`, `kick`,
 * `checkUsedElem` like the spec does.
 */
export const VIRTQ_DESC_F_NEXT = 1;
export const VIRTQ_DESC_F_WRITE = 2;
export const VIRTQ_DESC_F_INDIRECT = 4;
export const VRING_AVAIL_F_NO_INTERRUPT = 1;
export const VRING_USED_F_NO_NOTIFY = 1;

export interface DescBuf {
  addr: number;
  len: number;
  writable?: boolean;
}

/** Byte offsets of one split ring, all relative to guest-physical address 0 of `memory`. */
export interface RingLayout {
  size: number;
  descAddr: number;
  availAddr: number;
  usedAddr: number;
}

/** Lays a ring of `size` entries at `base` (16-byte aligned desc, then avail, then 4-aligned used). */
export function ringLayout(base: number, size: number): RingLayout {
  const descAddr = base;
  const availAddr = descAddr + 16 * size;
  const usedAddr = align(availAddr + 6 + 2 * size, 4);
  return { size, descAddr, availAddr, usedAddr };
}

export function ringBytes(size: number): number {
  const l = ringLayout(0, size);
  return l.usedAddr + 6 + 8 * size;
}

function align(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

export class DriverRing {
  private readonly view: DataView;
  private nextDesc = 0;
  private availIdx = 0;
  private lastSeenUsed = 0;

  constructor(private readonly memory: ArrayBuffer, readonly layout: RingLayout) {
    this.view = new DataView(memory);
    new Uint8Array(memory, layout.descAddr, ringBytes(layout.size)).fill(0);
  }

  /** Writes a chain into the descriptor table and makes it available; returns its head index. */
  addDescChain(bufs: DescBuf[]): number {
    if (bufs.length === 0 || bufs.length > this.layout.size) throw new Error(`chain of ${bufs.length} descriptors`);
    const ids = bufs.map(() => this.allocDesc());
    bufs.forEach((b, i) => {
      const flags = (b.writable ? VIRTQ_DESC_F_WRITE : 0) | (i + 1 < bufs.length ? VIRTQ_DESC_F_NEXT : 0);
      this.writeDesc(ids[i], b.addr, b.len, flags, i + 1 < bufs.length ? ids[i + 1] : 0);
    });
    this.publish(ids[0]);
    return ids[0];
  }

  /** Raw descriptor write, for malformed tables. */
  writeDesc(id: number, addr: number | bigint, len: number, flags: number, next: number): void {
    const at = this.layout.descAddr + 16 * id;
    this.view.setBigUint64(at, BigInt(addr), true);
    this.view.setUint32(at + 8, len, true);
    this.view.setUint16(at + 12, flags, true);
    this.view.setUint16(at + 14, next, true);
  }

  /** Puts `head` in the avail ring and bumps avail.idx (a release store in a real driver). */
  publish(head: number): void {
    const slot = this.availIdx % this.layout.size;
    this.view.setUint16(this.layout.availAddr + 4 + 2 * slot, head, true);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    this.view.setUint16(this.layout.availAddr + 2, this.availIdx, true);
  }

  /** Sets avail.idx directly (e.g. far ahead, to play a hostile driver). */
  setAvailIdx(idx: number): void {
    this.availIdx = idx & 0xffff;
    this.view.setUint16(this.layout.availAddr + 2, this.availIdx, true);
  }

  /** EVENT_IDX: interrupt me once the used index passes `idx` (what Linux's virtqueue_enable_cb does). */
  setUsedEvent(idx: number): void {
    this.view.setUint16(this.layout.availAddr + 4 + 2 * this.layout.size, idx & 0xffff, true);
  }

  setAvailFlags(flags: number): void {
    this.view.setUint16(this.layout.availAddr, flags, true);
  }

  usedIdx(): number {
    return this.view.getUint16(this.layout.usedAddr + 2, true);
  }

  usedFlags(): number {
    return this.view.getUint16(this.layout.usedAddr, true);
  }

  usedElem(i: number): { id: number; len: number } {
    const at = this.layout.usedAddr + 4 + 8 * (i % this.layout.size);
    return { id: this.view.getUint32(at, true), len: this.view.getUint32(at + 4, true) };
  }

  /** Used elements published since the last call, in order. */
  takeUsed(): { id: number; len: number }[] {
    const out = [];
    const idx = this.usedIdx();
    while (this.lastSeenUsed !== idx) {
      out.push(this.usedElem(this.lastSeenUsed));
      this.lastSeenUsed = (this.lastSeenUsed + 1) & 0xffff;
    }
    this.setUsedEvent(this.lastSeenUsed);
    return out;
  }

  bytes(addr: number, len: number): Uint8Array {
    return new Uint8Array(this.memory, addr, len);
  }

  private allocDesc(): number {
    const id = this.nextDesc;
    this.nextDesc = (this.nextDesc + 1) % this.layout.size;
    return id;
  }
}
