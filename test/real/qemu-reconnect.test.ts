/**
 * Back-end restarts under a running QEMU 7.2 guest (TCG), in both socket directions:
 *  - QEMU listens (`server=on`) and the back-end connects with `--client`;
 *  - the back-end listens and QEMU connects with `reconnect=1` (it retries every second).
 * The back-end is SIGKILLed while a network namespace pings the guest every 100 ms, then started
 * again on the same socket path and TAP; the guest's network must come back without a reboot.
 * QEMU resends the whole set-up on the new connection with SET_VRING_BASE at the used index it
 * read from guest memory (the dead back-end cannot answer GET_VRING_BASE); see docs/reconnect.md.
 *
 * The back-end runs inside the namespace (`ip netns exec`), where its TAP lives, so that the
 * restarted process opens the same TAP by name.
 */
import test, { type ExecutionContext } from 'ava';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { bootGuest, guestMac, type Guest } from '../helpers/guest.ts';
import { NetNs, privateSubnet, uniqueName, type Subnet } from '../helpers/netns.ts';
import { mustRun, type LoggedProcess } from '../helpers/proc.ts';
import { CLI, STOPPED_OR_PANICKED } from '../helpers/backend-process.ts';

const PING_INTERVAL_MS = 100;
const RESTARTS = 3;
/** A reply slower than this waited in a queue during the restart (a normal one takes ~1 ms). */
const LATE_REPLY_MS = 200;
/** Replies already on their way to the namespace when the back-end dies may still arrive just after. */
const IN_FLIGHT_MS = 20;

type Direction = 'qemu-server' | 'qemu-client';

test.before(() => {
  if (process.getuid?.() !== 0) throw new Error('the real-QEMU tests need root (TAP devices, network namespaces)');
});

/** Starts the back-end in `ns` on `tap`; resolves once it listens (or, as client, is connected or trying). */
async function startBackend(t: ExecutionContext, ns: NetNs, name: string, tap: string, socketPath: string, direction: Direction): Promise<LoggedProcess> {
  const client = direction === 'qemu-server' ? ['--client'] : [];
  const proc = await ns.spawn('env', ['VHOST_USER_NET_LOG=debug', process.execPath, CLI, '--socket-path', socketPath, '--tap', tap, ...client], name, t);
  await proc.waitForOutput(client.length ? /waiting for the front-end|front-end connected/ : /listening/, 30_000);
  return proc;
}

/** Replies of a running `busybox ping`, each with the time it was seen. */
class PingWatch {
  readonly replies: { seq: number; at: number; rttMs: number }[] = [];

