import test from 'ava';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawnLogged } from './proc.ts';

test('writing to a child that died is logged, not thrown at the test worker (EPIPE)', async (t) => {
  // The child closes its stdin and lingers: the write hits a pipe with no reader while the child
  // is still there, as when QEMU dies in the middle of a guest command.
  const child = await spawnLogged('sh', ['-c', 'exec 0<&-; sleep 0.5'], { name: 'proc-epipe', stdin: 'pipe', teardown: t });
  await sleep(100);
  child.write('a line for nobody\n');
  await child.exited;
  t.regex(readFileSync(child.logPath, 'utf8'), /writing to stdin failed: .*EPIPE/);
});
