/**
 * The switch's built-in DHCP server (RFC 2131, options RFC 2132): hands out addresses of the
 * segment's subnet so guests that run a DHCP client (busybox udhcpc, dhclient, systemd-networkd)
 * get an address with no configuration.
 *
 * The switch gives it every frame `accepts` says yes to (DHCP requests, and ARP requests for the
 * server's own address, which clients resolve to unicast their renewals) and sends the frames it
 * returns onto the segment; the server is like one more host on the segment, with its own MAC. Frames come from guests and are hostile: anything malformed is counted and
 * answered with nothing; handleFrame never throws.
 *
 * The server is authoritative for its subnet: a client that asks for an address it may have
 * (INIT-REBOOT, RENEWING, REBINDING) gets it even with no record of it (e.g. after a restart of
 * the switch); an address held by another client, outside the pool or outside the subnet gets a
 * NAK.
 */
import type { Logger } from '../log.ts';
import { formatMac } from '../device/mac.ts';
import {
  BootpOp,
  DhcpMessageType,
  DhcpOption,
  FLAG_BROADCAST,
  HTYPE_ETHERNET,
  decodeDhcpMessage,
  encodeDhcpMessage,
  optionUint32,
  optionUint8,
  uint16Option,
  uint32Option,
  type DhcpMessage,
} from './dhcp-message.ts';
import { DhcpConfigError, isHostOf, resolveDhcpConfig, type DhcpConfig, type DhcpConfigInput } from './dhcp-config.ts';
import { LeaseTable } from './dhcp-leases.ts';
import { buildArpReply, parseArpRequest } from './arp.ts';
import { BROADCAST_MAC, ETH_HEADER_LEN, ETH_P_IP, IPPROTO_UDP, IPV4_BROADCAST, buildUdpFrame, formatIpv4Address, parseUdpFrame } from './packet.ts';

export { parseCidr, DhcpConfigError, type DhcpConfigErrorCode, type Subnet } from './dhcp-config.ts';

export const DHCP_SERVER_PORT = 67;
export const DHCP_CLIENT_PORT = 68;

/** How long an offered address stays reserved for the client's REQUEST. */
export const OFFER_HOLD_MS = 60_000;
/** How long a DECLINEd address stays out of the pool (RFC 2131 §4.3.3 leaves it to the server). */
export const DECLINE_QUARANTINE_MS = 10 * 60_000;
/** A guest port at its lease limit is logged at most this often. */
const PORT_LIMIT_LOG_MS = 60_000;

export interface DhcpServerOptions extends DhcpConfigInput {
  /** The server's MAC: the source of its replies. */
  serverMac: Uint8Array;
  /** Milliseconds; injectable for tests. Default Date.now. */
  now?: () => number;
  /** Why a client got no address (pool full, NAK reasons) at warn/debug level. */
  log?: Logger;
}

/** What the server saw and did, for `ctl stats`. */
export interface DhcpCounters {
  discover: number;
  request: number;
  decline: number;
  release: number;
  inform: number;
  offer: number;
  ack: number;
  nak: number;
  /** DISCOVERs left unanswered because every address is held. */
  poolExhausted: number;
  /** DISCOVERs unanswered and REQUESTs NAKed: a new client on a guest port at its lease limit. */
  portLimit: number;
  /** Frames to UDP port 67 that are not well-formed IPv4/UDP/DHCP requests. */
  malformed: number;
  /** Well-formed messages not for us (another server's, another hardware type, a stray type). */
  ignored: number;
  /** ARP requests for the server's address answered. */
  arpReplies: number;
}

export interface DhcpLeaseInfo {
  mac: string;
  ip: string;
  expiresAt: number;
}

/** A request, parsed, with the frame facts the reply depends on. */
interface Incoming {
  message: DhcpMessage;
  /** The Ethernet source of the frame. */
  srcMac: Uint8Array;
  /** The client's MAC from chaddr. */
  clientMac: Uint8Array;
  clientKey: string;
  /** The guest port it came in on; undefined for an uplink (no per-port limit). */
  port: string | undefined;
}

