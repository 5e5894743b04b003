/**
 * DPDK `dpdk-testpmd` as a test peer: `net_virtio_user` as a front-end for our back-end,
 * `net_vhost` as the reference back-end, `net_tap` as a host-visible port.
 *
 * One Testpmd = one non-interactive testpmd process that starts forwarding at once and prints
 * port statistics every `statsPeriod` seconds (without `--stats-period` testpmd reads stdin and
 * exits on EOF). `stop()` sends SIGINT, which makes testpmd print its final forward statistics,
 * and parses them. Every process is started with its own `--file-prefix`; its hugepage files and
 * runtime directory are removed when it exits. Output goes to
 * `.test-artifacts/logs/testpmd-<prefix>.<pid>.<n>.log` (via proc.ts).
 *
 * Two testpmds on a 2-CPU machine: give both `lcores: '0,1'` and different `mainLcore`s so that
 * their forwarding cores (all listed lcores except the main one) land on different CPUs.
 */
import { access, constants as fsConstants } from 'node:fs/promises';
import path from 'node:path';
import { assertValidPrefix, cleanupPrefix } from './hugepages.ts';
import { atExit, describeExit, mustRun, spawnLogged, type ExitStatus, type LoggedProcess, type Teardown } from './proc.ts';

const TESTPMD_BINARY = 'dpdk-testpmd';
/** Debian's DPDK 22.11 loads its drivers from here (EAL plugin directory). */
const PMD_DIR = '/usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0';
/**
 * Debian 12 ships `dpdk-testpmd` in `dpdk-dev` (whose `libdpdk-dev` also
 * holds the unversioned driver names the EAL loads from PMD_DIR), not in `dpdk`. The drivers are
 * only *recommended*: with `--no-install-recommends` the mempool ring (needed for any mbuf pool)
 * and the vhost/virtio/tap PMDs must be named explicitly.
 */
const DPDK_PACKAGES = ['dpdk-dev', 'librte-mempool-ring23', 'librte-net-vhost23', 'librte-net-virtio23', 'librte-net-tap23'];
const REQUIRED_PMDS = ['librte_mempool_ring.so', 'librte_net_vhost.so', 'librte_net_virtio.so', 'librte_net_tap.so'];

export type TestpmdErrorCode =
  /** testpmd exited before the awaited condition (bad arguments, no hugepages, peer refused). */
  | 'VU_TESTPMD_EXITED'
  /** Fewer ports than vdevs: a driver failed to probe (e.g. virtio_user found no socket). */
  | 'VU_TESTPMD_PROBE_FAILED'
  /** The awaited log line / condition did not appear in time. */
  | 'VU_TESTPMD_TIMEOUT'
  /** testpmd did not exit within the grace period after SIGINT (it was then SIGKILLed). */
  | 'VU_TESTPMD_STOP_TIMEOUT'
  /** testpmd exited but printed no final forward statistics. */
  | 'VU_TESTPMD_NO_STATS'
  /** dpdk-testpmd or one of its drivers is missing and could not be installed. */
  | 'VU_TESTPMD_NOT_INSTALLED';

/** A failure of a testpmd process; `logTail` holds the last lines it printed. */
export class TestpmdError extends Error {
  constructor(
    readonly code: TestpmdErrorCode,
    message: string,
    readonly prefix?: string,
    readonly logTail?: string,
  ) {
    super(logTail ? `${message}\n--- last testpmd output ---\n${logTail}` : message);
    this.name = 'TestpmdError';
  }
}

export type FwdMode = 'io' | 'txonly' | 'rxonly' | 'mac' | 'flowgen';

// ---------------------------------------------------------------------------------------------
// Virtual device arguments

export interface VirtioUserVdevOptions {
  /** N in `net_virtio_userN` (default 0). */
  index?: number;
  /** vhost-user socket path. */
  path: string;
  /** Queue pairs. */
  queues?: number;
  mrgRxbuf?: boolean;
  packedVq?: boolean;
  /** true: virtio_user listens on `path` and the back-end connects (back-end in client mode). */
  server?: boolean;
  /** virtio_user's default is in_order=1; false makes it use the out-of-order paths. */
  inOrder?: boolean;
  queueSize?: number;
  mac?: string;
}

