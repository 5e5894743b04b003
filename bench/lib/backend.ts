/**
 * This back-end as a benchmark subject: `node bin/vhost-user-net.js …` started under
 * `taskset -c CPU` (taskset execs, so the PID is node's and every thread, including the data
 * plane workers created later, inherits the CPU mask), logging at info level.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, negotiatedFeatureNames } from '../../test/helpers/backend-process.ts';
import { atExit, spawnLogged, type LoggedProcess } from '../../test/helpers/proc.ts';
import type { Scope } from './scope.ts';

export interface BenchBackend {
  process: LoggedProcess;
  /** The command line as started. */
  command: string;
  /** The vhost-user socket front-ends connect to. */
  socketPath: string;
  /** Switch mode: the control socket. */
  controlPath?: string;
  /** The feature names of the latest "features negotiated" line. */
  features(): string[];
  /** Throws if the back-end logged a broken ring or a panic (the figures would not be valid). */
  assertHealthy(): void;
}

/** A private directory for sockets, removed when the scope closes (or the process exits). */
export function socketDir(scope: Scope, prefix = 'vu-bench-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const remove = () => rmSync(dir, { recursive: true, force: true });
  const unregisterAtExit = atExit(remove); // also on SIGINT
  scope.teardown(() => {
    unregisterAtExit();
    remove();
  });
  return dir;
}

async function start(scope: Scope, name: string, cpu: string, args: string[], ready: RegExp): Promise<LoggedProcess> {
  const proc = await spawnLogged('taskset', ['-c', cpu, process.execPath, CLI, ...args], {
    name,
    teardown: scope,
    env: { ...process.env, VHOST_USER_NET_LOG: 'info' },
  });
  await proc.waitForOutput(ready, 30_000);
  return proc;
}

function wrap(proc: LoggedProcess, socketPath: string, controlPath?: string): BenchBackend {
  const output = () => proc.tail(Number.MAX_SAFE_INTEGER);
  return {
    process: proc,
    command: proc.command,
    socketPath,
    controlPath,
    features: () => negotiatedFeatureNames(output()),
    assertHealthy: () => {
      const bad = /.*(?:guest broke a ring|panick|DEVICE_NEEDS_RESET).*/.exec(output());
      if (bad) throw new Error(`back-end reported a fault during the run: ${bad[0]} (log ${proc.logPath})`);
      if (proc.exitStatus) throw new Error(`back-end exited during the run (log ${proc.logPath})`);
    },
  };
}

/** `--busy-poll N` when a budget is given. */
function busyPoll(microseconds: number | undefined): string[] {
  return microseconds ? ['--busy-poll', String(microseconds)] : [];
}

/** The one-guest TAP back-end (`--tap`), pinned to `cpu`. */
export async function startTapBackend(scope: Scope, opts: { cpu: string; tap: string; queues?: number; busyPollUs?: number }): Promise<BenchBackend> {
  const socketPath = join(socketDir(scope), 'vhost.sock');
  const args = ['--socket-path', socketPath, '--tap', opts.tap, '--queues', String(opts.queues ?? 1), ...busyPoll(opts.busyPollUs)];
  return wrap(await start(scope, 'bench-backend-tap', opts.cpu, args, /listening/), socketPath);
}

/**
 * The userspace switch (every front-end on the socket is a port), DHCP off, pinned to `cpu`;
 * `extraArgs` e.g. `--port` options.
 */
export async function startSwitchBackend(scope: Scope, opts: { cpu: string; queues?: number; busyPollUs?: number; extraArgs?: string[] }): Promise<BenchBackend> {
  const dir = socketDir(scope);
  const socketPath = join(dir, 'switch.sock');
  const controlPath = join(dir, 'switch.ctl');
  const args = ['--socket-path', socketPath, '--control', controlPath, '--dhcp', 'off', ...(opts.queues ? ['--queues', String(opts.queues)] : []), ...busyPoll(opts.busyPollUs), ...(opts.extraArgs ?? [])];
  return wrap(await start(scope, 'bench-backend-switch', opts.cpu, args, /switch ready/), socketPath, controlPath);
}
