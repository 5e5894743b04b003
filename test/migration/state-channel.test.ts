/**
 * The SET_DEVICE_STATE_FD channel on real FIFOs: a state read to end of file, and a front-end that
 * hands over a blocking fd and never writes — the read gives up after the stall time instead of
 * holding a libuv pool thread for good.
 */
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, fstatSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readStateAndClose } from '../../src/migration/state-channel.ts';

function fifo(t: { teardown: (f: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'vu-state-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'fifo');
  execFileSync('mkfifo', [path]);
  return path;
}

test.serial('a state is read to end of file and the fd closed', async (t) => {
  const path = fifo(t);
  const readEnd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  const writeEnd = openSync(path, constants.O_WRONLY);
  const reading = readStateAndClose(readEnd, 1024);
  writeSync(writeEnd, Uint8Array.of(1, 2, 3));
  closeSync(writeEnd);
  t.deepEqual([...(await reading)], [1, 2, 3]);
  t.throws(() => fstatSync(readEnd), { code: 'EBADF' }, 'the channel closed its fd');
});

test.serial('a blocking fd nobody writes into fails after the stall time, and is closed', async (t) => {
  const path = fifo(t);
  // O_RDWR on a FIFO: blocking, and its own writer, so there is neither data nor end of file.
  const fd = openSync(path, constants.O_RDWR);
  const started = Date.now();
  await t.throwsAsync(readStateAndClose(fd, 1024, 300), { message: /no data and no end of file for 300 ms/ });
  t.true(Date.now() - started < 5000);
  t.throws(() => fstatSync(fd), { code: 'EBADF' }, 'the channel closed its fd');
});
