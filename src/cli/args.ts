/**
 * Command-line parsing. Option spellings follow the vhost-user spec's "Back-end program conventions"
 * (--socket-path, --fd, --print-capabilities) and are part of the interface: scripts depend on them.
 */
import { parseMac, type MacAddress } from '../device/mac.ts';
import { parseLockedIp, withPortSecurity, type PortSecurity } from '../switch/port-security.ts';
import { MAX_BUSY_POLL_US, MAX_MTU, MAX_QUEUE_PAIRS, MIN_MTU } from '../device/limits.ts';
import { defaultAllowUids } from '../backend/access.ts';
import { lookupGroupId } from './group-id.ts';
import { defaultControlPath, defaultSocketPath } from '../switch/default-paths.ts';
import { DEFAULT_LEASES_PER_PORT } from '../switch/dhcp-config.ts';

/** A named switch port (`--port NAME=PATH[,vlan=N][,mac=MAC[,ip=ADDR]…]`). */
export interface SwitchPortOption {
  name: string;
  path: string;
  vlan: number;
  /** Port security: the MAC (and IP addresses) the guest on it sends from, and no other port does. */
  security?: PortSecurity;
}

export interface BackendOptions {
  mode: 'run';
  /** Listen (server) or connect (client) here; undefined with --fd. */
  socketPath?: string;
  /** An inherited, already listening UNIX socket. */
  listenFd?: number;
  /** Connect to a front-end that listens, retrying until it appears. */
  client: boolean;
  /** The dedicated one-guest TAP back-end; undefined: the userspace switch. */
  tap?: string;
  queuePairs: number;
  /** Switch mode: named single-guest sockets (`--port NAME=PATH[,vlan=N][,mac=MAC[,ip=ADDR]…]`). */
  ports: SwitchPortOption[];
  /** Switch mode: `tap:NAME`, `stream:unix:PATH`, `stream:tcp:HOST:PORT`, each with an optional access VLAN. */
  uplinks: { spec: string; vlan: number }[];
  /** Switch mode: the DHCP server's subnet, or 'off'. */
  dhcp: string;
  /** Switch mode: most DHCP clients one guest port may hold addresses for (0: no limit); undefined: the default. */
  dhcpLeasesPerPort?: number;
  /** Switch mode: the control socket of `vhost-user-net ctl`. */
  controlPath: string;
  mac?: MacAddress;
  mtu?: number;
  socketMode: number;
  /** Group the created socket is given (chown after listen); undefined: the process's group. */
  socketGroup?: number;
  /** Uids whose connections are served (SO_PEERCRED); everyone else is logged and closed. */
  allowUids: number[];
  /** Who announces a live-migrated guest: this back-end (SEND_RARP) or the guest (GUEST_ANNOUNCE). */
  announce: Announce;
  /** Microseconds a queue-pair worker keeps polling after it last found work; 0: event-driven. */
  busyPollUs: number;
}

/** See docs/announce.md. */
export type Announce = 'rarp' | 'guest';

export type CliCommand = BackendOptions | { mode: 'help' } | { mode: 'print-capabilities' } | { mode: 'ctl'; argv: string[] };

/** Beyond any guest's needs; a bound that keeps the option a number, not a typo. */
const MAX_LEASES_PER_PORT = 65535;

/** The switch's segment when --dhcp is not given: QEMU's user-mode network uses the same. */
export const DEFAULT_DHCP_CIDR = '10.0.2.0/24';

export class UsageError extends Error {
  readonly code = 'VU_ERR_USAGE';
}

/** The largest uid/gid; (uid_t)-1 means "unchanged" to chown and is never a real id. */
const MAX_ID = 0xffff_fffe;