  constructor(readonly ping: LoggedProcess) {
    let partial = '';
    ping.onOutput((text) => {
      const lines = (partial + text).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        const m = /seq=(\d+) ttl=\d+ time=([\d.]+) ms/.exec(line);
        if (m) this.replies.push({ seq: Number(m[1]), at: Date.now(), rttMs: Number(m[2]) });
      }
    });
  }

  /** Resolves with the first reply seen after `since`. */
  async firstReplyAfter(since: number, timeoutMs: number): Promise<{ seq: number; at: number; rttMs: number }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.replies.find((r) => r.at > since);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no ping reply within ${timeoutMs} ms of the restart`);
      await sleep(20);
    }
  }

  /**
   * Lost replies among the sequence numbers sent so far, the longest run of them, and the replies
   * that came late (a request queued in the TAP while no back-end served the guest).
   */
  losses(): { lost: number; sent: number; longestGap: number; late: number } {
    const seqs = [...new Set(this.replies.map((r) => r.seq))].sort((a, b) => a - b);
    const sent = seqs[seqs.length - 1] + 1;
    let longestGap = 0;
    for (let k = 1; k < seqs.length; k++) longestGap = Math.max(longestGap, seqs[k] - seqs[k - 1] - 1);
    const late = this.replies.filter((r) => r.rttMs > LATE_REPLY_MS).length;
    return { lost: sent - seqs.length, sent, longestGap, late };
  }
}

async function restartUnderTraffic(t: ExecutionContext, direction: Direction): Promise<void> {
  t.timeout(300_000);
  const label = direction === 'qemu-server' ? 'rc-srv' : 'rc-cli';
  const dir = mkdtempSync(join(tmpdir(), 'vu-reconnect-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const socketPath = join(dir, 'vhost.sock');
  const subnet: Subnet = privateSubnet();
  const ns = await NetNs.create(t);
  const tap = uniqueName('vt');
  await mustRun('ip', ['-n', ns.name, 'tuntap', 'add', 'dev', tap, 'mode', 'tap']);
  await ns.configure(tap, subnet.hostCidr);

  const chardev = direction === 'qemu-server' ? `socket,id=c0,path=${socketPath},server=on,wait=off` : `socket,id=c0,path=${socketPath},reconnect=1`;
  let backend: LoggedProcess | undefined;
  // QEMU connects to a listening back-end; a listening QEMU must exist before the back-end connects
  // (it waits for the back-end before it starts the guest).
  if (direction === 'qemu-client') backend = await startBackend(t, ns, `${label}-backend-0`, tap, socketPath, direction);
  const guest: Guest = await bootGuest({
    name: `${label}-vm`,
    netdevArgs: ['-chardev', chardev, '-netdev', 'vhost-user,id=n0,chardev=c0'],
    // vectors=0: QEMU 7.2 under TCG crashes with MSI-X on vhost-user (see DESIGN.md).
    deviceArgs: `virtio-net-pci,netdev=n0,mac=${guestMac()},vectors=0`,
    guestIp: subnet.guestCidr,
    teardown: t,
  });
  // The client back-end retries until QEMU's socket exists.
  if (direction === 'qemu-server') backend = await startBackend(t, ns, `${label}-backend-0`, tap, socketPath, direction);
  await guest.ready();
  await guest.mustRun(`ping -c 1 -w 10 ${subnet.hostIp}`, 20_000);

  const carrierChanges = async () => Number((await guest.mustRun('cat /sys/class/net/eth0/carrier_changes')).trim());
  const carrierBefore = await carrierChanges();
  const ping = new PingWatch(await ns.spawn('busybox', ['ping', '-i', String(PING_INTERVAL_MS / 1000), subnet.guestIp], `${label}-ping`, t));
  await ping.firstReplyAfter(0, 10_000);
  await sleep(1000);

  const gaps: number[] = [];
  const logs: string[] = [];
  for (let i = 1; i <= RESTARTS; i++) {
    const old = backend!;
    const killedAt = Date.now();
    process.kill(old.pid, 'SIGKILL');
    await old.exited;
    logs.push(old.logPath);
    const lastBefore = ping.replies[ping.replies.length - 1];
    backend = await startBackend(t, ns, `${label}-backend-${i}`, tap, socketPath, direction);
    await backend.waitForOutput(/link up: rings enabled/, 30_000);
    const back = await ping.firstReplyAfter(killedAt + IN_FLIGHT_MS, 30_000);
    // The silence: from the last reply before the kill to the first one after it.
    gaps.push(back.at - lastBefore.at);
    t.log(`restart ${i}: first reply ${back.at - killedAt} ms after the SIGKILL (seq ${back.seq}, rtt ${back.rttMs} ms); silence ${back.at - lastBefore.at} ms`);
    await sleep(2000);
  }
  await sleep(1000);
  const { lost, sent, longestGap, late } = ping.losses();
  await ping.ping.stop();
  logs.push(backend!.logPath);
  t.log(`${direction}: ${RESTARTS} restarts, pings lost ${lost} of ${sent} (longest run ${longestGap} × ${PING_INTERVAL_MS} ms), ${late} answered late (> ${LATE_REPLY_MS} ms); silences ${gaps.join(', ')} ms`);

  // The guest was never rebooted: the same kernel still answers, and reaches the host.
  await guest.mustRun(`ping -c 3 -i 0.2 -w 10 ${subnet.hostIp}`, 20_000);
  // QEMU sets the link down while the back-end is gone and up again on reconnect (VIRTIO_NET_S_LINK_UP).
  t.log(`guest eth0 carrier changes during the restarts: ${(await carrierChanges()) - carrierBefore}`);
  const uptime = Number((await guest.mustRun('cut -d. -f1 /proc/uptime')).trim());
  t.true(uptime >= (RESTARTS * 3), `guest uptime ${uptime} s: not rebooted`);
  const resumed = logs.slice(1).map((p) => readFileSync(p, 'utf8'));
  for (const text of resumed) {
    t.regex(text, /front-end connected/);
    t.notRegex(text, STOPPED_OR_PANICKED);
  }
  const redone = resumed.flatMap((text) => text.match(/base \d+ differs from the driver's used index \d+/g) ?? []);
  t.log(`rings resumed with in-flight chains redone: ${redone.length ? redone.join('; ') : 'none'}`);
  t.true(lost <= RESTARTS * 100, `${lost} pings lost`);
  await guest.shutdown();
}

test.serial('reconnect: QEMU listens (server=on), the back-end (--client) is SIGKILLed and restarted; the guest keeps its network', (t) =>
  restartUnderTraffic(t, 'qemu-server'),
);

test.serial('reconnect: the back-end listens, QEMU reconnects (reconnect=1) after a SIGKILL and restart; the guest keeps its network', (t) =>
  restartUnderTraffic(t, 'qemu-client'),
);
