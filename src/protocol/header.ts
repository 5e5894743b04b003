// The 12-byte vhost-user message header: request (u32), flags (u32), size (u32).
// "All numbers are in the machine native byte order" (spec, Message Specification); this
// back-end runs on little-endian hosts (x86-64, aarch64), so the codec is little-endian.

import { ProtocolError } from './errors.ts';
import { requestName } from './requests.ts';

export const VHOST_USER_HDR_SIZE = 12;
/** Lower 2 bits of flags: protocol version, currently 1. */
export const VHOST_USER_VERSION_MASK = 0x3;
export const VHOST_USER_VERSION = 0x1;
/** Bit 2: set on every reply from the back-end. */
export const VHOST_USER_REPLY_MASK = 0x4;
/** Bit 3: the sender asks for a REPLY_ACK reply. */
export const VHOST_USER_NEED_REPLY_MASK = 0x8;
/** Bits the spec defines; every other flag bit must be zero. */
const DEFINED_FLAGS = VHOST_USER_VERSION_MASK | VHOST_USER_REPLY_MASK | VHOST_USER_NEED_REPLY_MASK;

export interface Header {
  /** Request code (a FrontendRequest for front-end messages and their replies). */
  request: number;
  flags: number;
  /** Payload size in bytes, not counting the header. */
  size: number;
}

/**
 * decodeHeader() - read and check the header at the start of `bytes`
 * Checks: at least 12 bytes, version 1, no undefined flag bits. Does not look at the payload.
 */
export function decodeHeader(bytes: Uint8Array): Header {
  if (bytes.length < VHOST_USER_HDR_SIZE) {
    throw new ProtocolError('VU_ERR_BAD_HEADER', `truncated header: ${bytes.length} of ${VHOST_USER_HDR_SIZE} bytes`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, VHOST_USER_HDR_SIZE);
  const header: Header = {
    request: view.getUint32(0, true),
    flags: view.getUint32(4, true),
    size: view.getUint32(8, true),
  };
  const version = header.flags & VHOST_USER_VERSION_MASK;
  if (version !== VHOST_USER_VERSION) {
    throw new ProtocolError('VU_ERR_BAD_HEADER', `version ${version}, expected ${VHOST_USER_VERSION}`, requestName(header.request));
  }
  if ((header.flags & ~DEFINED_FLAGS) !== 0) {
    throw new ProtocolError('VU_ERR_BAD_HEADER', `undefined flag bits 0x${(header.flags >>> 0).toString(16)}`, requestName(header.request));
  }
  return header;
}

/** encodeHeader() - the 12 header bytes for `header` (all three fields must fit in u32). */
export function encodeHeader(header: Header): Uint8Array {
  const bytes = new Uint8Array(VHOST_USER_HDR_SIZE);
  const view = new DataView(bytes.buffer);
  for (const [offset, name] of [[0, 'request'], [4, 'flags'], [8, 'size']] as const) {
    const value = header[name];
    if (!Number.isInteger(value) || value < 0 || value > 0xffff_ffff) {
      throw new ProtocolError('VU_ERR_BAD_VALUE', `header ${name} ${value} does not fit in u32`);
    }
    view.setUint32(offset, value, true);
  }
  return bytes;
}