export class DhcpServer {
  private readonly config: DhcpConfig;
  private readonly serverMac: Uint8Array;
  private readonly now: () => number;
  private readonly log: Logger | undefined;
  private readonly table: LeaseTable;
  private readonly stats: DhcpCounters = { discover: 0, request: 0, decline: 0, release: 0, inform: 0, offer: 0, ack: 0, nak: 0, poolExhausted: 0, portLimit: 0, malformed: 0, ignored: 0, arpReplies: 0 };
  private ipId = 0;
  /** When each guest port at its lease limit was last logged. */
  private readonly portLimitLoggedAt = new Map<string, number>();
  /**
   * Guest ports locked to IPv4 addresses (port security), with the one address their guest gets:
   * undefined if none of them is a host of the subnet (then the guest is offered nothing).
   */
  private readonly lockedPorts = new Map<string, number | undefined>();

  /** Throws DhcpConfigError (VU_ERR_BAD_CIDR, VU_ERR_BAD_DHCP_CONFIG) for a bad configuration. */
  constructor(o: DhcpServerOptions) {
    this.config = resolveDhcpConfig(o);
    if (o.serverMac.length !== 6) throw new DhcpConfigError('VU_ERR_BAD_DHCP_CONFIG', formatMac(o.serverMac), 'the server MAC must be 6 bytes');
    this.serverMac = o.serverMac.slice();
    this.now = o.now ?? Date.now;
    this.log = o.log;
    const { subnet, reserved } = this.config;
    this.table = new LeaseTable({ first: subnet.network + 1, last: subnet.broadcast - 1, reserved });
  }

  /** The subnet it serves, as a CIDR. */
  get subnet(): string {
    return this.config.subnet.cidr;
  }

  /** The server's own address (the source of its replies), dotted. */
  get serverIp(): string {
    return formatIpv4Address(this.config.serverIp);
  }

  /**
   * A cheap filter for the forwarding path: an untagged IPv4 UDP frame to port 67 that is not a
   * fragment. Frames it accepts still go through full validation in handleFrame.
   */
  static isDhcpRequestFrame(frame: Uint8Array): boolean {
    if (frame.length < ETH_HEADER_LEN + 20 + 8) return false;
    if (((frame[12] << 8) | frame[13]) !== ETH_P_IP) return false;
    const ip = ETH_HEADER_LEN;
    if (frame[ip] >> 4 !== 4 || frame[ip + 9] !== IPPROTO_UDP || ((frame[ip + 6] << 8) | frame[ip + 7]) & 0x3fff) return false;
    const udp = ip + (frame[ip] & 0x0f) * 4;
    return udp + 8 <= frame.length && ((frame[udp + 2] << 8) | frame[udp + 3]) === DHCP_SERVER_PORT;
  }

  /** True for the frames handleFrame answers: DHCP requests and ARP requests for the server's address. */
  accepts(frame: Uint8Array): boolean {
    return DhcpServer.isDhcpRequestFrame(frame) || parseArpRequest(frame)?.targetIp === this.config.serverIp;
  }

  /**
   * An Ethernet frame from the segment; returns the reply frames to send (zero or one), addressed
   * per RFC 2131 §4.1: to the relay if giaddr is set, unicast to ciaddr if set, broadcast if the
   * client set the BROADCAST flag (and for every NAK), else unicast to yiaddr/chaddr. An ARP
   * request for the server's address gets the ARP reply. Any other frame may be passed (e.g.
   * every broadcast on the segment): it is answered with nothing and not counted. `port` is the
   * guest port the frame came in on (its clients are limited to `leasesPerPort`); undefined for an
   * uplink's.
   */
  handleFrame(frame: Uint8Array, port?: string): Uint8Array[] {
    try {
      return this.handle(frame, port);
    } catch (error) {
      // Not reachable with the bounds checks of the parsers; kept so that a bug here can never
      // take the forwarding path down with it.
      this.stats.malformed++;
      this.log?.error('DHCP request handling failed', { reason: (error as Error).message });
      return [];
    }
  }