export const USAGE = `Usage: vhost-user-net [options]                      the userspace switch
       vhost-user-net --socket-path PATH --tap NAME [options]   one guest on a TAP
       vhost-user-net ctl [--json] ports|macs|stats|add-port|…  talk to a running switch

A vhost-user back-end for virtio-net: serves QEMU (or DPDK virtio-user) guests' network
devices. Without --tap it is a userspace L2 switch: every front-end that connects to the
socket becomes a port of one private Ethernet segment (no root, no bridge, no TAP), with a
built-in DHCP server. With --tap it serves one guest and moves its frames to a TAP device.

Switch mode:
  (no --socket-path)     listen on $XDG_RUNTIME_DIR/vhost-user-net.sock, else
                         ./vhost-user-net.sock (the path is printed)
  --port NAME=PATH       also a named single-guest socket (repeatable)
  --uplink SPEC          tap:NAME | stream:unix:PATH | stream:tcp:HOST:PORT (QEMU's
                         socket netdev framing; repeatable)
                         (--port and --uplink take ,vlan=N: an 802.1Q access VLAN
                         1..4094; ports only reach ports of their own VLAN, and
                         frames that arrive tagged are dropped)
                         (--port takes ,mac=MAC: port security; the guest on it
                         sends only from MAC, and no other port sends from MAC;
                         and then ,ip=ADDR, repeatable, IPv4 or IPv6: IP, ARP and
                         neighbour discovery only from ADDR, no DHCP server or
                         router advertisements, and no other port claims ADDR)
  --dhcp CIDR|off        the DHCP server's subnet (default ${DEFAULT_DHCP_CIDR})
  --dhcp-leases-per-port N
                         most DHCP clients one guest port may hold addresses for
                         (default ${DEFAULT_LEASES_PER_PORT}; 0: no limit; uplinks are not limited)
  --control PATH         control socket for 'vhost-user-net ctl' (default next to the
                         default socket: vhost-user-net.ctl)

Common:
  --socket-path PATH     UNIX socket to listen on (or, with --client, to connect to)
  --fd N                 use the already listening UNIX socket inherited as fd N
  --client               connect to a front-end listening on --socket-path (QEMU
                         -chardev socket,server=on); retry until it appears
  --tap NAME             TAP interface to use: an existing persistent TAP owned by
                         this user, a new one (needs CAP_NET_ADMIN), or /dev/tapN
                         (macvtap)
  --queues N             queue pairs (default 1, at most ${MAX_QUEUE_PAIRS}); the TAP is opened
                         with IFF_MULTI_QUEUE when N > 1
  --mac MAC              MAC address offered to the guest in config space
  --mtu N                MTU offered to the guest (VIRTIO_NET_F_MTU), ${MIN_MTU}..${MAX_MTU}
  --socket-mode MODE     permissions of the created socket, octal (default 0600)
  --socket-group GROUP   group (name or gid) of the created socket, e.g. with
                         --socket-mode 0660 for a front-end running as another user
  --allow-uid UID[,UID]  uids whose connections to the socket are served (SO_PEERCRED);
                         others are logged and closed (default: this process's uid and
                         root; not checked with --client)
  --busy-poll USEC       after the last frame a worker keeps polling its rings and TAP
                         for USEC microseconds (kicks off) before it sleeps: lower
                         latency, no kicks while traffic flows, a CPU spinning meanwhile
                         (default 0: event-driven, idle costs nothing; at most ${MAX_BUSY_POLL_US})
  --announce rarp|guest  who announces a live-migrated guest: rarp (default): QEMU
                         asks this back-end to broadcast a RARP from the guest's MAC;
                         guest: offer VIRTIO_NET_F_GUEST_ANNOUNCE, the guest sends its
                         own gratuitous ARP / unsolicited NA (docs/announce.md)
  --print-capabilities   print the back-end's capabilities as JSON and exit
  --help                 this text

Environment: VHOST_USER_NET_LOG=debug|info|warn|error (default info).
`;

function takeValue(argv: string[], i: number, flag: string): string {
  const value = argv[i + 1];
  if (value === undefined || value.startsWith('--')) throw new UsageError(`${flag} needs a value`);
  return value;
}

function parseInteger(text: string, flag: string, min: number, max: number): number {
  if (!/^\d+$/.test(text)) throw new UsageError(`${flag}: '${text}' is not a whole number`);
  const n = Number(text);
  if (n < min || n > max) throw new UsageError(`${flag}: ${n} is outside ${min}..${max}`);
  return n;
}

