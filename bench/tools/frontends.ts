/**
 * A separate process holding N test front-ends (test/helpers/test-frontend.ts: memfd guest memory,
 * eventfds, the full vhost-user negotiation with every ring started and enabled) connected to one
 * vhost-user socket, for the idle and scaling scenarios. It never kicks: the guests are idle.
 *
 *   tsx bench/tools/frontends.ts --socket PATH[,PATH…] --count N [--queue-pairs Q] [--checkpoints 1,2,4]
 *
 * With several sockets, port i connects to socket (i-1) mod their number (DPDK's net_vhost has one
 * socket per port).
 *
 * Prints `port <i> <milliseconds>` after each port negotiated; at each checkpoint count it prints
 * `checkpoint <i>` and waits for a line on stdin before connecting more; `connected <N>` at the
 * end, then holds the connections until stdin closes or SIGTERM.
 */
import { createInterface } from 'node:readline';
import { TestFrontend } from '../../test/helpers/test-frontend.ts';

function arg(name: string, fallback?: string): string {
  const i = process.argv.indexOf(name);
  const value = i >= 0 ? process.argv[i + 1] : fallback;
  if (value === undefined) throw new Error(`${name} is required`);
  return value;
}

const socketPaths = arg('--socket').split(',');
const count = Number(arg('--count'));
const queuePairs = Number(arg('--queue-pairs', '1'));
const checkpoints = new Set(arg('--checkpoints', '').split(',').filter(Boolean).map(Number));

const lines = createInterface({ input: process.stdin });
const pending: Array<() => void> = [];
lines.on('line', () => pending.shift()?.());
const nextLine = () => new Promise<void>((resolve) => pending.push(resolve));

const frontends: TestFrontend[] = [];
const closeAll = () => {
  for (const fe of frontends) fe.close();
  process.exit(0);
};
process.on('SIGTERM', closeAll);
lines.on('close', closeAll);

for (let i = 1; i <= count; i++) {
  const started = performance.now();
  const fe = TestFrontend.connect(socketPaths[(i - 1) % socketPaths.length], { queuePairs, memoryBytes: 2 << 20, queueSize: 256 });
  frontends.push(fe);
  await fe.negotiate();
  console.log(`port ${i} ${(performance.now() - started).toFixed(3)}`);
  if (checkpoints.has(i)) {
    console.log(`checkpoint ${i}`);
    await nextLine();
  }
}
console.log(`connected ${count}`);
