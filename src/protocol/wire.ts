// Bounds-checked little-endian reader and writer for payload structs.
// The reader never reads past the payload: a short payload is a VU_ERR_BAD_SIZE, whatever the
// front-end wrote in the header. The writer checks every value fits its field.

import { ProtocolError } from './errors.ts';

const U64_MAX = (1n << 64n) - 1n;

/** Sequential reader over one message payload. */
export class PayloadReader {
  private readonly view: DataView;
  private offset = 0;

  constructor(private readonly bytes: Uint8Array, private readonly request: string) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Bytes not read yet. */
  get remaining(): number {
    return this.bytes.length - this.offset;
  }

  u8(): number {
    return this.view.getUint8(this.take(1));
  }

  u16(): number {
    return this.view.getUint16(this.take(2), true);
  }

  u32(): number {
    return this.view.getUint32(this.take(4), true);
  }

  u64(): bigint {
    return this.view.getBigUint64(this.take(8), true);
  }

  /** A copy of the next `length` bytes (the caller may keep it after the buffer is reused). */
  bytesCopy(length: number): Uint8Array {
    const start = this.take(length);
    return this.bytes.slice(start, start + length);
  }

  /** Skip `length` bytes of padding. */
  skip(length: number): void {
    this.take(length);
  }

  private take(length: number): number {
    if (length > this.remaining) {
      throw new ProtocolError('VU_ERR_BAD_SIZE', `payload too short: need ${length} more bytes at offset ${this.offset}, have ${this.remaining}`, this.request);
    }
    const at = this.offset;
    this.offset += length;
    return at;
  }
}

/** Growable little-endian writer; `finish()` returns exactly the bytes written. */
export class PayloadWriter {
  private bytes = new Uint8Array(64);
  private view = new DataView(this.bytes.buffer);
  private length = 0;

  u8(value: number): this {
    checkUint(value, 0xff, 'u8');
    const at = this.reserve(1);
    this.view.setUint8(at, value);
    return this;
  }

  u16(value: number): this {
    checkUint(value, 0xffff, 'u16');
    const at = this.reserve(2);
    this.view.setUint16(at, value, true);
    return this;
  }

  u32(value: number): this {
    checkUint(value, 0xffff_ffff, 'u32');
    const at = this.reserve(4);
    this.view.setUint32(at, value, true);
    return this;
  }

  u64(value: bigint): this {
    if (typeof value !== 'bigint' || value < 0n || value > U64_MAX) {
      throw new ProtocolError('VU_ERR_BAD_VALUE', `${String(value)} does not fit in u64`);
    }
    const at = this.reserve(8);
    this.view.setBigUint64(at, value, true);
    return this;
  }

  raw(data: Uint8Array): this {
    const at = this.reserve(data.length);
    this.bytes.set(data, at);
    return this;
  }

  zeros(length: number): this {
    const at = this.reserve(length);
    this.bytes.fill(0, at, at + length);
    return this;
  }

  finish(): Uint8Array {
    return this.bytes.slice(0, this.length);
  }

  /** Make room for `length` more bytes and return their offset. Replaces bytes/view: call it before reading them. */
  private reserve(length: number): number {
    if (this.length + length > this.bytes.length) {
      const grown = new Uint8Array(Math.max(this.bytes.length * 2, this.length + length));
      grown.set(this.bytes.subarray(0, this.length));
      this.bytes = grown;
      this.view = new DataView(grown.buffer);
    }
    const at = this.length;
    this.length += length;
    return at;
  }
}

function checkUint(value: number, max: number, field: string): void {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new ProtocolError('VU_ERR_BAD_VALUE', `${value} does not fit in ${field}`);
  }
}