function parseGroup(text: string, lookup: (name: string) => number | undefined): number {
  if (/^\d+$/.test(text)) return parseInteger(text, '--socket-group', 0, MAX_ID);
  const gid = lookup(text);
  if (gid === undefined) throw new UsageError(`--socket-group: no group named '${text}'`);
  return gid;
}

/**
 * `SPEC[,vlan=N][,mac=MAC][,ip=ADDR]…` (options in any order, each once but `ip`; `allowed` says
 * which `flag` takes): an 802.1Q access VLAN (1..4094; 0, the default, is the untagged segment)
 * and port security: a MAC the port is locked to, and IPv4/IPv6 addresses (which need the MAC).
 */
export function splitPortOptions(text: string, flag: string, allowed: readonly ('vlan' | 'mac' | 'ip')[]): { body: string; vlan: number; security?: PortSecurity } {
  let body = text;
  let vlan: number | undefined;
  let lockedMac: MacAddress | undefined;
  const ips: string[] = [];
  for (let match; (match = /^(.*),(vlan|mac|ip)=([^,]*)$/.exec(body)); body = match[1]) {
    const [, , key, setting] = match;
    if (!allowed.includes(key as 'vlan' | 'mac' | 'ip')) throw new UsageError(`${flag}: ,${key}= is not an option of ${flag} (it takes ${allowed.map((a) => `,${a}=`).join(' ')})`);
    if ((key === 'vlan' && vlan !== undefined) || (key === 'mac' && lockedMac)) throw new UsageError(`${flag}: ,${key}= is given twice`);
    try {
      if (key === 'vlan') vlan = parseInteger(setting, `${flag} vlan`, 1, 4094);
      else if (key === 'mac') lockedMac = parseMac(setting);
      else {
        const ip = parseLockedIp(setting);
        if (ips.includes(ip)) throw new UsageError(`${flag}: ,ip=${setting} is given twice`);
        ips.unshift(ip); // options are taken from the end: keep the order they were written in
      }
    } catch (error) {
      throw error instanceof UsageError ? error : new UsageError(`${flag} ${key}: ${(error as Error).message}`);
    }
  }
  if (ips.length > 0 && !lockedMac) throw new UsageError(`${flag}: ,ip= needs ,mac= too (IP port security checks ARP and neighbour discovery against the port's MAC)`);
  return { body, vlan: vlan ?? 0, ...(lockedMac && { security: withPortSecurity(lockedMac, ips) }) };
}

function parseUidList(text: string): number[] {
  return text.split(',').map((uid) => parseInteger(uid.trim(), '--allow-uid', 0, MAX_ID));
}

/**
 * parseArgs() - the command line to a command
 * @lookupGroup: resolves --socket-group names (tests pass their own)
 */
