/**
 * Ethernet II / IPv4 / UDP: parse and build, with the Internet checksum (RFC 1071).
 *
 * Parsing works on frames from guests, which are hostile: every parse function checks each length
 * against the bytes present and returns undefined for anything malformed; none of them throws.
 * Addresses are host-order unsigned 32-bit numbers; MACs are 6-byte arrays.
 */

export const ETH_HEADER_LEN = 14;
export const ETH_P_IP = 0x0800;
export const IPV4_MIN_HEADER_LEN = 20;
export const IPPROTO_UDP = 17;
export const UDP_HEADER_LEN = 8;
export const BROADCAST_MAC: Uint8Array = new Uint8Array(6).fill(0xff);
export const IPV4_BROADCAST = 0xffff_ffff;

export interface EthernetFrame {
  dst: Uint8Array;
  src: Uint8Array;
  etherType: number;
  payload: Uint8Array;
}

export interface Ipv4Packet {
  src: number;
  dst: number;
  protocol: number;
  /** The payload as given by the header's total length (Ethernet padding cut off). */
  payload: Uint8Array;
}

export interface UdpDatagram {
  srcPort: number;
  dstPort: number;
  payload: Uint8Array;
}

/** One parsed Ethernet/IPv4/UDP frame. */
export interface UdpFrame {
  eth: EthernetFrame;
  ip: Ipv4Packet;
  udp: UdpDatagram;
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The ones'-complement sum of `bytes` folded to 16 bits, starting from `initial` (not complemented). */
function onesComplementSum(bytes: Uint8Array, initial = 0): number {
  let sum = initial;
  const even = bytes.length & ~1;
  for (let i = 0; i < even; i += 2) sum += (bytes[i] << 8) | bytes[i + 1];
  if (bytes.length & 1) sum += bytes[bytes.length - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** The Internet checksum of `bytes` (RFC 1071): the complement of the ones'-complement sum. */
export function internetChecksum(bytes: Uint8Array, initial = 0): number {
  return ~onesComplementSum(bytes, initial) & 0xffff;
}

/** The UDP pseudo-header sum (RFC 768): source, destination, protocol, UDP length. */
function pseudoHeaderSum(src: number, dst: number, udpLength: number): number {
  return onesComplementSum(new Uint8Array(0), (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + IPPROTO_UDP + udpLength);
}

export function parseEthernet(frame: Uint8Array): EthernetFrame | undefined {
  if (frame.length < ETH_HEADER_LEN) return undefined;
  return { dst: frame.subarray(0, 6), src: frame.subarray(6, 12), etherType: view(frame).getUint16(12), payload: frame.subarray(ETH_HEADER_LEN) };
}

/**
 * An IPv4 packet: version 4, IHL ≥ 5, header and total length within the bytes, header checksum
 * correct, not a fragment (RFC 791). Bytes past the total length (Ethernet padding) are ignored.
 */
export function parseIpv4(bytes: Uint8Array): Ipv4Packet | undefined {
  if (bytes.length < IPV4_MIN_HEADER_LEN || bytes[0] >> 4 !== 4) return undefined;
  const headerLen = (bytes[0] & 0x0f) * 4;
  const v = view(bytes);
  const totalLen = v.getUint16(2);
  if (headerLen < IPV4_MIN_HEADER_LEN || totalLen < headerLen || totalLen > bytes.length) return undefined;
  const fragment = v.getUint16(6);
  if (fragment & 0x3fff) return undefined; // MF set or a non-zero offset: a fragment
  if (internetChecksum(bytes.subarray(0, headerLen)) !== 0) return undefined;
  return { src: v.getUint32(12), dst: v.getUint32(16), protocol: bytes[9], payload: bytes.subarray(headerLen, totalLen) };
}

/**
 * A UDP datagram of `ip`: length within the IP payload. The checksum is not verified: a guest that
 * negotiated checksum offload (VIRTIO_NET_F_CSUM) sends datagrams whose checksum field holds only
 * the pseudo-header sum, for the device to complete (virtio 1.2 §5.1.6.2), and the switch forwards
 * frames as they are; a corrupted datagram has no way in between a guest and the switch.
 */
export function parseUdp(ip: Ipv4Packet): UdpDatagram | undefined {
  const bytes = ip.payload;
  if (ip.protocol !== IPPROTO_UDP || bytes.length < UDP_HEADER_LEN) return undefined;
  const v = view(bytes);
  const length = v.getUint16(4);
  if (length < UDP_HEADER_LEN || length > bytes.length) return undefined;
  return { srcPort: v.getUint16(0), dstPort: v.getUint16(2), payload: bytes.subarray(UDP_HEADER_LEN, length) };
}

/** An untagged Ethernet frame carrying a valid IPv4/UDP datagram, or undefined. */
export function parseUdpFrame(frame: Uint8Array): UdpFrame | undefined {
  const eth = parseEthernet(frame);
  if (!eth || eth.etherType !== ETH_P_IP) return undefined;
  const ip = parseIpv4(eth.payload);
  if (!ip) return undefined;
  const udp = parseUdp(ip);
  return udp && { eth, ip, udp };
}

export interface UdpFrameSpec {
  dstMac: Uint8Array;
  srcMac: Uint8Array;
  srcIp: number;
  dstIp: number;
  srcPort: number;
  dstPort: number;
  payload: Uint8Array;
  /** IPv4 identification; default 0. */
  ipId?: number;
  /** Default 64. */
  ttl?: number;
}

/** An Ethernet/IPv4/UDP frame with both checksums filled in. */
export function buildUdpFrame(spec: UdpFrameSpec): Uint8Array {
  const udpLength = UDP_HEADER_LEN + spec.payload.length;
  const ipLength = IPV4_MIN_HEADER_LEN + udpLength;
  const frame = new Uint8Array(ETH_HEADER_LEN + ipLength);
  const v = view(frame);
  frame.set(spec.dstMac, 0);
  frame.set(spec.srcMac, 6);
  v.setUint16(12, ETH_P_IP);

  const ip = ETH_HEADER_LEN;
  frame[ip] = 0x45;
  v.setUint16(ip + 2, ipLength);
  v.setUint16(ip + 4, spec.ipId ?? 0);
  frame[ip + 8] = spec.ttl ?? 64;
  frame[ip + 9] = IPPROTO_UDP;
  v.setUint32(ip + 12, spec.srcIp);
  v.setUint32(ip + 16, spec.dstIp);
  v.setUint16(ip + 10, internetChecksum(frame.subarray(ip, ip + IPV4_MIN_HEADER_LEN)));

  const udp = ip + IPV4_MIN_HEADER_LEN;
  v.setUint16(udp, spec.srcPort);
  v.setUint16(udp + 2, spec.dstPort);
  v.setUint16(udp + 4, udpLength);
  frame.set(spec.payload, udp + UDP_HEADER_LEN);
  // RFC 768: a computed checksum of zero is sent as all ones (zero means "no checksum").
  const checksum = internetChecksum(frame.subarray(udp), pseudoHeaderSum(spec.srcIp, spec.dstIp, udpLength));
  v.setUint16(udp + 6, checksum === 0 ? 0xffff : checksum);
  return frame;
}

/** Dotted-quad text to a host-order address, or undefined if it is not exactly four 0–255 decimals. */
export function parseIpv4Address(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^(0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > 255)) return undefined;
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0);
}

export function formatIpv4Address(address: number): string {
  return [address >>> 24, (address >>> 16) & 0xff, (address >>> 8) & 0xff, address & 0xff].join('.');
}
