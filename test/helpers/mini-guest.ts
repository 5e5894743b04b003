/**
 * A guest network stack in miniature on top of the test front-end: RX buffers posted, frames sent
 * as two-descriptor chains (virtio-net header, frame), frames received one per buffer.
 */
import type { TestFrontend } from './test-frontend.ts';

const HDR = 12;
const RX = 0;
const TX = 1;

export class MiniGuest {
  /** Guest-physical address of the buffer posted under each RX head. */
  readonly rxBufferAt = new Map<number, number>();
  constructor(readonly fe: TestFrontend, readonly rxBufferBytes: number) {}

  postRxBuffers(count: number): void {
    for (let i = 0; i < count; i++) {
      const addr = this.fe.alloc(this.rxBufferBytes);
      const head = this.fe.rings[RX].addDescChain([{ addr, len: this.rxBufferBytes, writable: true }]);
      this.rxBufferAt.set(head, addr);
    }
    this.fe.kick(RX);
  }

  /** Sends a frame as a two-descriptor chain: the virtio-net header, then the frame. */
  send(frame: Uint8Array): void {
    const hdrAddr = this.fe.alloc(HDR);
    this.fe.bytes(hdrAddr, HDR).fill(0);
    const frameAddr = this.fe.alloc(frame.length);
    this.fe.bytes(frameAddr, frame.length).set(frame);
    this.fe.rings[TX].addDescChain([{ addr: hdrAddr, len: HDR }, { addr: frameAddr, len: frame.length }]);
    this.fe.kick(TX);
  }

  /** Receives frames until `match` accepts one (each frame fits one buffer here). */
  async receive<T>(match: (frame: Uint8Array) => T | undefined, timeoutMs = 5000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      for (const { id, len } of this.fe.rings[RX].takeUsed()) {
        const addr = this.rxBufferAt.get(id)!;
        const numBuffers = new DataView(this.fe.memory, addr + 10, 2).getUint16(0, true);
        if (numBuffers !== 1) throw new Error(`num_buffers ${numBuffers} for a small frame`);
        const found = match(this.fe.bytes(addr + HDR, len - HDR).slice());
        if (found !== undefined) return found;
      }
      await this.fe.waitCall(RX, Math.max(1, deadline - Date.now()));
    }
    throw new Error('expected frame not received');
  }
}
