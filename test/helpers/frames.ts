/** Ethernet/ARP/IPv4/ICMP frames built from bytes, for tests that talk to a real kernel. */
export type Mac = Uint8Array;

export function parseIp(ip: string): Uint8Array {
  return Uint8Array.from(ip.split('.').map(Number));
}

export const BROADCAST: Mac = new Uint8Array(6).fill(0xff);
export const ETH_P_ARP = 0x0806;
export const ETH_P_IP = 0x0800;

function ethernet(dst: Mac, src: Mac, etherType: number, payload: Uint8Array): Uint8Array {
  const frame = new Uint8Array(14 + payload.length);
  frame.set(dst, 0);
  frame.set(src, 6);
  new DataView(frame.buffer).setUint16(12, etherType);
  frame.set(payload, 14);
  return frame;
}

/** "Who has `targetIp`? Tell `senderIp`" (RFC 826), broadcast. */
export function arpRequest(senderMac: Mac, senderIp: string, targetIp: string): Uint8Array {
  const arp = new Uint8Array(28);
  const v = new DataView(arp.buffer);
  v.setUint16(0, 1); // htype Ethernet
  v.setUint16(2, ETH_P_IP);
  arp[4] = 6;
  arp[5] = 4;
  v.setUint16(6, 1); // request
  arp.set(senderMac, 8);
  arp.set(parseIp(senderIp), 14);
  arp.set(parseIp(targetIp), 24);
  return ethernet(BROADCAST, senderMac, ETH_P_ARP, arp);
}

export function isArpReply(frame: Uint8Array, fromIp: string): Mac | undefined {
  const v = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  if (frame.length < 42 || v.getUint16(12) !== ETH_P_ARP || v.getUint16(20) !== 2) return undefined;
  const sender = parseIp(fromIp);
  return frame.subarray(28, 32).every((b, i) => b === sender[i]) ? frame.slice(22, 28) : undefined;
}

function checksum(bytes: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < bytes.length; i += 2) sum += (bytes[i] << 8) | (bytes[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** ICMP echo request of `payloadBytes` bytes carrying a recognisable pattern. */
export function icmpEchoRequest(srcMac: Mac, dstMac: Mac, srcIp: string, dstIp: string, id: number, seq: number, payloadBytes = 56): Uint8Array {
  const icmp = new Uint8Array(8 + payloadBytes);
  const iv = new DataView(icmp.buffer);
  icmp[0] = 8;
  iv.setUint16(4, id);
  iv.setUint16(6, seq);
  for (let i = 0; i < payloadBytes; i++) icmp[8 + i] = (i * 7 + seq) & 0xff;
  iv.setUint16(2, checksum(icmp));
  const ip = new Uint8Array(20 + icmp.length);
  const v = new DataView(ip.buffer);
  ip[0] = 0x45;
  v.setUint16(2, ip.length);
  v.setUint16(4, seq);
  ip[8] = 64;
  ip[9] = 1; // ICMP
  ip.set(parseIp(srcIp), 12);
  ip.set(parseIp(dstIp), 16);
  v.setUint16(10, checksum(ip.subarray(0, 20)));
  ip.set(icmp, 20);
  return ethernet(dstMac, srcMac, ETH_P_IP, ip);
}

/** The echo reply's (id, seq) and payload, if `frame` is one. */
export function icmpEchoReply(frame: Uint8Array): { id: number; seq: number; payload: Uint8Array } | undefined {
  const v = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  if (frame.length < 42 || v.getUint16(12) !== ETH_P_IP || frame[23] !== 1) return undefined;
  const ihl = (frame[14] & 0xf) * 4;
  const icmp = 14 + ihl;
  if (frame[icmp] !== 0) return undefined;
  const total = v.getUint16(16);
  return { id: v.getUint16(icmp + 4), seq: v.getUint16(icmp + 6), payload: frame.slice(icmp + 8, 14 + total) };
}

export const ETH_P_IPV6 = 0x86dd;
/** All-nodes multicast, ff02::1, and its Ethernet address (RFC 2464 §7). */
const ALL_NODES = 'ff02::1';
const ALL_NODES_MAC: Mac = Uint8Array.of(0x33, 0x33, 0, 0, 0, 1);

/** IPv6 text (hexadecimal groups, at most one `::`) to its 16 bytes. */
export function parseIp6(ip: string): Uint8Array {
  const [head, tail] = ip.includes('::') ? ip.split('::') : [ip, undefined];
  const groups = (text: string | undefined) => (text ? text.split(':').map((g) => parseInt(g, 16)) : []);
  const high = groups(head);
  const low = groups(tail);
  const all = tail === undefined ? high : [...high, ...new Array(8 - high.length - low.length).fill(0), ...low];
  const bytes = new Uint8Array(16);
  all.forEach((group, i) => new DataView(bytes.buffer).setUint16(i * 2, group));
  return bytes;
}

/** An IPv6 packet (hop limit 255, no extension headers; checksums left 0: the switch reads no checksum). */
export function ipv6Frame(srcMac: Mac, dstMac: Mac, srcIp: string, dstIp: string, nextHeader: number, payload: Uint8Array): Uint8Array {
  const ip = new Uint8Array(40 + payload.length);
  ip[0] = 0x60;
  new DataView(ip.buffer).setUint16(4, payload.length);
  ip[6] = nextHeader;
  ip[7] = 255;
  ip.set(parseIp6(srcIp), 8);
  ip.set(parseIp6(dstIp), 24);
  ip.set(payload, 40);
  return ethernet(dstMac, srcMac, ETH_P_IPV6, ip);
}

/** An unsolicited neighbour advertisement (RFC 4861 §4.4) for `target`, to all nodes, with `srcMac` as its target link-layer address. */
export function neighbourAdvertisement(srcMac: Mac, srcIp: string, target: string): Uint8Array {
  const icmp = new Uint8Array(32);
  icmp[0] = 136;
  icmp[4] = 0x20; // override
  icmp.set(parseIp6(target), 8);
  icmp[24] = 2; // target link-layer address option, 8 bytes
  icmp[25] = 1;
  icmp.set(srcMac, 26);
  return ipv6Frame(srcMac, ALL_NODES_MAC, srcIp, ALL_NODES, 58, icmp);
}