  /**
   * Guest port `port` is locked to IP addresses (`--port …,ip=`), of which `ips` are the IPv4 ones
   * (possibly none: a port locked to IPv6 addresses only), or no longer (undefined): its guest may
   * send IPv4 from those only, so it is offered the first of them that is a host of the subnet
   * (and not the server's or the router's), which no other client gets; with none such, it is
   * offered nothing. Returns the address its guest gets.
   */
  lockPort(port: string, ips: readonly number[] | undefined): number | undefined {
    const previous = this.lockedPorts.get(port);
    if (previous !== undefined) this.table.returnToPool(previous);
    this.lockedPorts.delete(port);
    if (ips === undefined) return undefined;
    const address = ips.find((ip) => isHostOf(this.config.subnet, ip) && !this.config.reserved.has(ip));
    this.lockedPorts.set(port, address);
    if (address !== undefined) this.table.setAsideFor(address);
    return address;
  }

  /** The bound leases still running, by address. */
  leases(): DhcpLeaseInfo[] {
    return this.table.bound(this.now()).map((l) => ({ mac: l.mac, ip: formatIpv4Address(l.ip), expiresAt: l.expiresAt }));
  }

  counters(): DhcpCounters {
    return { ...this.stats };
  }

  private handle(frame: Uint8Array, port: string | undefined): Uint8Array[] {
    const arp = parseArpRequest(frame);
    if (arp?.targetIp === this.config.serverIp) {
      this.stats.arpReplies++;
      return [buildArpReply(this.serverMac, this.config.serverIp, arp)];
    }
    // The rest of the segment's broadcast traffic (other ARP, IPv6 ND, …) is none of our business.
    if (!DhcpServer.isDhcpRequestFrame(frame)) return [];
    const parsed = parseUdpFrame(frame);
    if (!parsed || parsed.udp.dstPort !== DHCP_SERVER_PORT) return this.malformed();
    const message = decodeDhcpMessage(parsed.udp.payload);
    if (!message || message.op !== BootpOp.BOOTREQUEST) return this.malformed();
    const type = optionUint8(message, DhcpOption.MESSAGE_TYPE);
    if (type === undefined) return this.malformed();
    const { subnet, serverIp } = this.config;
    const dst = parsed.ip.dst;
    if (dst !== IPV4_BROADCAST && dst !== serverIp && dst !== subnet.broadcast) return this.ignored(); // another server's unicast
    if (message.htype !== HTYPE_ETHERNET || message.hlen !== 6) return this.ignored();
    const clientMac = message.chaddr.slice(0, 6);
    const clientId = message.options.get(DhcpOption.CLIENT_IDENTIFIER);
    const clientKey = clientId && clientId.length > 0 ? `id:${Buffer.from(clientId).toString('hex')}` : `mac:${formatMac(clientMac)}`;
    const incoming: Incoming = { message, srcMac: parsed.eth.src.slice(), clientMac, clientKey, port };
    switch (type) {
      case DhcpMessageType.DHCPDISCOVER:
        return this.onDiscover(incoming);
      case DhcpMessageType.DHCPREQUEST:
        return this.onRequest(incoming);
      case DhcpMessageType.DHCPDECLINE:
        return this.onDecline(incoming);
      case DhcpMessageType.DHCPRELEASE:
        return this.onRelease(incoming);
      case DhcpMessageType.DHCPINFORM:
        return this.onInform(incoming);
      default:
        return this.ignored(); // a server's message type, or one we do not know
    }
  }

