/**
 * The DHCP server's configuration: the segment's subnet (`--dhcp CIDR`) and the addresses and
 * options handed out, checked once up front so the server itself never meets a bad value.
 */
import { formatIpv4Address, parseIpv4Address } from './packet.ts';

export type DhcpConfigErrorCode =
  /** Not `a.b.c.d/len`, a bad address or prefix length, or a subnet too small for a pool. */
  | 'VU_ERR_BAD_CIDR'
  /** Another option is out of range (server or router outside the subnet, lease time, MTU, DNS). */
  | 'VU_ERR_BAD_DHCP_CONFIG';

/** A DHCP configuration the server cannot run with; `input` is the offending value. */
export class DhcpConfigError extends Error {
  readonly code: DhcpConfigErrorCode;
  readonly input: string;

  constructor(code: DhcpConfigErrorCode, input: string, message: string) {
    super(`${code}: '${input}': ${message}`);
    this.name = 'DhcpConfigError';
    this.code = code;
    this.input = input;
  }
}

/** An IPv4 subnet; addresses are host-order unsigned 32-bit numbers. */
export interface Subnet {
  network: number;
  prefixLength: number;
  mask: number;
  broadcast: number;
  /** `network/prefixLength` in text, with host bits cleared. */
  cidr: string;
}

/** The smallest subnet with a pool: /30 (network, server, one client, broadcast). */
const LONGEST_PREFIX = 30;
/** A /8 already holds 16 million hosts; wider prefixes are certainly a typo. */
const SHORTEST_PREFIX = 8;

/**
 * `a.b.c.d/len` → the subnet. Host bits in the address are cleared (`10.0.2.15/24` is
 * `10.0.2.0/24`). Throws DhcpConfigError VU_ERR_BAD_CIDR for anything else, and for prefixes
 * outside /8–/30 (a /31 or /32 leaves no address to lease).
 */
export function parseCidr(cidr: string): Subnet {
  const match = /^([0-9.]+)\/([0-9]{1,2})$/.exec(cidr.trim());
  if (!match) throw new DhcpConfigError('VU_ERR_BAD_CIDR', cidr, 'expected an IPv4 subnet like 10.0.2.0/24');
  const address = parseIpv4Address(match[1]);
  if (address === undefined) throw new DhcpConfigError('VU_ERR_BAD_CIDR', cidr, `'${match[1]}' is not an IPv4 address (four numbers 0-255)`);
  const prefixLength = Number(match[2]);
  if (prefixLength > 32) throw new DhcpConfigError('VU_ERR_BAD_CIDR', cidr, `prefix length /${prefixLength} is past /32`);
  if (prefixLength > LONGEST_PREFIX) throw new DhcpConfigError('VU_ERR_BAD_CIDR', cidr, `a /${prefixLength} has no address left to lease; use /${LONGEST_PREFIX} or shorter`);
  if (prefixLength < SHORTEST_PREFIX) throw new DhcpConfigError('VU_ERR_BAD_CIDR', cidr, `a /${prefixLength} is wider than a segment needs; use /${SHORTEST_PREFIX} or longer`);
  const mask = (0xffff_ffff << (32 - prefixLength)) >>> 0;
  const network = (address & mask) >>> 0;
  const broadcast = (network | ~mask) >>> 0;
  return { network, prefixLength, mask, broadcast, cidr: `${formatIpv4Address(network)}/${prefixLength}` };
}

/** True if `address` is a host of `subnet` (not its network or broadcast address). */
export function isHostOf(subnet: Subnet, address: number): boolean {
  return (address & subnet.mask) >>> 0 === subnet.network && address !== subnet.network && address !== subnet.broadcast;
}

