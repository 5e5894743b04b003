/**
 * The DHCP server's address pool and leases (RFC 2131 §4.3.1 address choice).
 *
 * Every address ever handed out keeps a record (who had it, until when), also after it is
 * released or expires, so a client that comes back gets its old address again unless another
 * client needed it meanwhile. Addresses never handed out are used before anyone's old address is
 * reclaimed, oldest first. Times are milliseconds from the injected clock.
 */

export type LeaseState =
  /** Reserved for a client between our OFFER and its REQUEST. */
  | 'offered'
  /** ACKed: the client uses the address until `expiresAt`. */
  | 'bound'
  /** Given back by a RELEASE; remembered for that client, free for others. */
  | 'released'
  /** A client said another host answers on it (DECLINE); unused until `expiresAt`. */
  | 'declined';

export interface Lease {
  /** Client identifier option (`id:…` hex) if the client sent one, else `mac:<chaddr>`. */
  clientKey: string;
  /** The client's hardware address, aa:bb:cc:dd:ee:ff; empty for a declined address. */
  mac: string;
  ip: number;
  state: LeaseState;
  expiresAt: number;
  /** The guest port the client asked from; undefined for an uplink (not limited per port). */
  port?: string;
}

export interface Pool {
  first: number;
  last: number;
  /** Addresses inside [first, last] never leased (the server's own, the router's). */
  reserved: Set<number>;
}

export class LeaseTable {
  private readonly byClient = new Map<string, Lease>();
  private readonly byIp = new Map<number, Lease>();
  /** The clients whose record was assigned on each guest port (each client on one port at most). */
  private readonly clientsByPort = new Map<string, Set<string>>();
  /** Every pool address below this one has a record (or is reserved or set aside). */
  private neverUsedCursor: number;
  /**
   * Addresses out of the pool for the guest ports locked to them (IPv4 port security), with how
   * many ports lock each (the two ends of a migration within the switch lock one address).
   */
  private readonly setAside = new Map<number, number>();

  constructor(private readonly pool: Pool) {
    this.neverUsedCursor = pool.first;
  }

  inPool(ip: number): boolean {
    return ip >= this.pool.first && ip <= this.pool.last && !this.pool.reserved.has(ip) && !this.setAside.has(ip);
  }

  /** Takes `ip` out of the pool for a port locked to it, until as many `returnToPool` calls. */
  setAsideFor(ip: number): void {
    this.setAside.set(ip, (this.setAside.get(ip) ?? 0) + 1);
  }

  returnToPool(ip: number): void {
    const ports = this.setAside.get(ip) ?? 0;
    if (ports > 1) this.setAside.set(ip, ports - 1);
    else if (this.setAside.delete(ip)) this.neverUsedCursor = Math.min(this.neverUsedCursor, ip);
  }

  /** The record that holds `ip` at `now`, if any. */
  holderOf(ip: number, now: number): Lease | undefined {
    const holder = this.byIp.get(ip);
    return holder && LeaseTable.holds(holder, now) ? holder : undefined;
  }

  /** A record that still holds its address at `now` (offered, bound, or declined and quarantined). */
  static holds(lease: Lease, now: number): boolean {
    return lease.state !== 'released' && lease.expiresAt > now;
  }

  /** The client's record, whatever its state. */
  forClient(clientKey: string): Lease | undefined {
    return this.byClient.get(clientKey);
  }

  /** How many clients hold an address (offered, bound) that they asked for on guest port `port`. */
  heldOnPort(port: string, now: number): number {
    let held = 0;
    for (const clientKey of this.clientsByPort.get(port) ?? []) {
      const lease = this.byClient.get(clientKey);
      if (lease && LeaseTable.holds(lease, now)) held++;
    }
    return held;
  }

  /** True if `ip` may be given to `clientKey` now: in the pool and held by nobody else. */
  isAvailableFor(ip: number, clientKey: string, now: number): boolean {
    if (!this.inPool(ip)) return false;
    const holder = this.byIp.get(ip);
    return !holder || holder.clientKey === clientKey || !LeaseTable.holds(holder, now);
  }

