/**
 * The `vhost-user-net` command as a user runs it: --client retries until the front-end listens
 * and reconnects after it goes; --fd serves an inherited socket, also one systemd's socket
 * activation hands over; SIGTERM removes the socket file
 * and exits 0; bad options exit 2 with one clear line; --print-capabilities follows the spec.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as native from '../../src/native.ts';
import { FrontendRequest as R } from '../../src/protocol/requests.ts';
import { CLI } from '../helpers/backend-process.ts';
import { createTap } from '../helpers/netns.ts';
import { run, spawnLogged } from '../helpers/proc.ts';
import { TestFrontend } from '../helpers/test-frontend.ts';

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'vu-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Accepts connections on `path` and hands each fd to the queue. */
function listen(t: { teardown(fn: () => void): void }, path: string) {
  const fds: number[] = [];
  const listenFd = native.listenUnix(path, 0o600);
  const acceptor = new native.Acceptor(listenFd, (fd) => fds.push(fd));
  t.teardown(() => {
    acceptor.close();
    native.closeFd(listenFd);
  });
  return {
    async next(timeoutMs = 15_000): Promise<number> {
      const deadline = Date.now() + timeoutMs;
      while (fds.length === 0 && Date.now() < deadline) await sleep(20);
      const fd = fds.shift();
      if (fd === undefined) throw new Error('the back-end did not connect');
      return fd;
    },
  };
}

test.serial('--client waits for the front-end, is served, and reconnects after the front-end leaves', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'qemu.sock');
  const tap = await createTap(t);
  const backend = await spawnLogged(process.execPath, [CLI, '--client', '--socket-path', path, '--tap', tap], { name: 'cli-client', teardown: t });
  await backend.waitForOutput(/waiting for the front-end/, 20_000);
  const front = listen(t, path); // QEMU with server=on appears only now
  const first = TestFrontend.adopt(await front.next());
  const features = await first.get({ request: R.GET_FEATURES });
  t.true(features > 0n);
  await first.negotiate();
  first.close();
  const second = TestFrontend.adopt(await front.next());
  t.teardown(() => second.close());
  t.is(await second.get({ request: R.GET_FEATURES }), features, 'served again after a reconnect');
  await backend.stop();
  t.is(backend.exitStatus?.code, 0);
});

test.serial('--fd serves an inherited listening socket; SIGTERM exits 0 and leaves the socket to its owner', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'inherited.sock');
  const tap = await createTap(t);
  const listenFd = native.listenUnix(path, 0o600);
  t.teardown(() => native.closeFd(listenFd));
  const child = spawn(process.execPath, [CLI, '--fd', '3', '--tap', tap], { stdio: ['ignore', 'pipe', 'pipe', listenFd] });
  let output = '';
  child.stderr!.on('data', (d) => (output += d));
  t.teardown(() => child.kill('SIGKILL'));
  const deadline = Date.now() + 20_000;
  while (!/serving on an inherited socket/.test(output) && Date.now() < deadline) await sleep(20);
  const fe = TestFrontend.connect(path);
  t.true((await fe.get({ request: R.GET_FEATURES })) > 0n);
  fe.close();
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  t.is(await exited, 0);
  t.true(existsSync(path), 'an inherited socket is not ours to remove');
});

test.serial('systemd socket activation (docs/systemd.md): the first connection starts the back-end on the socket as fd 3 and is served', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'activated.sock');
  const tap = await createTap(t);
  // systemd-socket-activate does what a .socket unit does: it listens, and on the first connection
  // execs the service with the listening socket as fd 3 (LISTEN_FDS=1).
  const backend = await spawnLogged('systemd-socket-activate', ['-l', path, '--', process.execPath, CLI, '--fd', '3', '--tap', tap], { name: 'cli-socket-activation', teardown: t });
  await backend.waitForOutput(/Listening on/, 20_000);
  await sleep(200);
  t.notRegex(backend.tail(), /serving on an inherited socket/, 'nothing runs before a front-end connects');
  const fe = TestFrontend.connect(path);
  t.teardown(() => fe.close());
  await fe.negotiate();
  t.regex(backend.tail(), /serving on an inherited socket/);
  await backend.stop();
  t.is(backend.exitStatus?.code, 0, 'SIGTERM (systemctl stop) exits 0');
  t.true(existsSync(path), 'the socket stays: it belongs to the socket unit');
});

test.serial('--socket-path: SIGTERM stops the workers, removes the socket file and exits 0', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'vhost.sock');
  const tap = await createTap(t);
  const backend = await spawnLogged(process.execPath, [CLI, '--socket-path', path, '--tap', tap], { name: 'cli-sigterm', teardown: t });
  await backend.waitForOutput(/listening/, 20_000);
  const fe = TestFrontend.connect(path);
  await fe.negotiate();
  await backend.stop();
  fe.close();
  t.is(backend.exitStatus?.code, 0);
  t.false(existsSync(path));
});

for (const [args, message] of [
  [['--tap', 't0'], /--socket-path PATH or --fd N is required with --tap/],
  [['--socket-path', '/tmp/x', '--tap', 't0', '--queues', '0'], /--queues: 0 is outside/],
  [['--socket-path', '/tmp/x', '--tap', 't0', '--mac', '01:00:00:00:00:01'], /multicast/],
  [['--bogus'], /unknown option '--bogus'/],
  [['--uplink', 'udp:1.2.3.4'], /--uplink: 'udp:1.2.3.4' is not/],
  [['--dhcp', '10.0.0.0'], /--dhcp: '10.0.0.0' is not a subnet/],
] as const) {
  test(`bad options exit 2 with one clear line: ${args.join(' ')}`, async (t) => {
    const result = await run(process.execPath, [CLI, ...args]);
    t.is(result.code, 2);
    t.regex(result.stderr, message);
    t.is(result.stderr.trim().split('\n').length, 1);
  });
}

test('a socket path in a missing directory exits 1 with one line that names the directory', async (t) => {
  const dir = tempDir(t);
  const result = await run(process.execPath, [CLI, '--socket-path', join(dir, 'missing', 'vhost.sock'), '--control', join(dir, 'switch.ctl'), '--dhcp', 'off']);
  t.is(result.code, 1);
  t.true(result.stderr.includes(`cannot listen on ${join(dir, 'missing', 'vhost.sock')}`), result.stderr);
  t.true(result.stderr.includes(`the directory ${join(dir, 'missing')} does not exist`), result.stderr);
  t.is(result.stderr.trim().split('\n').length, 1);
});

test('--print-capabilities prints the device type as JSON', async (t) => {
  const result = await run(process.execPath, [CLI, '--print-capabilities']);
  t.is(result.code, 0);
  t.deepEqual(JSON.parse(result.stdout), { type: 'net' });
});
