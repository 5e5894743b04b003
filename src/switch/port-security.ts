/**
 * Port security for a named switch port (`--port NAME=PATH,mac=MAC[,ip=ADDR]…`): the MAC and the
 * IP addresses (IPv4 and IPv6) its guest may send from, which no other port may claim. The rules
 * themselves are the data path's (crates/datapath/src/switch/address_locks.rs and ip_guard.rs).
 */
import { isIPv6, SocketAddress } from 'node:net';
import { formatMac, type MacAddress } from '../device/mac.ts';
import { formatIpv4Address, parseIpv4Address } from './packet.ts';

export interface PortSecurity {
  /** The port sends only from this MAC, and no other port does. */
  mac: MacAddress;
  /**
   * IP addresses in canonical text (`10.0.0.5`, `fd00::5`), possibly none. If there are any, the
   * port sends IPv4, IPv6 and ARP only from them (and from 0.0.0.0 or :: what a station without
   * an address sends), nothing but IPv4, IPv6, ARP and RARP, and no other port claims them. With
   * an IPv6 address the list also holds the link-local address derived from the MAC
   * (`withPortSecurity`).
   */
  ips: readonly string[];
}

export class PortSecurityError extends Error {
  readonly code = 'VU_ERR_BAD_IP';
}

/**
 * A guest's IP address to lock a port to, in canonical text: IPv4 but not 0.0.0.0, multicast or
 * broadcast; IPv6 but not ::, multicast, IPv4-mapped or with a zone.
 */
export function parseLockedIp(text: string): string {
  if (!text.includes(':')) {
    const address = parseIpv4Address(text);
    if (address === undefined) throw new PortSecurityError(`'${text}' is not an IPv4 or IPv6 address like 10.0.0.5 or fd00::5`);
    if (address === 0 || address === 0xffffffff || address >>> 28 === 0xe) throw new PortSecurityError(`${text} is not a host's address (0.0.0.0, multicast or broadcast)`);
    return formatIpv4Address(address);
  }
  if (!isIPv6(text) || text.includes('%')) throw new PortSecurityError(`'${text}' is not an IPv4 or IPv6 address like 10.0.0.5 or fd00::5`);
  const canonical = new SocketAddress({ address: text, family: 'ipv6' }).address;
  if (canonical === '::' || canonical.startsWith('ff') || canonical.startsWith('::ffff:')) throw new PortSecurityError(`${text} is not a host's address (::, multicast or IPv4-mapped)`);
  return canonical;
}

/**
 * The port security for `mac` and the (parsed, distinct) `ips`. With any IPv6 address the guest
 * also needs its link-local address, from which it sends neighbour discovery: the one derived from
 * its MAC (modified EUI-64, RFC 4291 §2.5.1) is added unless listed. A guest that makes its
 * link-local address otherwise (stable privacy, RFC 7217) needs it listed.
 */
export function withPortSecurity(mac: MacAddress, ips: readonly string[]): PortSecurity {
  if (!ips.some((ip) => ip.includes(':'))) return { mac, ips };
  const linkLocal = eui64LinkLocal(mac);
  return { mac, ips: ips.includes(linkLocal) ? ips : [...ips, linkLocal] };
}

/** fe80::/64 with the interface identifier of `mac`: the universal/local bit flipped, ff:fe inserted. */
export function eui64LinkLocal(mac: MacAddress): string {
  const b = [...mac];
  const group = (high: number, low: number) => ((high << 8) | low).toString(16);
  const text = `fe80::${group(b[0] ^ 0x02, b[1])}:${group(b[2], 0xff)}:${group(0xfe, b[3])}:${group(b[4], b[5])}`;
  return new SocketAddress({ address: text, family: 'ipv6' }).address;
}

/** The IPv4 addresses among `ips`, host order (what the DHCP server deals in). */
export function ipv4Addresses(ips: readonly string[]): number[] {
  return ips.flatMap((ip) => parseIpv4Address(ip) ?? []);
}

/** For logs: `{ lockedMac, lockedIps }`. */
export function describeSecurity(security: PortSecurity): { lockedMac: string; lockedIps?: string[] } {
  return { lockedMac: formatMac(security.mac), ...(security.ips.length > 0 && { lockedIps: [...security.ips] }) };
}
