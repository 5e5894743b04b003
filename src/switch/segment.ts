/**
 * One private Ethernet segment: the Rust switch, its guest ports (one per vhost-user connection),
 * its uplinks, and the host port through which the built-in DHCP server answers. What `ctl`
 * shows and changes goes through here.
 */
import { randomBytes } from 'node:crypto';
import * as native from '../native.ts';
import { NetDevice } from '../device/net-device.ts';
import { NativeDataPlane } from '../device/native-data-plane.ts';
import { formatMac, randomMac } from '../device/mac.ts';
import type { AttachedDevice } from '../backend/server.ts';
import type { Logger } from '../log.ts';
import { DhcpServer } from './dhcp-server.ts';
import { ControlError, type MacEntry, type PortInfo } from './control-protocol.ts';
import { ipv4Addresses, type PortSecurity } from './port-security.ts';

/** MAC entries live this long without traffic (IEEE 802.1D's default). */
export const MAC_AGING_SECONDS = 300;

export interface SegmentOptions {
  mtu: number;
  /** The DHCP server's subnet (e.g. 10.0.2.0/24), or undefined for none. */
  dhcpCidr?: string;
  /** Most DHCP clients one guest port may hold addresses for (DhcpConfigInput.leasesPerPort). */
  dhcpLeasesPerPort?: number;
  agingSeconds?: number;
  /** Offer GUEST_ANNOUNCE to every guest (see NetDeviceOptions.guestAnnounce). */
  guestAnnounce?: boolean;
  /** Busy-poll budget of every guest port's worker, in µs (0: event-driven). */
  busyPollUs?: number;
  log: Logger;
}

interface GuestPort {
  name: string;
  mac: string;
  device: native.NetDevice;
}

export class Segment {
  readonly switch: native.Switch;
  private readonly guests = new Map<number, GuestPort>();
  private readonly uplinks = new Map<number, string>();
  private readonly dhcp: DhcpServer | undefined;
  private readonly hostPortId: number | undefined;
  private readonly log: Logger;
  private readonly guestAnnounce: boolean;
  private readonly busyPollUs: number;

  constructor(options: SegmentOptions) {
    this.log = options.log;
    this.guestAnnounce = options.guestAnnounce ?? false;
    this.busyPollUs = options.busyPollUs ?? 0;
    this.switch = new native.Switch(options.mtu, options.agingSeconds ?? MAC_AGING_SECONDS);
    if (options.dhcpCidr) {
      const serverMac = randomMac((n) => randomBytes(n));
      this.dhcp = new DhcpServer({ cidr: options.dhcpCidr, leasesPerPort: options.dhcpLeasesPerPort, serverMac, log: options.log.child('dhcp') });
      this.hostPortId = this.switch.addHostPort('dhcp', (frame, fromPortId) => this.onHostFrame(frame, fromPortId));
      this.log.info('DHCP server on', { subnet: options.dhcpCidr, serverIp: this.dhcp.serverIp, mac: formatMac(serverMac) });
    }
  }

  /** A frame for the DHCP server from port `fromPortId`: a guest's port (limited per port) or an uplink. */
  private onHostFrame(frame: Uint8Array, fromPortId: number): void {
    if (!this.dhcp || this.hostPortId === undefined) return;
    for (const reply of this.dhcp.handleFrame(frame, this.guests.get(fromPortId)?.name)) this.switch.inject(this.hostPortId, reply);
  }

  /**
   * A new guest port for one vhost-user connection; detaching removes the port. With `security`
   * the port sends only from its MAC (and IP addresses), and no other port does; the device
   * offers that MAC as its own.
   */
  attachGuest(name: string, vlan = 0, security?: PortSecurity): AttachedDevice {
    const mac = security?.mac ?? randomMac((n) => randomBytes(n));
    const device = new NetDevice({ queuePairs: 1, mac, offloads: 'tcp', guestAnnounce: this.guestAnnounce });
    const nativeDevice = new native.NetDevice(this.switch, name, (event) => {
      if (event.kind === 'fault') this.log.error('guest broke a ring; its port is cut off until the front-end resets it', { port: name, reason: event.message });
      else if (event.kind === 'host-failure') this.log.error('its port is cut off by a failure on this host until the front-end resets it', { port: name, reason: event.message });
      else this.log.info(event.message, { port: name });
    }, vlan);
    nativeDevice.setBusyPoll(this.busyPollUs);
    const portId = nativeDevice.portId!;
    if (security) this.switch.lockMac(portId, security.mac);
    if (security?.ips.length) this.switch.lockIps(portId, security.ips.join(','));
    this.guests.set(portId, { name, mac: formatMac(mac), device: nativeDevice });
    return {
      name,
      device,
      dataPlane: new NativeDataPlane(nativeDevice),
      detach: () => {
        this.guests.delete(portId);
        nativeDevice.close();
      },
    };
  }