/** `net_virtio_user<index>,path=…` — the front-end side (plays the guest driver). */
export function virtioUserVdev(o: VirtioUserVdevOptions): string {
  return vdev(`net_virtio_user${o.index ?? 0}`, {
    path: o.path,
    queues: o.queues,
    mrg_rxbuf: flag(o.mrgRxbuf),
    packed_vq: flag(o.packedVq),
    server: flag(o.server),
    in_order: flag(o.inOrder),
    queue_size: o.queueSize,
    mac: o.mac,
  });
}

export interface VhostVdevOptions {
  /** N in `net_vhostN` (default 0). */
  index?: number;
  /** vhost-user socket path. */
  iface: string;
  /** Queue pairs. */
  queues?: number;
  /** true: net_vhost connects to a listening front-end instead of listening itself. */
  client?: boolean;
}

/** `net_vhost<index>,iface=…` — DPDK's reference vhost-user back-end. */
export function vhostVdev(o: VhostVdevOptions): string {
  return vdev(`net_vhost${o.index ?? 0}`, { iface: o.iface, queues: o.queues, client: flag(o.client) });
}

/** `net_tap<index>,iface=NAME` — a TAP device created (and removed on exit) by testpmd. */
export function tapVdev(o: { index?: number; iface: string }): string {
  return vdev(`net_tap${o.index ?? 0}`, { iface: o.iface });
}

function flag(value: boolean | undefined): number | undefined {
  return value === undefined ? undefined : value ? 1 : 0;
}

function vdev(name: string, args: Record<string, string | number | undefined>): string {
  const parts = Object.entries(args)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => {
      if (String(v).includes(',')) throw new Error(`vdev ${name}: ${k}=${v} must not contain ','`);
      return `${k}=${v}`;
    });
  return [name, ...parts].join(',');
}

// ---------------------------------------------------------------------------------------------
// Statistics

/** One port's counters from a periodic "NIC statistics for port N" block (ethdev counters). */
export interface NicStats {
  port: number;
  rxPackets: number;
  rxMissed: number;
  rxBytes: number;
  rxErrors: number;
  rxNombuf: number;
  txPackets: number;
  txErrors: number;
  txBytes: number;
  rxPps: number;
  txPps: number;
}

/** One port's counters from the final "Forward statistics for port N" block (forwarding engine). */
export interface ForwardStats {
  port: number;
  rxPackets: number;
  rxDropped: number;
  rxTotal: number;
  txPackets: number;
  txDropped: number;
  txTotal: number;
}

/**
 * Final statistics of one port. `rxPackets`…`txTotal` are exact (counted by the forwarding
 * engine up to the stop). `txDropped` counts frames the PMD would not take (e.g. the peer's
 * ring was full). The NIC counters (`rxMissed`, `rxErrors`, `rxNombuf`, `rxBytes`, `txErrors`,
 * `txBytes`) come from the last periodic print and can lag by up to `statsPeriod` seconds.
 */
export interface PortStats extends ForwardStats {
  rxMissed: number;
  rxErrors: number;
  rxNombuf: number;
  rxBytes: number;
  txErrors: number;
  txBytes: number;
}

export interface TestpmdResult {
  ports: PortStats[];
  /** null when testpmd was killed by a signal. */
  exitCode: number | null;
  logPath: string;
}

/** "RX-packets: 1  RX-missed: 2" → { rxPackets: 1, rxMissed: 2 }. */
function parseCounters(text: string): Record<string, number> {
  const counters: Record<string, number> = {};
  for (const match of text.matchAll(/([A-Za-z]+(?:-[A-Za-z]+)*):\s+(\d+)/g)) {
    const [first, ...rest] = match[1].split('-');
    const key = first.toLowerCase() + rest.map((w) => w[0].toUpperCase() + w.slice(1).toLowerCase()).join('');
    counters[key] = Number(match[2]);
  }
  return counters;
}

/** The last complete "<title> for port N" block of each port, keyed by port. */
function lastBlocks(output: string, title: string, rule: string): Map<number, Record<string, number>> {
  const blocks = new Map<number, Record<string, number>>();
  const re = new RegExp(`${title} for port (\\d+)\\s+${rule}+\\n([\\s\\S]*?)\\n\\s*${rule}{20,}\\s*\\n`, 'g');
  for (const match of output.matchAll(re)) blocks.set(Number(match[1]), parseCounters(match[2]));
  return blocks;
}