  /** §4.3.1: choose an address, reserve it, OFFER it. */
  private onDiscover(r: Incoming): Uint8Array[] {
    this.stats.discover++;
    const now = this.now();
    const locked = this.lockedAddress(r, now);
    if (locked?.refused !== undefined) {
      this.log?.debug('DHCP: no offer on a locked port', { port: r.port, mac: formatMac(r.clientMac), reason: locked.refused });
      return [];
    }
    if (!locked && this.overPortLimit(r, now)) return [];
    const requested = optionUint32(r.message, DhcpOption.REQUESTED_IP_ADDRESS);
    const ip = locked?.ip ?? this.table.chooseAddress(r.clientKey, requested, now);
    if (ip === undefined) {
      this.stats.poolExhausted++;
      this.log?.warn('DHCP pool full: no address to offer', { mac: formatMac(r.clientMac), subnet: this.config.subnet.cidr });
      return [];
    }
    const own = this.table.forClient(r.clientKey);
    // A client already bound to this address keeps its lease; otherwise reserve it for the REQUEST.
    if (!(own && own.ip === ip && own.state === 'bound' && LeaseTable.holds(own, now))) {
      this.table.assign(r.clientKey, formatMac(r.clientMac), ip, 'offered', now + OFFER_HOLD_MS, r.port);
    }
    this.stats.offer++;
    return [this.reply(r, DhcpMessageType.DHCPOFFER, ip)];
  }

  /**
   * §4.3.2: SELECTING (server identifier present), INIT-REBOOT (requested address, no ciaddr),
   * RENEWING/REBINDING (ciaddr, no requested address). ACK the address if the client may have it.
   */
  private onRequest(r: Incoming): Uint8Array[] {
    this.stats.request++;
    const now = this.now();
    const serverId = optionUint32(r.message, DhcpOption.SERVER_IDENTIFIER);
    const requested = optionUint32(r.message, DhcpOption.REQUESTED_IP_ADDRESS);
    if (serverId !== undefined && serverId !== this.config.serverIp) {
      // The client chose another server's offer: ours is free again.
      const own = this.table.forClient(r.clientKey);
      if (own?.state === 'offered') this.table.release(r.clientKey, own.ip, now);
      return this.ignored();
    }
    const ip = requested ?? (serverId === undefined ? r.message.ciaddr : 0);
    if (ip === 0) return this.malformed(); // SELECTING without a requested address, or neither form
    const refusal = this.refusal(r, ip, now);
    if (refusal !== undefined) {
      this.log?.debug('DHCP NAK', { mac: formatMac(r.clientMac), requested: formatIpv4Address(ip), reason: refusal });
      this.stats.nak++;
      return [this.nak(r, refusal)];
    }
    this.table.assign(r.clientKey, formatMac(r.clientMac), ip, 'bound', now + this.config.leaseSeconds * 1000, r.port);
    this.stats.ack++;
    return [this.reply(r, DhcpMessageType.DHCPACK, ip)];
  }

  /** §4.3.3: another host answers on the address we gave; keep it out of the pool for a while. */
  private onDecline(r: Incoming): Uint8Array[] {
    this.stats.decline++;
    const ip = optionUint32(r.message, DhcpOption.REQUESTED_IP_ADDRESS);
    if (ip === undefined || !this.isForUs(r)) return this.ignored();
    if (this.table.decline(r.clientKey, ip, this.now() + DECLINE_QUARANTINE_MS)) {
      this.log?.warn('DHCP address declined: another host uses it', { mac: formatMac(r.clientMac), ip: formatIpv4Address(ip) });
    }
    return [];
  }

  /** §4.3.4: the client gives its address (ciaddr) back. */
  private onRelease(r: Incoming): Uint8Array[] {
    this.stats.release++;
    if (!this.isForUs(r)) return this.ignored();
    this.table.release(r.clientKey, r.message.ciaddr, this.now());
    return [];
  }

  /** §4.3.5: a client with an address asks for the other parameters; ACK without a lease. */
  private onInform(r: Incoming): Uint8Array[] {
    this.stats.inform++;
    if (r.message.ciaddr === 0) return this.malformed();
    this.stats.ack++;
    return [this.reply(r, DhcpMessageType.DHCPACK, 0)];
  }