  /**
   * Holds a named port's addresses for as long as the port exists (`held`), its guest connected or
   * not: nobody else sends from its MAC or claims its IP addresses, and the DHCP server gives its
   * guest the first of its IPv4 addresses in the DHCP subnet, which nobody else gets. `held` false
   * ends that.
   */
  holdAddresses(port: string, { mac, ips }: PortSecurity, held: boolean): void {
    if (held) this.switch.reserveMac(mac);
    else this.switch.releaseMac(mac);
    if (ips.length === 0) return;
    if (held) this.switch.reserveIps(ips.join(','));
    else this.switch.releaseIps(ips.join(','));
    const address = this.dhcp?.lockPort(port, held ? ipv4Addresses(ips) : undefined);
    if (this.dhcp && held && address === undefined) {
      this.log.warn('none of the port\'s locked addresses is an IPv4 host address of the DHCP subnet: its guest gets no address from DHCP', { port, subnet: this.dhcp.subnet });
    }
  }

  addUplink(spec: string, vlan = 0): PortInfo {
    let id: number;
    try {
      if (spec.startsWith('tap:')) id = this.switch.addTapUplink(spec.slice(4), vlan);
      else if (spec.startsWith('stream:')) id = this.switch.addStreamUplink(spec.slice(7), vlan);
      else throw new ControlError('VU_ERR_BAD_ARGS', `'${spec}' is not tap:NAME, stream:unix:PATH or stream:tcp:HOST:PORT`);
    } catch (error) {
      if (error instanceof ControlError) throw error;
      throw Object.assign(new Error(`uplink ${spec}: ${(error as Error).message}`), { code: (error as { code?: string }).code ?? 'VU_ERR_UPLINK' });
    }
    this.uplinks.set(id, spec);
    this.log.info('uplink added', { uplink: spec, port: id });
    return this.ports().find((p) => p.id === id)!;
  }

  removeUplink(id: number): void {
    if (!this.uplinks.has(id)) throw new ControlError('VU_ERR_BAD_ARGS', `no uplink with id ${id}`);
    this.switch.removeUplink(id);
    this.uplinks.delete(id);
    this.log.info('uplink removed', { port: id });
  }

  ports(): PortInfo[] {
    return this.switch
      .ports()
      .filter((p) => p.kind !== 'host')
      .map((p) => {
        const c = p.counters;
        const drops: Record<string, bigint> = {};
        for (const [name, value] of Object.entries(c)) if (name.startsWith('drop') && value > 0n) drops[name.slice(4, 5).toLowerCase() + name.slice(5)] = value;
        const guest = this.guests.get(p.id);
        return {
          id: p.id,
          name: p.name,
          kind: p.kind as PortInfo['kind'],
          mac: guest?.mac,
          macLocked: p.lockedMac !== undefined || undefined,
          lockedIps: p.lockedIps,
          vlan: p.vlan || undefined,
          // A guest port lives as long as its connection; an uplink whose peer left stays listed, broken.
          state: guest || p.attached ? ('connected' as const) : ('broken' as const),
          rxFrames: c.toPortFrames,
          txFrames: c.fromPortFrames,
          rxBytes: c.toPortBytes,
          txBytes: c.fromPortBytes,
          drops,
        };
      });
  }

  macs(): MacEntry[] {
    const names = new Map(this.switch.ports().map((p) => [p.id, p.name]));
    return this.switch.macs().map((m) => ({ mac: m.mac, portId: m.portId, portName: names.get(m.portId) ?? '?', vlan: m.vlan || undefined, ageSeconds: Math.floor(m.ageMs / 1000) }));
  }

  stats(): Record<string, bigint | number> {
    const stats: Record<string, bigint | number> = { ports: this.ports().length, macs: this.switch.macs().length };
    for (const port of this.switch.ports()) for (const [name, value] of Object.entries(port.counters)) stats[name] = ((stats[name] as bigint | undefined) ?? 0n) + value;
    if (this.dhcp) for (const [name, value] of Object.entries(this.dhcp.counters())) stats[`dhcp.${name}`] = value;
    if (this.dhcp) stats['dhcp.leases'] = this.dhcp.leases().length;
    return stats;
  }

  close(): void {
    for (const guest of this.guests.values()) guest.device.close();
    this.guests.clear();
    this.switch.close();
  }
}
