/**
 * Runs the `vhost-user-net` command as a separate process, as a user would (for the real-peer
 * tests: QEMU and DPDK connect to it over its socket).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnLogged, type LoggedProcess, type Teardown } from './proc.ts';

export const CLI = fileURLToPath(new URL('../../bin/vhost-user-net.js', import.meta.url));

/** A back-end log line saying a queue pair stopped (guest fault or host failure) or a panic. */
export const STOPPED_OR_PANICKED = /guest broke a ring|failure on this host|panick/;

export interface BackendProcess {
  process: LoggedProcess;
  socketPath: string;
}

/** Starts `vhost-user-net --socket-path <tmp> …args` and waits until it listens (or connects, with --client). */
export async function startBackendProcess(t: Teardown, name: string, args: string[], socketPath?: string): Promise<BackendProcess> {
  let path = socketPath;
  if (!path) {
    const dir = mkdtempSync(join(tmpdir(), 'vu-real-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    path = join(dir, 'vhost.sock');
  }
  const proc = await spawnLogged(process.execPath, [CLI, '--socket-path', path, ...args], { name, teardown: t, env: { ...process.env, VHOST_USER_NET_LOG: 'debug' } });
  await proc.waitForOutput(args.includes('--client') ? /waiting for the front-end|front-end connected/ : /listening/, 30_000);
  return { process: proc, socketPath: path };
}

/** The "features negotiated" line the back-end logged, as a list of spec names. */
export function negotiatedFeatureNames(output: string): string[] {
  const lines = [...output.matchAll(/features negotiated features=(\S+)/g)];
  return lines.length ? lines[lines.length - 1][1].split(',') : [];
}
