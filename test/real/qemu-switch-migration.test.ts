/**
 * Live migration on the userspace switch: a guest moves between two QEMU processes that are both
 * connected to the same switch socket (each its own switch port), while a second guest on the
 * switch pings it. QEMU sends SEND_RARP to the destination's port once the guest runs there, so
 * the switch moves the guest's MAC-table entry to the new port while the source port still exists
 * (the guest's own replies to the peer would teach it too: the test shows the move and the RARP,
 * not which came first); the peer's pings lose only the switch-over.
 *
 * With `--announce guest` the switch offers GUEST_ANNOUNCE instead: QEMU sends no SEND_RARP and
 * the guest announces itself (gratuitous ARP). That variant runs without the peer's pings, so
 * nothing but the guest's announcement can move the entry.
 */
import test, { type ExecutionContext } from 'ava';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { guestMac } from '../helpers/guest.ts';
import { bootMigratableGuest, migrate, type MigratableGuest } from '../helpers/migratable-guest.ts';
import { retryingQemuGuestCrashes } from '../helpers/migration-retry.ts';
import type { Announce } from '../../src/cli/args.ts';
import { addressOf, bootOnSwitch, ctl, ctlPorts, startSwitch, type SwitchProcess } from '../helpers/switch-process.ts';
import { STOPPED_OR_PANICKED } from '../helpers/backend-process.ts';

interface MacEntry {
  mac: string;
  portId: number;
}

test.before(() => {
  if (process.getuid?.() !== 0) throw new Error('the real-QEMU tests need root');
});

/** A migratable guest on the switch; with `incoming`, a migration destination. */
function startVm(t: ExecutionContext, sw: SwitchProcess, dir: string, name: string, mac: string, incoming?: string): Promise<MigratableGuest> {
  return bootMigratableGuest(t, {
    name,
    netdevArgs: ['-chardev', `socket,id=c0,path=${sw.socketPath}`, '-netdev', 'vhost-user,id=n0,chardev=c0'],
    // vectors=0: QEMU 7.2 under TCG crashes with MSI-X on vhost-user (see DESIGN.md).
    deviceArgs: `virtio-net-pci,netdev=n0,mac=${mac},vectors=0`,
    guestIp: 'dhcp',
    qmpPath: join(dir, `${name}.qmp`),
    incoming,
  });
}

async function portOf(sw: SwitchProcess, mac: string): Promise<number | undefined> {
  return ((await ctl(sw, 'macs')) as MacEntry[]).find((e) => e.mac === mac)?.portId;
}

test.serial('switch: a guest live-migrates between two QEMUs on one switch; its MAC-table entry moves to the new port (RARP sent)', (t) =>
  retryingQemuGuestCrashes(t, () => migrateOnSwitch(t, 'rarp')),
);

test.serial('switch --announce guest: the guest negotiates GUEST_ANNOUNCE and announces itself after migrating; no SEND_RARP', (t) =>
  retryingQemuGuestCrashes(t, () => migrateOnSwitch(t, 'guest')),
);

async function migrateOnSwitch(t: ExecutionContext, announce: Announce): Promise<void> {
  t.timeout(300_000);
  const dir = mkdtempSync(join(tmpdir(), 'vu-swmig-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const sw = await startSwitch(t, ['--announce', announce]);
  const macA = guestMac();
  const peer = await bootOnSwitch(t, sw, 'swmig-peer', guestMac());
  const source = await startVm(t, sw, dir, 'swmig-src', macA);
  await source.guest.ready();
  const ipA = await addressOf(source.guest);
  await peer.mustRun(`ping -c 1 -w 10 ${ipA}`, 20_000);
  const sourcePort = await portOf(sw, macA);
  t.not(sourcePort, undefined, 'the switch learned the guest on its first port');

  const before = new Set((await ctlPorts(sw)).map((p) => p.id));
  const uri = `unix:${join(dir, 'migrate.sock')}`;
  const destination = await startVm(t, sw, dir, 'swmig-dst', macA, uri);
  const destinationPort = (await ctlPorts(sw)).find((p) => p.kind === 'vhost-user' && !before.has(p.id))?.id;
  t.not(destinationPort, undefined, 'the destination QEMU has its own switch port');

  const pinging = announce === 'rarp';
  if (pinging) {
    await peer.mustRun(`rm -f /tmp/ping.out; ping -i 0.1 ${ipA} > /tmp/ping.out 2>&1 &`);
    await sleep(1500);
  }
  const info = await migrate(source, destination, uri);
  // The source QEMU still exists (paused, its port still up): only the RARP can have moved the entry.
  // Each look is a `ctl` process (~0.3 s), so the time below is an upper bound.
  let movedAfterMs = -1;
  let looks = 0;
  const resumed = Date.now();
  while (Date.now() - resumed < 10_000) {
    looks++;
    if ((await portOf(sw, macA)) === destinationPort) {
      movedAfterMs = Date.now() - resumed;
      break;
    }
    await sleep(20);
  }
  destination.guest.continueFrom(source.guest);
  await source.qmp.execute('quit').catch(() => undefined);
  await source.guest.kill();

  const log = () => readFileSync(sw.process.logPath, 'utf8');
  const where = `the MAC entry moved to port ${destinationPort} (it is on ${await portOf(sw, macA)})`;
  if (pinging) {
    await sleep(2000);
    await peer.mustRun('kill %1 2>/dev/null; killall ping 2>/dev/null; true');
    const output = await peer.mustRun('cat /tmp/ping.out');
    const seqs = [...new Set([...output.matchAll(/seq=(\d+)/g)].map((m) => Number(m[1])))].sort((a, b) => a - b);
    const sent = seqs[seqs.length - 1] + 1;
    t.log(
      `migration: total ${info['total-time']} ms, downtime ${info.downtime} ms (QEMU); MAC entry seen on the destination port at look ${looks}, ≤ ${movedAfterMs} ms after RESUME; ` +
        `peer pings lost ${sent - seqs.length} of ${sent}`,
    );
    t.true(movedAfterMs >= 0, where);
    t.regex(log(), /RARP announcement sent/);
    t.true(sent - seqs.length <= 20, `${sent - seqs.length} pings lost`);
  } else {
    t.log(`migration: total ${info['total-time']} ms, downtime ${info.downtime} ms (QEMU); no traffic; MAC entry seen on the destination port at look ${looks}, ≤ ${movedAfterMs} ms after RESUME`);
    t.true(movedAfterMs >= 0, `${where}: the guest's own announcement did it`);
    t.regex(log(), /features negotiated.*GUEST_ANNOUNCE/, 'the guest acked GUEST_ANNOUNCE');
    t.notRegex(log(), /RARP announcement sent/, 'QEMU leaves the announcement to the guest');
  }
  await peer.mustRun(`ping -c 3 -i 0.2 -w 10 ${ipA}`, 20_000);
  await destination.guest.mustRun(`ping -c 3 -i 0.2 -w 10 ${await addressOf(peer)}`, 20_000);
  await Promise.all([destination.guest.shutdown(), peer.shutdown()]);
  t.notRegex(readFileSync(sw.process.logPath, 'utf8'), STOPPED_OR_PANICKED);
}
