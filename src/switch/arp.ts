/**
 * ARP for IPv4 over Ethernet (RFC 826): just enough for the DHCP server to answer "who has
 * <server address>?", which clients ask before they unicast a renewal (RFC 2131 §4.4.5) to it.
 * Parsing is of guest frames: lengths checked, undefined for anything else, never throws.
 */
import { ETH_HEADER_LEN, ETH_P_IP } from './packet.ts';

export const ETH_P_ARP = 0x0806;
const ARP_BODY_LEN = 28;
const ARPOP_REQUEST = 1;
const ARPOP_REPLY = 2;
const ARPHRD_ETHER = 1;

export interface ArpRequest {
  senderMac: Uint8Array;
  /** 0 for an address probe (RFC 5227). */
  senderIp: number;
  targetIp: number;
}

/** An untagged Ethernet/IPv4 ARP request, or undefined. */
export function parseArpRequest(frame: Uint8Array): ArpRequest | undefined {
  if (frame.length < ETH_HEADER_LEN + ARP_BODY_LEN) return undefined;
  const v = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const arp = ETH_HEADER_LEN;
  if (v.getUint16(12) !== ETH_P_ARP || v.getUint16(arp) !== ARPHRD_ETHER || v.getUint16(arp + 2) !== ETH_P_IP) return undefined;
  if (frame[arp + 4] !== 6 || frame[arp + 5] !== 4 || v.getUint16(arp + 6) !== ARPOP_REQUEST) return undefined;
  return { senderMac: frame.slice(arp + 8, arp + 14), senderIp: v.getUint32(arp + 14), targetIp: v.getUint32(arp + 24) };
}

/**
 * "`ourIp` is at `ourMac`", to the asker. A probe (sender 0.0.0.0) is answered by broadcast, as a
 * defending host does (RFC 5227 §2.4), since the asker has no address to be reached at.
 */
export function buildArpReply(ourMac: Uint8Array, ourIp: number, request: ArpRequest): Uint8Array {
  const frame = new Uint8Array(ETH_HEADER_LEN + ARP_BODY_LEN);
  const v = new DataView(frame.buffer);
  frame.set(request.senderIp === 0 ? new Uint8Array(6).fill(0xff) : request.senderMac, 0);
  frame.set(ourMac, 6);
  v.setUint16(12, ETH_P_ARP);
  const arp = ETH_HEADER_LEN;
  v.setUint16(arp, ARPHRD_ETHER);
  v.setUint16(arp + 2, ETH_P_IP);
  frame[arp + 4] = 6;
  frame[arp + 5] = 4;
  v.setUint16(arp + 6, ARPOP_REPLY);
  frame.set(ourMac, arp + 8);
  v.setUint32(arp + 14, ourIp);
  frame.set(request.senderMac, arp + 18);
  v.setUint32(arp + 24, request.senderIp);
  return frame;
}