export interface DhcpConfigInput {
  cidr: string;
  /** Default: the subnet's first host (`.1` of a /24). */
  serverIp?: string;
  /** Default 3600. */
  leaseSeconds?: number;
  /** Option 3; omitted unless set. Must be a host of the subnet; it is kept out of the pool. */
  router?: string;
  /** Option 6; omitted unless set. */
  dns?: string[];
  /** Option 26; omitted unless set. */
  mtu?: number;
  /**
   * Most clients one guest port may hold addresses for at a time (0: no limit), so that one guest
   * inventing client identifiers cannot take the whole pool. Default DEFAULT_LEASES_PER_PORT.
   */
  leasesPerPort?: number;
}

export interface DhcpConfig {
  subnet: Subnet;
  serverIp: number;
  leaseSeconds: number;
  router: number | undefined;
  dns: number[];
  mtu: number | undefined;
  /** 0: no limit. */
  leasesPerPort: number;
  /** Hosts of the subnet never leased: the server and the router. */
  reserved: Set<number>;
}

/** A guest with a few interfaces, or a few containers bridged behind it, fits; a pool does not. */
export const DEFAULT_LEASES_PER_PORT = 8;

/** Shortest lease accepted: clients renew at half of it, so less would be a packet storm. */
export const MIN_LEASE_SECONDS = 60;
/** 0xffffffff means "infinite" on the wire (RFC 2132 §9.2); leases here always end. */
export const MAX_LEASE_SECONDS = 0xffff_fffe;

function hostAddress(subnet: Subnet, text: string, what: string): number {
  const address = parseIpv4Address(text);
  if (address === undefined) throw new DhcpConfigError('VU_ERR_BAD_DHCP_CONFIG', text, `${what} is not an IPv4 address`);
  if (!isHostOf(subnet, address)) throw new DhcpConfigError('VU_ERR_BAD_DHCP_CONFIG', text, `${what} is not a host address of ${subnet.cidr}`);
  return address;
}

/** Checks every value; throws DhcpConfigError for the first bad one. */
export function resolveDhcpConfig(input: DhcpConfigInput): DhcpConfig {
  const subnet = parseCidr(input.cidr);
  const serverIp = input.serverIp === undefined ? subnet.network + 1 : hostAddress(subnet, input.serverIp, 'the server address');
  const router = input.router === undefined ? undefined : hostAddress(subnet, input.router, 'the router address');
  const leaseSeconds = input.leaseSeconds ?? 3600;
  if (!Number.isInteger(leaseSeconds) || leaseSeconds < MIN_LEASE_SECONDS || leaseSeconds > MAX_LEASE_SECONDS) {
    throw new DhcpConfigError('VU_ERR_BAD_DHCP_CONFIG', String(leaseSeconds), `lease time must be a whole number of seconds from ${MIN_LEASE_SECONDS} to ${MAX_LEASE_SECONDS}`);
  }
  const dns = (input.dns ?? []).map((text) => {
    const address = parseIpv4Address(text);
    if (address === undefined) throw new DhcpConfigError('VU_ERR_BAD_DHCP_CONFIG', text, 'a DNS server is not an IPv4 address');
    return address;
  });
  if (input.mtu !== undefined && (!Number.isInteger(input.mtu) || input.mtu < 68 || input.mtu > 65535)) {
    throw new DhcpConfigError('VU_ERR_BAD_DHCP_CONFIG', String(input.mtu), 'the MTU option must be 68-65535 (RFC 2132 §5.1)');
  }
  const leasesPerPort = input.leasesPerPort ?? DEFAULT_LEASES_PER_PORT;
  if (!Number.isInteger(leasesPerPort) || leasesPerPort < 0) {
    throw new DhcpConfigError('VU_ERR_BAD_DHCP_CONFIG', String(leasesPerPort), 'the leases per port must be a whole number, 0 for no limit');
  }
  const reserved = new Set([serverIp, ...(router === undefined ? [] : [router])]);
  if (subnet.broadcast - subnet.network - 1 <= reserved.size) {
    throw new DhcpConfigError('VU_ERR_BAD_CIDR', input.cidr, 'no address left to lease after the server and router addresses');
  }
  return { subnet, serverIp, leaseSeconds, router, dns, mtu: input.mtu, leasesPerPort, reserved };
}
