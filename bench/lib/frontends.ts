/** Starts bench/tools/frontends.ts (N idle test front-ends in their own process) on a socket. */
import { fileURLToPath } from 'node:url';
import { spawnLogged, type LoggedProcess } from '../../test/helpers/proc.ts';
import type { Scope } from './scope.ts';

const TOOL = fileURLToPath(new URL('../tools/frontends.ts', import.meta.url));

export interface FrontendsOptions {
  /** One socket (a switch) or one per port (DPDK net_vhost). */
  socketPaths: string[];
  count: number;
  queuePairs?: number;
  /** Port counts at which the tool stops and waits for `proceed()`. */
  checkpoints?: number[];
  /** CPU list for taskset (the front-ends' process). */
  cpu: string;
}

export class FrontendsProcess {
  private constructor(readonly process: LoggedProcess, readonly command: string) {}

  static async start(scope: Scope, o: FrontendsOptions): Promise<FrontendsProcess> {
    const args = ['-c', o.cpu, process.execPath, '--import', 'tsx', TOOL, '--socket', o.socketPaths.join(','), '--count', String(o.count), '--queue-pairs', String(o.queuePairs ?? 1)];
    if (o.checkpoints?.length) args.push('--checkpoints', o.checkpoints.join(','));
    const proc = await spawnLogged('taskset', args, { name: 'bench-frontends', stdin: 'pipe', teardown: scope });
    return new FrontendsProcess(proc, proc.command);
  }

  /** Waits until the tool printed `line` (a whole line), e.g. `checkpoint 8` or `connected 8`. */
  async waitFor(line: string, timeoutMs = 120_000): Promise<void> {
    await this.process.waitForOutput(new RegExp(`^${line}$`, 'm'), timeoutMs);
  }

  /** Lets the tool continue after a checkpoint. */
  proceed(): void {
    this.process.write('\n');
  }

  /** Per-port negotiation times (ms) printed so far, by port number. */
  portTimes(): Map<number, number> {
    const times = new Map<number, number>();
    for (const m of this.process.tail(Number.MAX_SAFE_INTEGER).matchAll(/^port (\d+) ([\d.]+)$/gm)) times.set(Number(m[1]), Number(m[2]));
    return times;
  }
}
