/**
 * The userspace switch back-end in this process (SwitchMode: every connection to its socket
 * becomes a new guest port), on a temporary socket, for end-to-end tests with test front-ends.
 * Its log is kept in memory; `connectionLog(port)` picks the lines of the connection that was
 * given switch port `port`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../src/log.ts';
import { SwitchMode } from '../../src/switch/switch-mode.ts';
import type { BackendOptions } from '../../src/cli/args.ts';
import type { Teardown } from './proc.ts';

export interface InProcessSwitch {
  switchMode: SwitchMode;
  socketPath: string;
  logLines: string[];
  /** Log lines of the connection that was given switch port `port` (empty if none was). */
  connectionLog(port: string): string[];
  /** Names of the switch's ports now. */
  portNames(): string[];
}

/** `options` override the defaults (no DHCP server, no uplinks, no named ports). */
export async function startInProcessSwitch(t: Teardown & { log: (...v: unknown[]) => void }, options: Partial<BackendOptions> = {}): Promise<InProcessSwitch> {
  const dir = mkdtempSync(join(tmpdir(), 'vu-switch-e2e-'));
  const socketPath = join(dir, 'switch.sock');
  const logLines: string[] = [];
  const log = createLogger('switch', 'debug', (line) => logLines.push(line));
  const switchMode = new SwitchMode(
    { mode: 'run', socketPath, client: false, queuePairs: 1, ports: [], uplinks: [], dhcp: 'off', controlPath: '', socketMode: 0o600, allowUids: [process.getuid!(), 0], announce: 'rarp', busyPollUs: 0, ...options },
    log,
  );
  await switchMode.start();
  t.teardown(async () => {
    await switchMode.stop();
    rmSync(dir, { recursive: true, force: true });
    t.log(logLines.filter((line) => !/ debug /.test(line)).join('').trimEnd());
  });
  const connectionLog = (port: string) => {
    const opened = logLines.find((line) => line.includes('front-end connected') && line.includes(` port=${port}`));
    const scope = opened && /(switch\/conn\d+):/.exec(opened)?.[1];
    return scope ? logLines.filter((line) => line.includes(` ${scope}: `)) : [];
  };
  return { switchMode, socketPath, logLines, connectionLog, portNames: () => switchMode.ports().map((p) => p.name) };
}

/** Polls `condition` until it holds; fails (not a sleep-based assertion) after `ms`. */
export async function waitUntil(condition: () => boolean, what: () => string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}