  /** Why the client of `r` may not have `ip` now, or undefined if it may. */
  private refusal(r: Incoming, ip: number, now: number): string | undefined {
    const locked = this.lockedAddress(r, now);
    if (locked) return locked.refused ?? (ip === locked.ip ? undefined : `port ${r.port} is locked to ${formatIpv4Address(locked.ip)}`);
    if (this.overPortLimit(r, now)) return `port ${r.port} holds its limit of ${this.config.leasesPerPort} addresses`;
    if (this.table.isAvailableFor(ip, r.clientKey, now)) return undefined;
    return this.table.inPool(ip) ? 'address held by another client' : `address not in the pool of ${this.config.subnet.cidr}`;
  }

  /**
   * For a client on a port locked to IPv4 addresses: the one address it gets, or why it gets
   * none (the port has no address in the subnet; a lease from before the lock still holds it).
   * Another client on the same port, or on another port locked to it (a guest migrated within the
   * switch), takes the address over. Undefined for other ports.
   */
  private lockedAddress(r: Incoming, now: number): { ip: number; refused?: undefined } | { ip?: undefined; refused: string } | undefined {
    if (r.port === undefined || !this.lockedPorts.has(r.port)) return undefined;
    const ip = this.lockedPorts.get(r.port);
    if (ip === undefined) return { refused: `port ${r.port} is locked to addresses outside ${this.config.subnet.cidr}` };
    const holder = this.table.holderOf(ip, now);
    const takesOver = !holder || holder.clientKey === r.clientKey || (holder.port !== undefined && this.lockedPorts.get(holder.port) === ip);
    return takesOver ? { ip } : { refused: `${formatIpv4Address(ip)} is leased to ${holder.mac || 'a declined address'} until its lease ends` };
  }

  /**
   * True (counted, logged now and then) if `r` is a client without an address whose guest port
   * already has `leasesPerPort` clients holding one: a guest inventing client identifiers would
   * otherwise take the whole pool. A client with an address keeps it (renewals, a moved guest).
   */
  private overPortLimit(r: Incoming, now: number): boolean {
    const limit = this.config.leasesPerPort;
    if (r.port === undefined || limit === 0) return false;
    const own = this.table.forClient(r.clientKey);
    if (own && LeaseTable.holds(own, now)) return false;
    if (this.table.heldOnPort(r.port, now) < limit) return false;
    this.stats.portLimit++;
    const loggedAt = this.portLimitLoggedAt.get(r.port);
    if (loggedAt === undefined || now - loggedAt >= PORT_LIMIT_LOG_MS) {
      for (const [port, at] of this.portLimitLoggedAt) if (now - at >= PORT_LIMIT_LOG_MS) this.portLimitLoggedAt.delete(port);
      this.portLimitLoggedAt.set(r.port, now);
      this.log?.warn('DHCP: a guest port asked for more addresses than it may hold; new clients on it get none', { port: r.port, limit, mac: formatMac(r.clientMac) });
    }
    return true;
  }

  /** DECLINE and RELEASE carry our server identifier (RFC 2131 table 5). */
  private isForUs(r: Incoming): boolean {
    return optionUint32(r.message, DhcpOption.SERVER_IDENTIFIER) === this.config.serverIp;
  }

  /** OFFER or ACK (yiaddr 0: the ACK of an INFORM, without lease times), RFC 2131 table 3. */
  private reply(r: Incoming, type: DhcpMessageType, yiaddr: number): Uint8Array {
    const c = this.config;
    const options = new Map<number, Uint8Array>([
      [DhcpOption.MESSAGE_TYPE, Uint8Array.of(type)],
      [DhcpOption.SERVER_IDENTIFIER, uint32Option(c.serverIp)],
    ]);
    if (yiaddr !== 0) {
      options.set(DhcpOption.IP_ADDRESS_LEASE_TIME, uint32Option(c.leaseSeconds));
      options.set(DhcpOption.RENEWAL_TIME, uint32Option(Math.floor(c.leaseSeconds / 2)));
      options.set(DhcpOption.REBINDING_TIME, uint32Option(Math.floor((c.leaseSeconds * 7) / 8)));
    }
    options.set(DhcpOption.SUBNET_MASK, uint32Option(c.subnet.mask));
    options.set(DhcpOption.BROADCAST_ADDRESS, uint32Option(c.subnet.broadcast));
    if (c.router !== undefined) options.set(DhcpOption.ROUTER, uint32Option(c.router));
    if (c.dns.length > 0) options.set(DhcpOption.DOMAIN_NAME_SERVER, concatAddresses(c.dns));
    if (c.mtu !== undefined) options.set(DhcpOption.INTERFACE_MTU, uint16Option(c.mtu));
    this.echoClientId(r, options);
    const ciaddr = type === DhcpMessageType.DHCPACK ? r.message.ciaddr : 0;
    return this.frame(r, { ...this.replyFields(r), ciaddr, yiaddr, options });
  }