export function parseArgs(argv: string[], lookupGroup: (name: string) => number | undefined = lookupGroupId): CliCommand {
  if (argv[0] === 'ctl') return { mode: 'ctl', argv: argv.slice(1) };
  const opts: Partial<BackendOptions> & { client: boolean; queuePairs: number; socketMode: number; allowUids: number[]; ports: SwitchPortOption[]; uplinks: { spec: string; vlan: number }[]; dhcp: string; announce: Announce; busyPollUs: number } = {
    ports: [],
    uplinks: [],
    dhcp: DEFAULT_DHCP_CIDR,
    client: false,
    queuePairs: 1,
    socketMode: 0o600,
    allowUids: defaultAllowUids(),
    announce: 'rarp',
    busyPollUs: 0,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = () => {
      if (inline !== undefined) return inline;
      const v = takeValue(argv, i, flag);
      i++;
      return v;
    };
    switch (flag) {
      case '--help':
      case '-h':
        return { mode: 'help' };
      case '--print-capabilities':
        return { mode: 'print-capabilities' };
      case '--socket-path':
        opts.socketPath = value();
        break;
      case '--fd':
        opts.listenFd = parseInteger(value(), '--fd', 0, 1 << 20);
        break;
      case '--client':
        opts.client = true;
        break;
      case '--tap':
        opts.tap = value();
        break;
      case '--queues':
        opts.queuePairs = parseInteger(value(), '--queues', 1, MAX_QUEUE_PAIRS);
        break;
      case '--mac':
        try {
          opts.mac = parseMac(value());
        } catch (error) {
          throw new UsageError(`--mac: ${(error as Error).message}`);
        }
        break;
      case '--mtu':
        opts.mtu = parseInteger(value(), '--mtu', MIN_MTU, MAX_MTU);
        break;
      case '--socket-mode': {
        const text = value();
        if (!/^0?[0-7]{3}$/.test(text)) throw new UsageError(`--socket-mode: '${text}' is not an octal mode like 0600`);
        opts.socketMode = parseInt(text, 8);
        break;
      }
      case '--socket-group':
        opts.socketGroup = parseGroup(value(), lookupGroup);
        break;
      case '--allow-uid':
        opts.allowUids = parseUidList(value());
        break;
      case '--port': {
        const { body, vlan, security } = splitPortOptions(value(), '--port', ['vlan', 'mac', 'ip']);
        const match = /^([A-Za-z0-9_.-]{1,64})=(.+)$/.exec(body);
        if (!match) throw new UsageError(`--port: '${body}' is not NAME=PATH (NAME: letters, digits, _ . -)`);
        if (opts.ports.some((p) => p.name === match[1])) throw new UsageError(`--port: the name '${match[1]}' is used twice`);
        opts.ports.push({ name: match[1], path: match[2], vlan, ...(security && { security }) });
        break;
      }
      case '--uplink': {
        const { body, vlan } = splitPortOptions(value(), '--uplink', ['vlan']);
        if (!/^(tap:.+|stream:unix:.+|stream:tcp:.+:\d+)$/.test(body)) throw new UsageError(`--uplink: '${body}' is not tap:NAME, stream:unix:PATH or stream:tcp:HOST:PORT`);
        opts.uplinks.push({ spec: body, vlan });
        break;
      }
      case '--dhcp': {
        const text = value();
        if (text !== 'off' && !/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/.test(text)) throw new UsageError(`--dhcp: '${text}' is not a subnet like 10.0.2.0/24, or off`);
        opts.dhcp = text;
        break;
      }
      case '--dhcp-leases-per-port':
        opts.dhcpLeasesPerPort = parseInteger(value(), '--dhcp-leases-per-port', 0, MAX_LEASES_PER_PORT);
        break;
      case '--busy-poll':
        opts.busyPollUs = parseInteger(value(), '--busy-poll', 0, MAX_BUSY_POLL_US);
        break;
      case '--announce': {
        const who = value();
        if (who !== 'rarp' && who !== 'guest') throw new UsageError(`--announce must be rarp or guest, not "${who}"`);
        opts.announce = who;
        break;
      }
      case '--control':
        opts.controlPath = value();
        break;
      default:
        throw new UsageError(`unknown option '${arg}' (see --help)`);
    }
  }
  const switchMode = opts.tap === undefined;
  if (switchMode) {
    if (opts.client) throw new UsageError('--client is for the TAP back-end (--tap); the switch listens');
    if (opts.queuePairs !== 1) throw new UsageError('--queues is for the TAP back-end (--tap); switch ports have one queue pair');
    if (opts.socketPath === undefined && opts.listenFd === undefined) opts.socketPath = defaultSocketPath();
    opts.controlPath ??= defaultControlPath();
  } else {
    if (opts.ports.length || opts.uplinks.length) throw new UsageError('--port and --uplink are for the switch (without --tap)');
    if (opts.dhcpLeasesPerPort !== undefined) throw new UsageError('--dhcp-leases-per-port is for the switch (without --tap)');
    if (opts.socketPath === undefined && opts.listenFd === undefined) throw new UsageError('--socket-path PATH or --fd N is required with --tap');
    opts.controlPath ??= '';
  }
  if (opts.socketPath !== undefined && opts.listenFd !== undefined) throw new UsageError('--socket-path and --fd exclude each other');
  if (opts.client && opts.socketPath === undefined) throw new UsageError('--client needs --socket-path');
  if (opts.socketGroup !== undefined && (opts.client || opts.listenFd !== undefined)) {
    throw new UsageError('--socket-group applies to a socket this back-end creates (not with --client or --fd)');
  }
  return { ...opts, mode: 'run' } as BackendOptions;
}
