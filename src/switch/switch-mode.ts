/**
 * The default job: a userspace switch. Every front-end that connects to the shared socket becomes
 * a new port (`guest<N>`); `--port NAME=PATH` adds named single-guest sockets; `--uplink` adds TAP
 * and stream uplinks; `ctl` talks to it through the control socket.
 */
import type { BackendOptions } from '../cli/args.ts';
import { BackendServer, type AttachedDevice } from '../backend/server.ts';
import { formatMac } from '../device/mac.ts';
import type { Logger } from '../log.ts';
import { ControlServer } from './control-server.ts';
import { ControlError, type PortInfo, type SwitchControl } from './control-protocol.ts';
import { describeSecurity, type PortSecurity } from './port-security.ts';
import { Segment } from './segment.ts';

const DEFAULT_MTU = 1500;

export class SwitchMode implements SwitchControl {
  readonly segment: Segment;
  private readonly shared: BackendServer;
  private readonly named = new Map<string, { server: BackendServer; path: string; security?: PortSecurity }>();
  private control: ControlServer | undefined;
  private guests = 0;

  constructor(private readonly options: BackendOptions, private readonly log: Logger) {
    this.segment = new Segment({ mtu: options.mtu ?? DEFAULT_MTU, dhcpCidr: options.dhcp === 'off' ? undefined : options.dhcp, dhcpLeasesPerPort: options.dhcpLeasesPerPort, guestAnnounce: options.announce === 'guest', busyPollUs: options.busyPollUs, log });
    this.shared = this.server(options.socketPath, options.listenFd, () => this.segment.attachGuest(`guest${++this.guests}`));
  }

  private server(socketPath: string | undefined, listenFd: number | undefined, attach: () => AttachedDevice): BackendServer {
    const { socketMode, socketGroup, allowUids } = this.options;
    return new BackendServer({ socketPath, listenFd, client: false, socketMode, socketGroup, allowUids, attach, log: this.log });
  }

  async start(): Promise<void> {
    this.shared.start();
    for (const { spec, vlan } of this.options.uplinks) this.segment.addUplink(spec, vlan);
    for (const { name, path, vlan, security } of this.options.ports) this.addPort(name, path, vlan, security);
    if (this.options.controlPath) {
      this.control = new ControlServer(this.options.controlPath, this, this.log.child('control'));
      await this.control.listen();
      this.log.info('control socket', { control: this.options.controlPath });
    }
    this.log.info('switch ready: point QEMU at the socket', { socket: this.options.socketPath ?? `fd ${this.options.listenFd}` });
  }

  /** A named socket serving one guest at a time, as port NAME (with port security, if given). */
  addPort(name: string, socketPath: string, vlan = 0, security?: PortSecurity): PortInfo {
    if (this.named.has(name)) throw new ControlError('VU_ERR_BAD_ARGS', `a port named '${name}' exists`);
    let inUse = false;
    const server = this.server(socketPath, undefined, () => {
      if (inUse) throw new Error(`port ${name} serves one guest at a time`);
      inUse = true;
      const attached = this.segment.attachGuest(name, vlan, security);
      return { ...attached, detach: () => ((inUse = false), attached.detach()) };
    });
    server.start();
    // The addresses stay the port's while its guest is away (rebooting, reconnecting): nobody takes them.
    if (security) this.segment.holdAddresses(name, security, true);
    this.named.set(name, { server, path: socketPath, security });
    this.log.info('port added', { port: name, socket: socketPath, ...(security && describeSecurity(security)) });
    return this.waitingPort(name);
  }

  /** A named port with no guest connected. */
  private waitingPort(name: string): PortInfo {
    const security = this.named.get(name)?.security;
    const locks = security && { mac: formatMac(security.mac), macLocked: true, ...(security.ips.length > 0 && { lockedIps: [...security.ips] }) };
    return { id: 0, name, kind: 'vhost-user', ...locks, state: 'waiting', rxFrames: 0n, txFrames: 0n, rxBytes: 0n, txBytes: 0n, drops: {} };
  }

  removePort(name: string): void {
    const port = this.named.get(name);
    if (!port) throw new ControlError('VU_ERR_BAD_ARGS', `no port named '${name}' (only --port/add-port sockets can be removed)`);
    port.server.stop();
    if (port.security) this.segment.holdAddresses(name, port.security, false);
    this.named.delete(name);
    this.log.info('port removed', { port: name });
  }

  ports(): PortInfo[] {
    const live = this.segment.ports();
    const waiting = [...this.named.keys()]
      .filter((name) => !live.some((p) => p.name === name))
      .map((name) => this.waitingPort(name));
    return [...live, ...waiting];
  }

  macs() {
    return this.segment.macs();
  }

  stats() {
    return this.segment.stats();
  }

  addUplink(spec: string, vlan = 0): PortInfo {
    return this.segment.addUplink(spec, vlan);
  }

  removeUplink(id: number): void {
    this.segment.removeUplink(id);
  }

  async stop(): Promise<void> {
    await this.control?.close();
    for (const { server } of this.named.values()) server.stop();
    this.shared.stop();
    this.segment.close();
  }
}
