/**
 * A test front-end used as a station on a switch: RX buffers posted up front (one frame each),
 * numbered frames of a fixed size sent on TX, received frames read back by number.
 */
import type { ExecutionContext } from 'ava';
import type { Mac } from './frames.ts';
import { waitUntil } from './switch-harness.ts';
import { TestFrontend } from './test-frontend.ts';

export const RX = 0;
export const TX = 1;
/** The virtio-net header with VERSION_1 / MRG_RXBUF (virtio 1.2 §5.1.6). */
export const VNET_HDR = 12;
export const FRAME_BYTES = 128;
const RX_BUFFER_BYTES = 2048;
/** IEEE 802 "local experimental" EtherType: nothing in the switch interprets it. */
const ETH_P_EXPERIMENTAL = 0x88b5;

export class Station {
  private readonly rxBufferAt: number[] = [];
  private txPosted = 0;

  constructor(readonly name: string, readonly fe: TestFrontend, readonly mac: Mac) {}

  /** Makes `count` RX buffers available and kicks the RX ring. */
  postRxBuffers(count: number): void {
    for (let i = 0; i < count; i++) {
      const addr = this.fe.alloc(RX_BUFFER_BYTES);
      const head = this.fe.rings[RX].addDescChain([{ addr, len: RX_BUFFER_BYTES, writable: true }]);
      this.rxBufferAt[head] = addr;
    }
    this.fe.kick(RX);
  }

  /** Puts `count` frames from `src` to `dst`, numbered from `firstSeq`, on the TX ring and kicks it. */
  post(dst: Mac, firstSeq: number, count: number, src: Mac = this.mac): void {
    this.queue(dst, firstSeq, count, src);
    this.fe.kick(TX);
  }

  /** As post(), without the kick. */
  queue(dst: Mac, firstSeq: number, count: number, src: Mac = this.mac): void {
    for (let i = 0; i < count; i++) {
      const hdr = this.fe.alloc(VNET_HDR);
      this.fe.bytes(hdr, VNET_HDR).fill(0);
      const frame = this.fe.alloc(FRAME_BYTES);
      const bytes = this.fe.bytes(frame, FRAME_BYTES);
      bytes.set(dst, 0);
      bytes.set(src, 6);
      const view = new DataView(this.fe.memory, frame, FRAME_BYTES);
      view.setUint16(12, ETH_P_EXPERIMENTAL);
      view.setUint32(14, firstSeq + i);
      this.fe.rings[TX].addDescChain([{ addr: hdr, len: VNET_HDR }, { addr: frame, len: FRAME_BYTES }]);
    }
    this.txPosted += count;
  }

  /** post(), then waits until the TX ring used them all. */
  async send(dst: Mac, firstSeq: number, count: number, src: Mac = this.mac): Promise<void> {
    this.post(dst, firstSeq, count, src);
    await this.txDone();
  }

  /** sendFrame() for each frame, then waits until the TX ring used them all. */
  async sendFrames(frames: Uint8Array[]): Promise<void> {
    for (const frame of frames) this.sendFrame(frame);
    await this.txDone();
  }

  private async txDone(): Promise<void> {
    await waitUntil(() => this.fe.rings[TX].usedIdx() === this.txPosted, () => `${this.name}'s TX used idx ${this.fe.rings[TX].usedIdx()} of ${this.txPosted}`);
  }

  /** Puts one whole frame (Ethernet header first) on the TX ring and kicks it. */
  sendFrame(frame: Uint8Array): void {
    const hdr = this.fe.alloc(VNET_HDR);
    this.fe.bytes(hdr, VNET_HDR).fill(0);
    const at = this.fe.alloc(frame.length);
    this.fe.bytes(at, frame.length).set(frame);
    this.fe.rings[TX].addDescChain([{ addr: hdr, len: VNET_HDR }, { addr: at, len: frame.length }]);
    this.txPosted++;
    this.fe.kick(TX);
  }

  /** The frames (virtio-net header left out) that arrived since the last call, whatever they hold. */
  takeFrames(): Uint8Array[] {
    return this.fe.rings[RX].takeUsed().map(({ id, len }) => this.fe.bytes(this.rxBufferAt[id] + VNET_HDR, len - VNET_HDR).slice());
  }

  /** Numbers of the frames that arrived since the last call. */
  takeReceived(): number[] {
    return this.fe.rings[RX].takeUsed().map(({ id, len }) => {
      if (len !== VNET_HDR + FRAME_BYTES) throw new Error(`${this.name}: a used RX buffer of ${len} bytes`);
      return new DataView(this.fe.memory, this.rxBufferAt[id] + VNET_HDR + 14, 4).getUint32(0);
    });
  }

  /** Waits until `count` more frames arrived; returns their numbers. */
  async receive(count: number): Promise<number[]> {
    const seqs: number[] = [];
    await waitUntil(
      () => (seqs.push(...this.takeReceived()), seqs.length >= count),
      () => `${this.name} received ${seqs.length} of ${count}`,
    );
    return seqs;
  }
}

/** A station on a fresh test front-end connected to `socketPath` (closed at teardown), with `rxBuffers` RX buffers posted. */
export async function connectStation(t: ExecutionContext, name: string, socketPath: string, mac: Mac, rxBuffers: number): Promise<Station> {
  const fe = TestFrontend.connect(socketPath, { queueSize: 64, memoryBytes: 1 << 20 });
  t.teardown(() => fe.close());
  await fe.negotiate();
  const station = new Station(name, fe, mac);
  station.postRxBuffers(rxBuffers);
  return station;
}