  /** NAK: no addresses, server identifier and a reason (RFC 2131 table 3); always broadcast. */
  private nak(r: Incoming, reason: string): Uint8Array {
    const options = new Map<number, Uint8Array>([
      [DhcpOption.MESSAGE_TYPE, Uint8Array.of(DhcpMessageType.DHCPNAK)],
      [DhcpOption.SERVER_IDENTIFIER, uint32Option(this.config.serverIp)],
      [DhcpOption.MESSAGE, new TextEncoder().encode(reason)],
    ]);
    this.echoClientId(r, options);
    return this.frame(r, { ...this.replyFields(r), ciaddr: 0, yiaddr: 0, options }, true);
  }

  /** RFC 6842: a server that receives a client identifier returns it. */
  private echoClientId(r: Incoming, options: Map<number, Uint8Array>): void {
    const clientId = r.message.options.get(DhcpOption.CLIENT_IDENTIFIER);
    if (clientId && clientId.length > 0) options.set(DhcpOption.CLIENT_IDENTIFIER, clientId);
  }

  private replyFields(r: Incoming): Omit<DhcpMessage, 'ciaddr' | 'yiaddr' | 'options'> {
    const m = r.message;
    return { op: BootpOp.BOOTREPLY, htype: m.htype, hlen: m.hlen, hops: 0, xid: m.xid, secs: 0, flags: m.flags, siaddr: 0, giaddr: m.giaddr, chaddr: m.chaddr };
  }

  /** The reply on the wire, addressed per RFC 2131 §4.1. */
  private frame(r: Incoming, message: DhcpMessage, isNak = false): Uint8Array {
    const m = r.message;
    let dstMac: Uint8Array;
    let dstIp: number;
    let dstPort = DHCP_CLIENT_PORT;
    if (m.giaddr !== 0) {
      [dstMac, dstIp, dstPort] = [r.srcMac, m.giaddr, DHCP_SERVER_PORT];
    } else if (isNak) {
      [dstMac, dstIp] = [BROADCAST_MAC, IPV4_BROADCAST];
    } else if (m.ciaddr !== 0) {
      [dstMac, dstIp] = [r.srcMac, m.ciaddr];
    } else if (m.flags & FLAG_BROADCAST) {
      [dstMac, dstIp] = [BROADCAST_MAC, IPV4_BROADCAST];
    } else {
      [dstMac, dstIp] = [r.clientMac, message.yiaddr];
    }
    this.ipId = (this.ipId + 1) & 0xffff;
    return buildUdpFrame({ dstMac, srcMac: this.serverMac, srcIp: this.config.serverIp, dstIp, srcPort: DHCP_SERVER_PORT, dstPort, payload: encodeDhcpMessage(message), ipId: this.ipId });
  }

  private malformed(): Uint8Array[] {
    this.stats.malformed++;
    return [];
  }

  private ignored(): Uint8Array[] {
    this.stats.ignored++;
    return [];
  }
}

function concatAddresses(addresses: number[]): Uint8Array {
  const bytes = new Uint8Array(addresses.length * 4);
  addresses.forEach((a, i) => bytes.set(uint32Option(a), i * 4));
  return bytes;
}
