/**
 * The BOOTP/DHCP message (RFC 2131 §2, options RFC 2132): decode and encode.
 *
 * `decodeDhcpMessage` reads bytes a guest sent, so it trusts nothing: it returns undefined for a
 * message shorter than the fixed fields, a wrong magic cookie, or an option that runs past the end,
 * and never throws. Option overloading (option 52: options in `sname`/`file`) is not supported;
 * clients only use it for messages larger than ours ever are.
 */

/** `op` (RFC 2131 §2). */
export enum BootpOp {
  /** Client to server. */
  BOOTREQUEST = 1,
  /** Server to client. */
  BOOTREPLY = 2,
}

/** `htype` for Ethernet (RFC 1700 "Hardware Type"). */
export const HTYPE_ETHERNET = 1;

/** The `flags` bit asking the server to broadcast its reply (RFC 2131 §2, figure 2). */
export const FLAG_BROADCAST = 0x8000;

/** The four bytes before the options (RFC 2131 §3, RFC 1497). */
export const MAGIC_COOKIE = 0x6382_5363;

/** Bytes of the fixed fields before the magic cookie (op … file). */
export const BOOTP_FIXED_LEN = 236;

/** RFC 951's minimum BOOTP message; some clients drop shorter replies. */
export const BOOTP_MIN_LEN = 300;

/** Option codes used here (RFC 2132 section in brackets). */
export enum DhcpOption {
  PAD = 0, // [3.1]
  SUBNET_MASK = 1, // [3.3]
  ROUTER = 3, // [3.5]
  DOMAIN_NAME_SERVER = 6, // [3.8]
  INTERFACE_MTU = 26, // [5.1]
  BROADCAST_ADDRESS = 28, // [5.3]
  REQUESTED_IP_ADDRESS = 50, // [9.1]
  IP_ADDRESS_LEASE_TIME = 51, // [9.2]
  MESSAGE_TYPE = 53, // [9.6]
  SERVER_IDENTIFIER = 54, // [9.7]
  MESSAGE = 56, // [9.9] error text in a NAK
  RENEWAL_TIME = 58, // [9.11] T1
  REBINDING_TIME = 59, // [9.12] T2
  CLIENT_IDENTIFIER = 61, // [9.14]
  END = 255, // [3.2]
}

/** Option 53 values (RFC 2132 §9.6). */
export enum DhcpMessageType {
  DHCPDISCOVER = 1,
  DHCPOFFER = 2,
  DHCPREQUEST = 3,
  DHCPDECLINE = 4,
  DHCPACK = 5,
  DHCPNAK = 6,
  DHCPRELEASE = 7,
  DHCPINFORM = 8,
}

export interface DhcpMessage {
  op: BootpOp;
  htype: number;
  hlen: number;
  hops: number;
  xid: number;
  secs: number;
  flags: number;
  /** Addresses are host-order unsigned 32-bit numbers. */
  ciaddr: number;
  yiaddr: number;
  siaddr: number;
  giaddr: number;
  /** The 16-byte client hardware address field; the MAC is its first `hlen` bytes. */
  chaddr: Uint8Array;
  /**
   * Options by code, PAD and END left out. An option that appears more than once is concatenated
   * (RFC 3396 §5), which is how clients split values longer than 255 bytes.
   */
  options: Map<number, Uint8Array>;
}

/** A DHCP message from the bytes of a UDP payload, or undefined if it is malformed. */
export function decodeDhcpMessage(bytes: Uint8Array): DhcpMessage | undefined {
  if (bytes.length < BOOTP_FIXED_LEN + 4) return undefined;
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (v.getUint32(BOOTP_FIXED_LEN) !== MAGIC_COOKIE) return undefined;
  const options = decodeOptions(bytes.subarray(BOOTP_FIXED_LEN + 4));
  if (!options) return undefined;
  return {
    op: bytes[0],
    htype: bytes[1],
    hlen: bytes[2],
    hops: bytes[3],
    xid: v.getUint32(4),
    secs: v.getUint16(8),
    flags: v.getUint16(10),
    ciaddr: v.getUint32(12),
    yiaddr: v.getUint32(16),
    siaddr: v.getUint32(20),
    giaddr: v.getUint32(24),
    chaddr: bytes.slice(28, 44),
    options,
  };
}

/**
 * The options area: code, length, value … up to END. An option whose length runs past the bytes is
 * malformed; a missing END after the last whole option is tolerated (some clients cut the padding).
 */
function decodeOptions(bytes: Uint8Array): Map<number, Uint8Array> | undefined {
  const options = new Map<number, Uint8Array>();
  let at = 0;
  while (at < bytes.length) {
    const code = bytes[at];
    if (code === DhcpOption.END) break;
    if (code === DhcpOption.PAD) {
      at += 1;
      continue;
    }
    if (at + 2 > bytes.length) return undefined;
    const end = at + 2 + bytes[at + 1];
    if (end > bytes.length) return undefined;
    const value = bytes.subarray(at + 2, end);
    const earlier = options.get(code);
    options.set(code, earlier ? concat(earlier, value) : value.slice());
    at = end;
  }
  return options;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/**
 * The bytes of `message`: fixed fields, cookie, options in the map's order, END, zero padding up
 * to BOOTP_MIN_LEN. Values longer than 255 bytes are split over several options (RFC 3396).
 */
export function encodeDhcpMessage(message: DhcpMessage): Uint8Array {
  const optionBytes: number[] = [];
  for (const [code, value] of message.options) {
    for (let at = 0; at === 0 || at < value.length; at += 255) {
      const part = value.subarray(at, at + 255);
      optionBytes.push(code, part.length, ...part);
    }
  }
  optionBytes.push(DhcpOption.END);
  const bytes = new Uint8Array(Math.max(BOOTP_MIN_LEN, BOOTP_FIXED_LEN + 4 + optionBytes.length));
  const v = new DataView(bytes.buffer);
  bytes[0] = message.op;
  bytes[1] = message.htype;
  bytes[2] = message.hlen;
  bytes[3] = message.hops;
  v.setUint32(4, message.xid);
  v.setUint16(8, message.secs);
  v.setUint16(10, message.flags);
  v.setUint32(12, message.ciaddr);
  v.setUint32(16, message.yiaddr);
  v.setUint32(20, message.siaddr);
  v.setUint32(24, message.giaddr);
  bytes.set(message.chaddr.subarray(0, 16), 28);
  v.setUint32(BOOTP_FIXED_LEN, MAGIC_COOKIE);
  bytes.set(optionBytes, BOOTP_FIXED_LEN + 4);
  return bytes;
}

/** The value of a 1-byte option, or undefined if absent or of another length. */
export function optionUint8(message: DhcpMessage, code: number): number | undefined {
  const value = message.options.get(code);
  return value?.length === 1 ? value[0] : undefined;
}

/** The value of a 4-byte option (an address or a 32-bit number), or undefined if absent or of another length. */
export function optionUint32(message: DhcpMessage, code: number): number | undefined {
  const value = message.options.get(code);
  return value?.length === 4 ? new DataView(value.buffer, value.byteOffset, 4).getUint32(0) : undefined;
}

/** A 4-byte big-endian option value. */
export function uint32Option(value: number): Uint8Array {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, value);
  return bytes;
}

/** A 2-byte big-endian option value. */
export function uint16Option(value: number): Uint8Array {
  return Uint8Array.of(value >>> 8, value & 0xff);
}
