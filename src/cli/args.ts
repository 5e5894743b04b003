/**
 * Command-line parsing. Option spellings follow the vhost-user spec's "Back-end program conventions"
 * (--socket-path, --fd, --print-capabilities) and are part of the interface: scripts depend on them.
 */
import { parseMac, type MacAddress } from '../device/mac.ts';

export interface BackendOptions {
  mode: 'run';
  /** Listen (server) or connect (client) here; undefined with --fd. */
  socketPath?: string;
  /** An inherited, already listening UNIX socket. */
  listenFd?: number;
  /** Connect to a front-end that listens, retrying until it appears. */
  client: boolean;
  tap: string;
  queuePairs: number;
  mac?: MacAddress;
  mtu?: number;
  socketMode: number;
}

export type CliCommand = BackendOptions | { mode: 'help' } | { mode: 'print-capabilities' };

export class UsageError extends Error {
  readonly code = 'VU_ERR_USAGE';
}

export const MAX_QUEUE_PAIRS = 16;
export const MIN_MTU = 68;
export const MAX_MTU = 65535;

export const USAGE = `Usage: vhost-user-net --socket-path PATH --tap NAME [options]

A vhost-user back-end for virtio-net: serves a QEMU (or DPDK virtio-user) guest's
network device and moves its frames to a TAP device.

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

export function parseArgs(argv: string[]): CliCommand {
  const opts: Partial<BackendOptions> & { client: boolean; queuePairs: number; socketMode: number } = {
    client: false,
    queuePairs: 1,
    socketMode: 0o600,
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
        opts.mac = parseMac(value());
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
      default:
        throw new UsageError(`unknown option '${arg}' (see --help)`);
    }
  }
  if (opts.socketPath === undefined && opts.listenFd === undefined) throw new UsageError('--socket-path PATH or --fd N is required');
  if (opts.socketPath !== undefined && opts.listenFd !== undefined) throw new UsageError('--socket-path and --fd exclude each other');
  if (opts.client && opts.socketPath === undefined) throw new UsageError('--client needs --socket-path');
  if (opts.tap === undefined) throw new UsageError('--tap NAME is required (the userspace switch mode is not available yet)');
  return { ...opts, mode: 'run' } as BackendOptions;
}
