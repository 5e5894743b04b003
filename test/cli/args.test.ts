/** Command-line parsing of the access-control and limit options. */
import test from 'ava';
import { parseArgs, UsageError, type BackendOptions } from '../../src/cli/args.ts';
import { MAX_QUEUE_PAIRS } from '../../src/device/limits.ts';
import { NetDevice } from '../../src/device/net-device.ts';
import { VirtioFeature } from '../../src/protocol/virtio-features.ts';

const BASE = ['--socket-path', '/tmp/x.sock', '--tap', 'tap0'];
const groups: Record<string, number> = { kvm: 106 };
const run = (...extra: string[]) => parseArgs([...BASE, ...extra], (name) => groups[name]) as BackendOptions;

test('defaults: socket mode 0600, no group change, allow list = own uid and root', (t) => {
  const opts = run();
  t.is(opts.socketMode, 0o600);
  t.is(opts.socketGroup, undefined);
  t.true(opts.allowUids.includes(0));
  t.true(opts.allowUids.includes(process.getuid!()));
});

test('--allow-uid takes one uid or a comma-separated list, replacing the default', (t) => {
  t.deepEqual(run('--allow-uid', '1000').allowUids, [1000]);
  t.deepEqual(run('--allow-uid=0,107, 4242').allowUids, [0, 107, 4242]);
});

test('--allow-uid refuses names, negative numbers, empty entries and (uid_t)-1', (t) => {
  for (const bad of ['qemu', '-1', '1000,', '', '4294967295']) {
    t.throws(() => run(`--allow-uid=${bad}`), { instanceOf: UsageError }, bad);
  }
});

test('--socket-group takes a gid or a group name', (t) => {
  t.is(run('--socket-group', '4243').socketGroup, 4243);
  t.is(run('--socket-group', 'kvm', '--socket-mode', '0660').socketGroup, 106);
  t.throws(() => run('--socket-group', 'nosuchgroup'), { instanceOf: UsageError, message: /no group named 'nosuchgroup'/ });
});

test('--socket-group only applies to a socket the back-end creates', (t) => {
  t.throws(() => parseArgs(['--fd', '3', '--tap', 't', '--socket-group', '5']), { instanceOf: UsageError, message: /--socket-group/ });
  t.throws(() => run('--client', '--socket-group', '5'), { instanceOf: UsageError, message: /--socket-group/ });
});

test(`--queues is limited to ${MAX_QUEUE_PAIRS} queue pairs`, (t) => {
  t.is(run('--queues', String(MAX_QUEUE_PAIRS)).queuePairs, MAX_QUEUE_PAIRS);
  t.throws(() => run('--queues', String(MAX_QUEUE_PAIRS + 1)), { instanceOf: UsageError, message: /outside 1\.\.16/ });
  t.throws(() => run('--queues', '0'), { instanceOf: UsageError });
});

test('--announce: rarp by default, guest offers GUEST_ANNOUNCE, anything else is a usage error', (t) => {
  t.is(run().announce, 'rarp');
  t.is(run('--announce', 'guest').announce, 'guest');
  t.is(run('--announce=rarp').announce, 'rarp');
  t.throws(() => run('--announce', 'both'), { instanceOf: UsageError, message: /--announce must be rarp or guest/ });
  const guestAnnounce = 1n << BigInt(VirtioFeature.VIRTIO_NET_F_GUEST_ANNOUNCE);
  const mac = new Uint8Array([2, 0, 0, 0, 0, 1]);
  t.is(new NetDevice({ queuePairs: 1, mac }).offeredFeatures & guestAnnounce, 0n);
  t.is(new NetDevice({ queuePairs: 1, mac, guestAnnounce: true }).offeredFeatures & guestAnnounce, guestAnnounce);
});

test('--busy-poll takes microseconds, 0 (the default) to 1 s', (t) => {
  t.is(run().busyPollUs, 0);
  t.is(run('--busy-poll', '50').busyPollUs, 50);
  for (const bad of ['-1', '1000001', 'fast', '']) t.throws(() => run(`--busy-poll=${bad}`), { instanceOf: UsageError }, bad);
});
