// Byte builders for wire fixtures: little-endian integers and concatenation, written
// independently of the codec so fixtures check it rather than mirror it.

export function u8(value: number): Uint8Array {
  return Uint8Array.of(value & 0xff);
}

export function u16le(value: number): Uint8Array {
  return Uint8Array.of(value & 0xff, (value >>> 8) & 0xff);
}

export function u32le(value: number): Uint8Array {
  return Uint8Array.of(value & 0xff, (value >>> 8) & 0xff, (value >>> 16) & 0xff, (value >>> 24) & 0xff);
}

export function u64le(value: bigint): Uint8Array {
  const out = new Uint8Array(8);
  for (let i = 0; i < 8; i++) out[i] = Number((value >> BigInt(8 * i)) & 0xffn);
  return out;
}

export function zeros(length: number): Uint8Array {
  return new Uint8Array(length);
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A whole message: header (request, flags, size = payload length) + payload. */
export function message(request: number, flags: number, ...payload: Uint8Array[]): Uint8Array {
  const body = concat(...payload);
  return concat(u32le(request), u32le(flags), u32le(body.length), body);
}
