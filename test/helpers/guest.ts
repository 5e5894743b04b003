// A real Linux guest under QEMU (TCG) for the real-peer tests: boots the image of
// test/guest/build-image.sh with the netdev given by the caller (QEMU's tap today, vhost-user with
// our back-end), and runs shell commands in it through the serial command agent.

import { AgentChannel, GuestError, type CommandResult } from './guest-agent.ts';
import { guestCrashLine } from './guest-crash.ts';
import { ensureGuestImage } from './guest-image.ts';
import { describeExit, spawnLogged, type LoggedProcess, type Teardown } from './proc.ts';
import { qemuGuestArgs } from './qemu-args.ts';

export { GuestError, type CommandResult } from './guest-agent.ts';
export { parseIperf3Json, parsePing, type Iperf3Figures, type PingFigures } from './guest-figures.ts';

export interface GuestOptions {
  /** Names the log file (.test-artifacts/logs/<name>.<pid>.<n>.log: QEMU's stderr and the console). */
  name: string;
  /** The netdev and what it needs, e.g. ['-netdev', 'tap,id=n0,ifname=vt-1-1,script=no,downscript=no,vhost=off']. */
  netdevArgs: string[];
  /** The `-device` value, e.g. 'virtio-net-pci,netdev=n0,mac=52:54:00:…' (vhost-user under TCG: add vectors=0). */
  deviceArgs: string;
  /** Guest RAM, also the size of the shared memfd backing it; default 256. */
  memoryMiB?: number;
  /** vCPUs; default 1. */
  cpus?: number;
  /** QEMU's `-cpu` model; default 'max' (use a migratable one, e.g. 'qemu64', to live-migrate). */
  cpuModel?: string;
  /** `-accel tcg,thread=single`: for a guest that live-migrates (see QemuGuestConfig). */
  singleThreadedTcg?: boolean;
  /** eth0's address with prefix length, e.g. '10.77.1.2/24' (kernel command line `vu.ip=`). */
  guestIp?: string;
  /** More kernel command line words, e.g. ['vu.mtu=9000', 'vu.debug=1']. */
  extraKernelArgs?: string[];
  /** More QEMU arguments, e.g. ['-qmp', 'unix:…,server=on,wait=off', '-incoming', 'unix:…']. */
  extraQemuArgs?: string[];
  /** When given (ava's `t`), QEMU is killed when the test ends, also when it fails. */
  teardown?: Teardown;
}

/** Default time for the guest to come up: ~2 s alone, much more on a loaded 2-core machine. */
const READY_TIMEOUT_MS = 120_000;
const COMMAND_TIMEOUT_MS = 30_000;
const SHUTDOWN_TIMEOUT_MS = 20_000;

export class Guest {
  private readonly agent: AgentChannel;

  constructor(
    readonly name: string,
    readonly qemu: LoggedProcess,
  ) {
    this.agent = new AgentChannel((line) => qemu.write(`${line}\n`));
    this.agent.feed(qemu.tail(Number.MAX_SAFE_INTEGER)); // output that came before this listener
    qemu.onOutput((text) => this.agent.feed(text));
    void qemu.exited.then((status) => {
      // The crash report gets a line of its own: the tail quoted below may start after it.
      const crash = guestCrashLine(qemu.tail(Number.MAX_SAFE_INTEGER));
      const crashed = crash ? `the guest crashed: ${crash}\n` : '';
      this.agent.fail(new GuestError('VU_GUEST_EXITED', `guest ${name}: QEMU exited (${describeExit(status)}); log ${qemu.logPath}:\n${crashed}${qemu.tail(2000)}`));
    });
  }

  /** The log file with QEMU's stderr and the guest console. */
  get logPath(): string {
    return this.qemu.logPath;
  }

  /** Resolves once the guest has booted and its command agent listens. */
  async ready(timeoutMs = READY_TIMEOUT_MS): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new GuestError('VU_GUEST_TIMEOUT', `guest ${this.name} not ready within ${timeoutMs} ms; log ${this.logPath}:\n${this.qemu.tail(2000)}`)),
        timeoutMs,
      );
    });
    try {
      await Promise.race([this.agent.ready, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * This QEMU was started with `-incoming` and `source`'s guest has been live-migrated into it:
   * the command agent (already running in the guest) is now reached through this QEMU's console.
   * Call once the migration completed and before any command; `source` must be idle.
   */
  continueFrom(source: Guest): void {
    this.agent.resume(source.agent.sequence);
  }

  /** Runs `command` with `sh -c` in the guest (one line, stdin /dev/null); stdout and stderr interleaved. */
  async run(command: string, timeoutMs = COMMAND_TIMEOUT_MS): Promise<CommandResult> {
    try {
      return await this.agent.run(command, timeoutMs);
    } catch (error) {
      // A guest that stopped answering usually said why on its console (a kernel BUG, a panic).
      if (error instanceof GuestError && error.code === 'VU_GUEST_TIMEOUT') {
        throw new GuestError('VU_GUEST_TIMEOUT', `${error.message}; guest ${this.name}, log ${this.logPath}:\n${this.qemu.tail(2000)}`, error.command, error.partialOutput);
      }
      throw error;
    }
  }

  /** Like run(), but throws unless the command exits 0; returns its output. */
  async mustRun(command: string, timeoutMs = COMMAND_TIMEOUT_MS): Promise<string> {
    const result = await this.run(command, timeoutMs);
    if (result.code !== 0) {
      throw new Error(`guest ${this.name}: \`${command}\` exited ${result.code}:\n${result.output}`);
    }
    return result.output;
  }

  /** Powers the guest off (`poweroff -f`) and waits for QEMU to exit; kills it if it does not. */
  async shutdown(timeoutMs = SHUTDOWN_TIMEOUT_MS): Promise<void> {
    if (this.qemu.exitStatus) return;
    this.agent.post('poweroff -f');
    let timer: NodeJS.Timeout | undefined;
    const exitedInTime = await Promise.race([
      this.qemu.exited.then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (!exitedInTime) await this.qemu.stop();
  }

  /** Stops QEMU at once (SIGTERM, then SIGKILL). */
  async kill(): Promise<void> {
    await this.qemu.stop();
  }
}

/** Starts QEMU with the test guest; await `guest.ready()` before running commands. */
export async function bootGuest(options: GuestOptions): Promise<Guest> {
  const image = await ensureGuestImage();
  const kernelArgs = [...(options.guestIp ? [`vu.ip=${options.guestIp}`] : []), ...(options.extraKernelArgs ?? [])];
  const args = qemuGuestArgs({
    kernel: image.kernel,
    initrd: image.initrd,
    memoryMiB: options.memoryMiB ?? 256,
    cpus: options.cpus ?? 1,
    cpuModel: options.cpuModel,
    singleThreadedTcg: options.singleThreadedTcg,
    kernelArgs,
    netdevArgs: options.netdevArgs,
    deviceArgs: options.deviceArgs,
  });
  args.push(...(options.extraQemuArgs ?? []));
  const qemu = await spawnLogged('qemu-system-x86_64', args, { name: options.name, stdin: 'pipe', teardown: options.teardown });
  return new Guest(options.name, qemu);
}

let macSeq = 0;

/** A locally administered unicast MAC (52:54:00 is QEMU's prefix) unique within this test process. */
export function guestMac(): string {
  const n = (process.pid * 256 + ++macSeq) & 0xffffff;
  return `52:54:00:${[16, 8, 0].map((shift) => ((n >> shift) & 0xff).toString(16).padStart(2, '0')).join(':')}`;
}