/** Latest periodic NIC statistics of every port found in a testpmd output, by port order. */
export function parseNicStats(output: string): NicStats[] {
  return [...lastBlocks(output, 'NIC statistics', '#')]
    .sort(([a], [b]) => a - b)
    .map(([port, c]) => ({
      port,
      rxPackets: c.rxPackets ?? 0,
      rxMissed: c.rxMissed ?? 0,
      rxBytes: c.rxBytes ?? 0,
      rxErrors: c.rxErrors ?? 0,
      rxNombuf: c.rxNombuf ?? 0,
      txPackets: c.txPackets ?? 0,
      txErrors: c.txErrors ?? 0,
      txBytes: c.txBytes ?? 0,
      rxPps: c.rxPps ?? 0,
      txPps: c.txPps ?? 0,
    }));
}

/** Final forward statistics of every port found in a testpmd output, by port order. */
export function parseForwardStats(output: string): ForwardStats[] {
  return [...lastBlocks(output, 'Forward statistics', '-')]
    .sort(([a], [b]) => a - b)
    .map(([port, c]) => ({
      port,
      rxPackets: c.rxPackets ?? 0,
      rxDropped: c.rxDropped ?? 0,
      rxTotal: c.rxTotal ?? 0,
      txPackets: c.txPackets ?? 0,
      txDropped: c.txDropped ?? 0,
      txTotal: c.txTotal ?? 0,
    }));
}

// ---------------------------------------------------------------------------------------------
// Feature negotiation, as logged by the drivers

/**
 * Feature words found in a testpmd log. Which ones are present depends on the driver:
 * `net_virtio_user` (front-end, needs `pmd.net.virtio.*:debug`, which startTestpmd enables)
 * logs `offered`, `requested`, `acked` and `sent`; `net_vhost` (back-end) logs `sent` and
 * `protocol` at its default level. Name the bits with describeFeatures() from src/protocol.
 */
export interface NegotiatedFeatures {
  /** Front-end: the back-end's GET_FEATURES reply ("host_features before negotiate"). */
  offered?: bigint;
  /** Front-end: what the driver supports ("guest_features before negotiate"). */
  requested?: bigint;
  /** Front-end: offered ∩ requested, what the driver acks ("features after negotiate"). */
  acked?: bigint;
  /** The VHOST_USER_SET_FEATURES value (virtio_user "set features", net_vhost "negotiated Virtio features"). */
  sent?: bigint;
  /** net_vhost: the negotiated vhost-user protocol features (SET_PROTOCOL_FEATURES). */
  protocol?: bigint;
}

/**
 * Extracts the feature words from a testpmd log (the last occurrence of each, i.e. the
 * latest connection). With several vhost-user devices in one process pass `socketPath` to keep
 * only lines tagged with that socket (the untagged virtio_ethdev lines are then ignored).
 */
export function negotiatedFeatures(log: string, socketPath?: string): NegotiatedFeatures {
  const last = (re: RegExp, tagged: boolean): bigint | undefined => {
    let value: bigint | undefined;
    for (const match of log.matchAll(re)) {
      if (socketPath !== undefined && (!tagged || match[1] !== socketPath)) continue;
      value = BigInt(`0x${match[2]}`);
    }
    return value;
  };
  return {
    offered: last(/virtio_ethdev_negotiate_features\(\)()?: host_features before negotiate = ([0-9a-f]+)/gi, false),
    requested: last(/virtio_ethdev_negotiate_features\(\)()?: guest_features before negotiate = ([0-9a-f]+)/gi, false),
    acked: last(/virtio_ethdev_negotiate_features\(\)()?: features after negotiate = ([0-9a-f]+)/gi, false),
    sent:
      last(/virtio_user_dev_set_features\(\): \(([^)]*)\) set features: 0x([0-9a-f]+)/gi, true) ??
      last(/VHOST_CONFIG: \(([^)]*)\) negotiated Virtio features: 0x([0-9a-f]+)/gi, true),
    protocol: last(/VHOST_CONFIG: \(([^)]*)\) negotiated Vhost-user protocol features: 0x([0-9a-f]+)/gi, true),
  };
}

// ---------------------------------------------------------------------------------------------
// Installation

