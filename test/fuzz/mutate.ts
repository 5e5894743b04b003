/**
 * Hostile vhost-user messages: well-formed requests (the codec's byte fixtures) bent the ways a
 * broken or malicious front-end bends them — flipped bits, lying header sizes, cut or padded
 * payloads, other request codes and flags — and plain random bytes.
 */
import { VHOST_USER_HDR_SIZE } from '../../src/protocol/header.ts';
import { MAX_MESSAGE_FDS, MAX_MESSAGE_PAYLOAD } from '../../src/device/limits.ts';
import { FIXTURES } from '../protocol/fixtures.ts';
import type { Rng } from './rng.ts';

export interface HostileMessage {
  bytes: Uint8Array;
  /** How many fds travel with it. */
  fdCount: number;
}

/** A valid fixture with 1–4 mutations, or (1 in 8) random bytes with a random fd count. */
export function hostileMessage(rng: Rng): HostileMessage {
  if (rng.oneIn(8)) {
    return { bytes: rng.bytes(rng.below(VHOST_USER_HDR_SIZE + 64)), fdCount: rng.below(MAX_MESSAGE_FDS + 1) };
  }
  const fixture = rng.pick(FIXTURES);
  let bytes = fixture.msg.slice();
  let fdCount = fixture.fds;
  for (let n = 1 + rng.below(4); n > 0; n--) {
    const view = () => new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
    switch (rng.below(9)) {
      case 0: // one bit
        if (bytes.length > 0) bytes[rng.below(bytes.length)] ^= 1 << rng.below(8);
        break;
      case 1: // one byte, anywhere (payload fields: indices, counts, NOFD bits, sizes)
        if (bytes.length > 0) bytes[rng.below(bytes.length)] = rng.below(256);
        break;
      case 2: // cut
        bytes = bytes.slice(0, rng.below(bytes.length + 1));
        break;
      case 3: // padded
        bytes = Uint8Array.from([...bytes, ...rng.bytes(1 + rng.below(48))]);
        break;
      case 4: // the header's size field lies
        if (bytes.length >= VHOST_USER_HDR_SIZE) {
          const real = bytes.length - VHOST_USER_HDR_SIZE;
          const lie = rng.pick([real + 1, real - 1, 0, MAX_MESSAGE_PAYLOAD, MAX_MESSAGE_PAYLOAD + 1, 0xffff_ffff, rng.below(2 ** 32)]);
          view().setUint32(8, lie >>> 0, true);
        }
        break;
      case 5: // another request code
        if (bytes.length >= 4) view().setUint32(0, rng.oneIn(4) ? rng.below(2 ** 32) : rng.below(50), true);
        break;
      case 6: // other flags (version, REPLY, NEED_REPLY, reserved bits)
        if (bytes.length >= 8) view().setUint32(4, rng.oneIn(4) ? rng.below(2 ** 32) : rng.below(16), true);
        break;
      case 7: // wrong fd count
        fdCount = rng.oneIn(2) ? Math.max(0, fdCount + rng.pick([-1, 1])) : rng.below(MAX_MESSAGE_FDS + 1);
        break;
      default: // a u64 field set to an edge value
        if (bytes.length >= VHOST_USER_HDR_SIZE + 8) {
          const at = VHOST_USER_HDR_SIZE + 8 * rng.below(Math.floor((bytes.length - VHOST_USER_HDR_SIZE) / 8));
          view().setBigUint64(at, rng.pick([0n, 1n, 0xffff_ffff_ffff_ffffn, 0x8000_0000_0000_0000n, rng.u64()]), true);
        }
    }
  }
  return { bytes, fdCount };
}
