/**
 * DHCP client frames built byte by byte (independent of the server's own encoder), and readers
 * for the server's replies.
 */
import { buildUdpFrame, internetChecksum, parseIpv4Address, parseUdpFrame, formatIpv4Address } from '../../src/switch/packet.ts';
import { decodeDhcpMessage, type DhcpMessage } from '../../src/switch/dhcp-message.ts';

export const DISCOVER = 1;
export const OFFER = 2;
export const REQUEST = 3;
export const DECLINE = 4;
export const ACK = 5;
export const NAK = 6;
export const RELEASE = 7;
export const INFORM = 8;

export const SERVER_MAC = Uint8Array.of(0x02, 0x00, 0x00, 0x00, 0x00, 0x01);

export function mac(n: number): Uint8Array {
  return Uint8Array.of(0x52, 0x54, 0x00, 0x00, (n >> 8) & 0xff, n & 0xff);
}

export function ip(text: string): number {
  const address = parseIpv4Address(text);
  if (address === undefined) throw new Error(`bad test address ${text}`);
  return address;
}

export interface ClientMessage {
  mac: Uint8Array;
  type: number;
  xid?: number;
  /** Default: BROADCAST flag set. */
  broadcast?: boolean;
  ciaddr?: string;
  giaddr?: string;
  requested?: string;
  serverId?: string;
  clientId?: Uint8Array;
  /** IP source/destination; default 0.0.0.0 → 255.255.255.255. */
  srcIp?: string;
  dstIp?: string;
  op?: number;
  cookie?: number[];
  /** Raw option bytes appended before END. */
  extraOptions?: number[];
  /** Leave out the END option. */
  noEnd?: boolean;
}

/** The UDP payload of a client message, laid out as RFC 2131 figure 1. */
export function clientPayload(m: ClientMessage): Uint8Array {
  const bytes: number[] = new Array(236).fill(0);
  const put32 = (at: number, value: number) => bytes.splice(at, 4, value >>> 24, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff);
  bytes[0] = m.op ?? 1;
  bytes[1] = 1; // Ethernet
  bytes[2] = 6;
  put32(4, m.xid ?? 0x1234_5678);
  if (m.broadcast ?? true) bytes[10] = 0x80;
  if (m.ciaddr) put32(12, ip(m.ciaddr));
  if (m.giaddr) put32(24, ip(m.giaddr));
  bytes.splice(28, 6, ...m.mac);
  bytes.push(...(m.cookie ?? [99, 130, 83, 99]));
  bytes.push(53, 1, m.type);
  const addr = (text: string) => {
    const a = ip(text);
    return [a >>> 24, (a >>> 16) & 0xff, (a >>> 8) & 0xff, a & 0xff];
  };
  if (m.requested) bytes.push(50, 4, ...addr(m.requested));
  if (m.serverId) bytes.push(54, 4, ...addr(m.serverId));
  if (m.clientId) bytes.push(61, m.clientId.length, ...m.clientId);
  bytes.push(55, 4, 1, 3, 6, 51); // parameter request list, as clients send it
  if (m.extraOptions) bytes.push(...m.extraOptions);
  if (!m.noEnd) bytes.push(255);
  while (bytes.length < 300) bytes.push(0);
  return Uint8Array.from(bytes);
}

export function clientFrame(m: ClientMessage): Uint8Array {
  const dstIp = m.dstIp ?? '255.255.255.255';
  return buildUdpFrame({
    dstMac: dstIp === '255.255.255.255' ? new Uint8Array(6).fill(0xff) : SERVER_MAC,
    srcMac: m.mac,
    srcIp: ip(m.srcIp ?? '0.0.0.0'),
    dstIp: ip(dstIp),
    srcPort: 68,
    dstPort: 67,
    payload: clientPayload(m),
  });
}

export interface Reply {
  dstMac: string;
  srcMac: string;
  srcIp: string;
  dstIp: string;
  srcPort: number;
  dstPort: number;
  message: DhcpMessage;
  type: number;
  yiaddr: string;
  option(code: number): number[] | undefined;
  option32(code: number): number | undefined;
}

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':');

/** True if the UDP checksum of an untagged IPv4 frame with a 20-byte header verifies (RFC 768). */
function udpChecksumOk(frame: Uint8Array): boolean {
  const udp = frame.subarray(34);
  const pseudo = new Uint8Array(12);
  pseudo.set(frame.subarray(26, 34), 0);
  pseudo[9] = 17;
  pseudo[10] = udp.length >> 8;
  pseudo[11] = udp.length & 0xff;
  const both = new Uint8Array(12 + udp.length);
  both.set(pseudo, 0);
  both.set(udp, 12);
  return internetChecksum(both) === 0;
}

/** A server reply: checks both checksums and decodes the DHCP message. */
export function readReply(frame: Uint8Array): Reply {
  const parsed = parseUdpFrame(frame);
  if (!parsed) throw new Error('reply is not a valid IPv4/UDP frame');
  if (!udpChecksumOk(frame)) throw new Error('reply has a bad UDP checksum');
  const message = decodeDhcpMessage(parsed.udp.payload);
  if (!message) throw new Error('reply is not a valid DHCP message');
  const option = (code: number) => {
    const v = message.options.get(code);
    return v && Array.from(v);
  };
  return {
    dstMac: hex(parsed.eth.dst),
    srcMac: hex(parsed.eth.src),
    srcIp: formatIpv4Address(parsed.ip.src),
    dstIp: formatIpv4Address(parsed.ip.dst),
    srcPort: parsed.udp.srcPort,
    dstPort: parsed.udp.dstPort,
    message,
    type: message.options.get(53)?.[0] ?? -1,
    yiaddr: formatIpv4Address(message.yiaddr),
    option,
    option32: (code) => {
      const v = option(code);
      return v && v.length === 4 ? ((v[0] << 24) | (v[1] << 16) | (v[2] << 8) | v[3]) >>> 0 : undefined;
    },
  };
}