async function findInPath(binary: string): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    const candidate = path.join(dir, binary);
    try {
      await access(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

async function missingPmds(): Promise<string[]> {
  const missing: string[] = [];
  for (const pmd of REQUIRED_PMDS) {
    try {
      await access(path.join(PMD_DIR, pmd));
    } catch {
      missing.push(pmd);
    }
  }
  return missing;
}

/**
 * Makes sure `dpdk-testpmd` and the drivers the tests use are installed, installing Debian's
 * DPDK with apt if not (needs root and apt access). Returns the path of dpdk-testpmd.
 */
export async function ensureDpdk(): Promise<string> {
  let binary = await findInPath(TESTPMD_BINARY);
  if (binary && (await missingPmds()).length === 0) return binary;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  await mustRun('apt-get', ['update'], { env, timeoutMs: 300_000 });
  await mustRun('apt-get', ['install', '-y', '--no-install-recommends', ...DPDK_PACKAGES], { env, timeoutMs: 600_000 });
  binary = await findInPath(TESTPMD_BINARY);
  const missing = await missingPmds();
  if (!binary || missing.length > 0) {
    throw new TestpmdError('VU_TESTPMD_NOT_INSTALLED', `after apt-get install: testpmd=${binary ?? 'missing'} missing drivers=[${missing.join(' ')}]`);
  }
  return binary;
}

// ---------------------------------------------------------------------------------------------
// The process

export interface TestpmdOptions {
  /** `--file-prefix`: unique per concurrently running DPDK process; names the log file too. */
  prefix: string;
  /** EAL `-l` core list, e.g. '0,1'. */
  lcores: string;
  /** `--main-lcore` (default: the first of `lcores`); the other lcores forward. */
  mainLcore?: number;
  /** `--vdev` arguments, in port order (build them with virtioUserVdev / vhostVdev / tapVdev). */
  vdevs: string[];
  fwdMode: FwdMode;
  /** `--txpkts`: segment lengths of generated frames (txonly / flowgen), e.g. [64] or [1514]. */
  txpkts?: number[];
  /** `--burst`: packets per burst (default 32). */
  burst?: number;
  /** `--rxq` / `--txq`: queues per port (default 1). */
  rxq?: number;
  txq?: number;
  /** `--total-num-mbufs` (default 2048: keeps hugepage use small). */
  totalNumMbufs?: number;
  /** `--stats-period` in seconds (default 1). */
  statsPeriod?: number;
  /** More EAL arguments (before `--`), e.g. `--log-level=lib.vhost.*:debug`. */
  extraEalArgs?: string[];
  /** More testpmd arguments (after `--`). */
  extraArgs?: string[];
  /** When given (ava's `t`), testpmd is killed and its files removed when the test ends. */
  teardown?: Teardown;
}

const LOG_TAIL_LINES = 40;

/** Builds the testpmd command line for `options` (exported for logging and tests). */
export function testpmdArgs(options: TestpmdOptions): string[] {
  const lcores = options.lcores.split(',').flatMap((part) => {
    const [lo, hi] = part.split('-').map(Number);
    return hi === undefined ? [lo] : Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);
  });
  const mainLcore = options.mainLcore ?? lcores[0];
  const forwardingCores = lcores.filter((c) => c !== mainLcore).length;
  if (forwardingCores < 1) throw new Error(`lcores ${options.lcores} leave no forwarding core besides main lcore ${mainLcore}`);
  const ealArgs = [
    '-l', options.lcores,
    `--main-lcore=${mainLcore}`,
    '--no-pci',
    '--single-file-segments',
    `--file-prefix=${options.prefix}`,
    ...options.vdevs.flatMap((v) => ['--vdev', v]),
    ...(options.vdevs.some((v) => v.startsWith('net_virtio_user')) ? ['--log-level=pmd.net.virtio.*:debug'] : []),
    ...(options.extraEalArgs ?? []),
  ];
  const appArgs = [
    `--stats-period=${options.statsPeriod ?? 1}`,
    `--forward-mode=${options.fwdMode}`,
    `--total-num-mbufs=${options.totalNumMbufs ?? 2048}`,
    `--nb-cores=${forwardingCores}`,
    ...(options.rxq !== undefined ? [`--rxq=${options.rxq}`] : []),
    ...(options.txq !== undefined ? [`--txq=${options.txq}`] : []),
    ...(options.burst !== undefined ? [`--burst=${options.burst}`] : []),
    ...(options.txpkts !== undefined ? [`--txpkts=${options.txpkts.join(',')}`] : []),
    ...(options.extraArgs ?? []),
  ];
  return [...ealArgs, '--', ...appArgs];
}

/**
 * Starts dpdk-testpmd. Resolves once the process is spawned; await `ready()` for forwarding
 * to have started and `waitForLinkUp()` for a vhost-user connection to be up.
 * Call ensureHugepages() (and ensureDpdk()) first.
 */
export async function startTestpmd(options: TestpmdOptions): Promise<Testpmd> {
  assertValidPrefix(options.prefix);
  const args = testpmdArgs(options);
  cleanupPrefix(options.prefix); // leftovers of an earlier crashed run with this prefix
  // setpriv: testpmd is SIGKILLed if this process dies (no orphan busy-polling a CPU).
  // stdbuf: testpmd's stdout is a pipe here; line buffering makes the periodic stats live.
  // Both exec, so the process's PID is testpmd's own.
  const proc = await spawnLogged('setpriv', ['--pdeathsig', 'KILL', 'stdbuf', '-oL', '-eL', TESTPMD_BINARY, ...args], {
    name: `testpmd-${options.prefix}`,
  });
  const testpmd = new Testpmd(options, args, proc);
  options.teardown?.teardown(() => testpmd.kill());
  return testpmd;
}

type Waiter = { check: () => boolean; resolve: () => void; reject: (error: Error) => void; what: string };

export class Testpmd {
  private output: string;
  private exit?: ExitStatus;
  private readonly waiters = new Set<Waiter>();
  private readonly unregisterAtExit: () => void;

  /** @internal use startTestpmd() */
  constructor(
    readonly options: TestpmdOptions,
    readonly args: string[],
    private readonly proc: LoggedProcess,
  ) {
    // proc.ts SIGKILLs the process at exit (registered first, so that runs first); then this.
    this.unregisterAtExit = atExit(() => cleanupPrefix(options.prefix));
    this.output = proc.tail(Number.MAX_SAFE_INTEGER);
    proc.onOutput((text) => {
      this.output += text;
      this.settleWaiters();
    });
    void proc.exited.then((status) => {
      this.exit = status;
      this.settleWaiters();
    });
  }

  get prefix(): string {
    return this.options.prefix;
  }

  get pid(): number {
    return this.proc.pid;
  }

  get logPath(): string {
    return this.proc.logPath;
  }

  /** Everything testpmd printed so far (stdout and stderr interleaved). */
  log(): string {
    return this.output;
  }

  /** True once the process has exited. */
  hasExited(): boolean {
    return this.exit !== undefined;
  }

  private tail(): string {
    return this.output.split('\n').slice(-LOG_TAIL_LINES).join('\n');
  }

  private signal(signal: NodeJS.Signals): void {
    if (this.exit) return;
    try {
      process.kill(this.pid, signal);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
    }
  }

  private settleWaiters(): void {
    for (const waiter of this.waiters) {
      if (waiter.check()) {
        this.waiters.delete(waiter);
        waiter.resolve();
      } else if (this.exit) {
        this.waiters.delete(waiter);
        waiter.reject(
          new TestpmdError('VU_TESTPMD_EXITED', `testpmd ${this.prefix} exited (${describeExit(this.exit)}) while waiting for ${waiter.what}`, this.prefix, this.tail()),
        );
      }
    }
  }

  /** Resolves when `check()` (re-evaluated on every output chunk) holds; rejects on exit or timeout. */
  waitFor(check: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new TestpmdError('VU_TESTPMD_TIMEOUT', `testpmd ${this.prefix}: no ${what} after ${timeoutMs} ms`, this.prefix, this.tail()));
      }, timeoutMs);
      const waiter: Waiter = {
        check,
        what,
        resolve: () => { clearTimeout(timer); resolve(); },
        reject: (error) => { clearTimeout(timer); reject(error); },
      };
      this.waiters.add(waiter);
      this.settleWaiters();
    });
  }

  /** Waits for a line matching `pattern` in testpmd's output. */
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<void> {
    const stateless = new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, ''));
    return this.waitFor(() => stateless.test(this.output), `output matching ${pattern}`, timeoutMs);
  }

  /**
   * Waits until forwarding has started (ports configured and started, lcores launched).
   * Rejects with VU_TESTPMD_PROBE_FAILED if a vdev did not become a port: testpmd carries on with
   * the ports it has, so a failed probe shows only as a smaller port count.
   */
  async ready(timeoutMs?: number): Promise<void> {
    const started = /^\S+ packet forwarding - ports=(\d+)/m;
    await this.waitForLog(started, timeoutMs);
    const ports = Number(started.exec(this.output)?.[1]);
    if (ports < this.options.vdevs.length) {
      throw new TestpmdError('VU_TESTPMD_PROBE_FAILED', `testpmd ${this.prefix} forwards on ${ports} ports but was given ${this.options.vdevs.length} vdevs`, this.prefix, this.tail());
    }
  }

  /**
   * True if port `port`'s link is up according to the driver's log: net_vhost once the front-end
   * set DRIVER_OK ("virtio is now ready for processing") until "vhost peer closed";
   * net_virtio_user per its last "Port N is up/down"; net_tap once forwarding started.
   */
  linkUp(port = 0): boolean {
    const device = this.options.vdevs[port];
    if (device === undefined) throw new Error(`testpmd ${this.prefix} has no port ${port} (vdevs: ${this.options.vdevs.join(' ')})`);
    const lastState = (up: string, down: string): boolean => this.output.lastIndexOf(up) > this.output.lastIndexOf(down);
    if (device.startsWith('net_vhost')) {
      const iface = /(?:^|,)iface=([^,]*)/.exec(device)?.[1];
      return lastState(`(${iface}) virtio is now ready for processing`, `(${iface}) vhost peer closed`);
    }
    if (device.startsWith('net_virtio_user')) {
      return lastState(`virtio_dev_link_update(): Port ${port} is up`, `virtio_dev_link_update(): Port ${port} is down`);
    }
    return /^\S+ packet forwarding - ports=\d+/m.test(this.output);
  }

  /** Waits until linkUp(port) holds (e.g. the peer connected and finished negotiation). */
  waitForLinkUp(port = 0, timeoutMs?: number): Promise<void> {
    return this.waitFor(() => this.linkUp(port), `link up on port ${port}`, timeoutMs);
  }

  /** The latest periodic NIC statistics of every port (live; updated every statsPeriod). */
  stats(): NicStats[] {
    return parseNicStats(this.output);
  }

  /** Waits until the periodic statistics satisfy `predicate`. */
  waitForStats(predicate: (ports: NicStats[]) => boolean, what = 'statistics condition', timeoutMs?: number): Promise<void> {
    return this.waitFor(() => predicate(this.stats()), what, timeoutMs);
  }

  /** The feature words this testpmd's drivers logged (see negotiatedFeatures()). */
  negotiatedFeatures(socketPath?: string): NegotiatedFeatures {
    return negotiatedFeatures(this.output, socketPath);
  }

  /**
   * Stops testpmd with SIGINT and returns its final statistics. If it does not exit within
   * `graceMs` it is SIGKILLed and VU_TESTPMD_STOP_TIMEOUT is thrown. Hugepage files and the
   * runtime directory are removed in every case.
   */
  async stop(graceMs = 10_000): Promise<TestpmdResult> {
    this.signal('SIGINT');
    const exitedInTime = await Promise.race([this.proc.exited.then(() => true), delay(graceMs).then(() => false)]);
    if (!exitedInTime) this.signal('SIGKILL');
    const status = await this.proc.exited;
    this.cleanup();
    if (!exitedInTime) {
      throw new TestpmdError('VU_TESTPMD_STOP_TIMEOUT', `testpmd ${this.prefix} ignored SIGINT for ${graceMs} ms and was killed`, this.prefix, this.tail());
    }
    const forward = parseForwardStats(this.output);
    if (forward.length === 0) {
      throw new TestpmdError('VU_TESTPMD_NO_STATS', `testpmd ${this.prefix} exited (${describeExit(status)}) without final forward statistics`, this.prefix, this.tail());
    }
    const nic = new Map(this.stats().map((n) => [n.port, n]));
    const ports = forward.map((f) => {
      const n = nic.get(f.port);
      return {
        ...f,
        rxMissed: n?.rxMissed ?? 0,
        rxErrors: n?.rxErrors ?? 0,
        rxNombuf: n?.rxNombuf ?? 0,
        rxBytes: n?.rxBytes ?? 0,
        txErrors: n?.txErrors ?? 0,
        txBytes: n?.txBytes ?? 0,
      };
    });
    return { ports, exitCode: status.code, logPath: this.logPath };
  }

  /** SIGKILLs testpmd (if still running) and removes its files; for teardown paths. Idempotent. */
  async kill(): Promise<void> {
    this.signal('SIGKILL');
    await this.proc.exited;
    this.cleanup();
  }

  private cleanup(): void {
    cleanupPrefix(this.prefix);
    this.unregisterAtExit();
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
