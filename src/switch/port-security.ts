/**
 * Port security for a named switch port (`--port NAME=PATH,mac=MAC[,ip=ADDR]…`): the MAC and the
 * IPv4 addresses its guest may send from, which no other port may claim. The rules themselves are
 * the data path's (crates/datapath/src/switch/address_locks.rs and ip_guard.rs).
 */
import { formatMac, type MacAddress } from '../device/mac.ts';
import { formatIpv4Address, parseIpv4Address } from './packet.ts';

export interface PortSecurity {
  /** The port sends only from this MAC, and no other port does. */
  mac: MacAddress;
  /**
   * IPv4 addresses, host order, possibly none. If there are any, the port sends IPv4 and ARP only
   * from them (and from 0.0.0.0 as a DHCP client or ARP probe), nothing but IPv4, ARP and RARP,
   * and no other port claims them.
   */
  ips: readonly number[];
}

export class PortSecurityError extends Error {
  readonly code = 'VU_ERR_BAD_IP';
}

/** A guest's IPv4 address to lock a port to: not 0.0.0.0, multicast or broadcast. */
export function parseLockedIp(text: string): number {
  const address = parseIpv4Address(text);
  if (address === undefined) throw new PortSecurityError(`'${text}' is not an IPv4 address like 10.0.0.5`);
  if (address === 0 || address === 0xffffffff || address >>> 28 === 0xe) throw new PortSecurityError(`${text} is not a host's address (0.0.0.0, multicast or broadcast)`);
  return address;
}

/** The addresses as the data path takes them: 4 bytes each, network order. */
export function ipv4Bytes(ips: readonly number[]): Uint8Array {
  const bytes = new Uint8Array(ips.length * 4);
  const view = new DataView(bytes.buffer);
  ips.forEach((ip, i) => view.setUint32(i * 4, ip));
  return bytes;
}

/** For logs: `{ lockedMac, lockedIps }`. */
export function describeSecurity(security: PortSecurity): { lockedMac: string; lockedIps?: string[] } {
  return { lockedMac: formatMac(security.mac), ...(security.ips.length > 0 && { lockedIps: security.ips.map(formatIpv4Address) }) };
}