  /**
   * The address to offer `clientKey`: its own previous one, else the one it asked for, else one
   * never used, else the longest-unused one of another client; undefined if every address is held.
   */
  chooseAddress(clientKey: string, requested: number | undefined, now: number): number | undefined {
    const own = this.byClient.get(clientKey);
    if (own && this.isAvailableFor(own.ip, clientKey, now)) return own.ip;
    if (requested !== undefined && this.isAvailableFor(requested, clientKey, now)) return requested;
    while (this.neverUsedCursor <= this.pool.last && (this.byIp.has(this.neverUsedCursor) || !this.inPool(this.neverUsedCursor))) this.neverUsedCursor++;
    if (this.neverUsedCursor <= this.pool.last) return this.neverUsedCursor;
    let oldest: Lease | undefined;
    for (const lease of this.byIp.values()) {
      if (!LeaseTable.holds(lease, now) && this.inPool(lease.ip) && (!oldest || lease.expiresAt < oldest.expiresAt)) oldest = lease;
    }
    return oldest?.ip;
  }

  /**
   * Gives `ip` to `clientKey`, asking on guest port `port` (undefined: an uplink), in `state` until
   * `expiresAt`. The caller checked isAvailableFor. The address's previous holder forgets it; the
   * client's previous address (if another) is freed.
   */
  assign(clientKey: string, mac: string, ip: number, state: 'offered' | 'bound', expiresAt: number, port?: string): Lease {
    const previousHolder = this.byIp.get(ip);
    if (previousHolder && previousHolder.clientKey !== clientKey && this.byClient.get(previousHolder.clientKey) === previousHolder) {
      this.forgetClient(previousHolder.clientKey);
    }
    const own = this.byClient.get(clientKey);
    if (own && own.ip !== ip && this.byIp.get(own.ip) === own) {
      own.state = 'released';
      own.expiresAt = Math.min(own.expiresAt, expiresAt);
    }
    if (own) this.unindexPort(own);
    const lease: Lease = { clientKey, mac, ip, state, expiresAt, port };
    this.byClient.set(clientKey, lease);
    this.byIp.set(ip, lease);
    if (port !== undefined) {
      const clients = this.clientsByPort.get(port) ?? new Set<string>();
      this.clientsByPort.set(port, clients.add(clientKey));
    }
    return lease;
  }

  private forgetClient(clientKey: string): void {
    const lease = this.byClient.get(clientKey);
    if (lease) this.unindexPort(lease);
    this.byClient.delete(clientKey);
  }

  private unindexPort(lease: Lease): void {
    if (lease.port === undefined) return;
    const clients = this.clientsByPort.get(lease.port);
    clients?.delete(lease.clientKey);
    if (clients?.size === 0) this.clientsByPort.delete(lease.port);
  }

  /** The client gives its address back (RELEASE) or drops an offer: free now, remembered for it. */
  release(clientKey: string, ip: number, now: number): boolean {
    const lease = this.byClient.get(clientKey);
    if (!lease || lease.ip !== ip || !LeaseTable.holds(lease, now)) return false;
    lease.state = 'released';
    lease.expiresAt = now;
    return true;
  }

  /** Another host uses `ip` (DECLINE): nobody gets it until `until`. */
  decline(clientKey: string, ip: number, until: number): boolean {
    if (!this.inPool(ip)) return false;
    const holder = this.byIp.get(ip);
    if (holder && holder.clientKey !== clientKey) return false;
    if (holder) this.forgetClient(clientKey);
    this.byIp.set(ip, { clientKey: '', mac: '', ip, state: 'declined', expiresAt: until });
    return true;
  }

  /** The bound leases still running at `now`, by address. */
  bound(now: number): Lease[] {
    return [...this.byIp.values()].filter((l) => l.state === 'bound' && l.expiresAt > now).sort((a, b) => a.ip - b.ip);
  }
}
