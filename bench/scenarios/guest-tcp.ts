/**
 * Scenario 3 — guest TCP through a TAP: the test guest (QEMU 7.2, TCG) runs iperf3 against a
 * server behind the TAP (its host end in a network namespace), both directions, and pings it.
 *   ours:      -netdev vhost-user → this back-end (--tap)
 *   reference: QEMU's built-in -netdev tap (vnet_hdr, vhost=off: /dev/vhost-net does not exist)
 * Same guest image, same virtio-net-pci device (vectors=0 in both: vhost-user under TCG needs
 * INTx, see DESIGN.md), QEMU pinned to GUEST_CPU and this back-end to SUBJECT_CPU.
 */
import { bootGuest, guestMac, parseIperf3Json, parsePing, type Guest } from '../../test/helpers/guest.ts';
import { ensureGuestImage } from '../../test/helpers/guest-image.ts';
import { createTap, NetNs, privateSubnet, uniqueName } from '../../test/helpers/netns.ts';
import { mustRun } from '../../test/helpers/proc.ts';
import { startTapBackend, type BenchBackend } from '../lib/backend.ts';
import { wakeRoundTripUs } from '../lib/cpu-placement.ts';
import { affinityText, BUSY_POLL_US, SUBJECT_CPU } from '../lib/dpdk.ts';
import type { BenchOptions } from '../lib/options.ts';
import { CpuWindow, threadCpuSeconds } from '../lib/procfs.ts';
import type { Subject } from '../lib/results.ts';
import type { RunOutcome, Scenario } from '../lib/scenario.ts';
import type { Scope } from '../lib/scope.ts';

const GUEST_CPU = 0;
const PING_COUNT = 50;
/** QEMU's TCG vCPU threads, named with `-name …,debug-threads=on` (qemu-args.ts): `CPU <n>/TCG`,
 * or `ALL CPUs/TCG` with one TCG thread. */
const VCPU_THREAD = /^(CPU \d+|ALL CPUs)\/TCG$/;

interface Setup {
  guest: Guest;
  ns: NetNs;
  hostIp: string;
  backend?: BenchBackend;
}

async function bootPinned(scope: Scope, name: string, netdevArgs: string[], device: string, guestCidr: string): Promise<Guest> {
  const guest = await bootGuest({ name, netdevArgs, deviceArgs: device, guestIp: guestCidr, teardown: scope });
  await mustRun('taskset', ['-a', '-p', '-c', String(GUEST_CPU), String(guest.qemu.pid)]);
  await guest.ready();
  return guest;
}

async function setUp(scope: Scope, subject: Subject, busyPollUs?: number): Promise<Setup> {
  const subnet = privateSubnet();
  const tap = await createTap(scope, uniqueName('bq'));
  const device = `virtio-net-pci,netdev=n0,mac=${guestMac()},vectors=0`;
  let backend: BenchBackend | undefined;
  let guest: Guest;
  if (subject === 'ours') {
    backend = await startTapBackend(scope, { cpu: String(SUBJECT_CPU), tap, busyPollUs });
    guest = await bootPinned(scope, 'bench-guest-vu', ['-chardev', `socket,id=c0,path=${backend.socketPath}`, '-netdev', 'vhost-user,id=n0,chardev=c0,queues=1'], device, subnet.guestCidr);
  } else {
    guest = await bootPinned(scope, 'bench-guest-tap', ['-netdev', `tap,id=n0,ifname=${tap},script=no,downscript=no,vhost=off`], device, subnet.guestCidr);
  }
  const ns = await NetNs.create(scope);
  await ns.moveLink(tap);
  await ns.configure(tap, subnet.hostCidr);
  return { guest, ns, hostIp: subnet.hostIp, backend };
}

async function runOnce(scope: Scope, subject: Subject, opts: BenchOptions, busyPollUs?: number): Promise<RunOutcome> {
  const { guest, ns, hostIp, backend } = await setUp(scope, subject, busyPollUs);
  const server = await ns.spawn('iperf3', ['-s', '-B', hostIp, '--forceflush'], 'bench-iperf3-server', scope);
  await server.waitForOutput(/Server listening/, 10_000);
  // Warm-up: ARP and the first TCP connection outside the measured runs.
  await guest.mustRun(`ping -c 2 -w 10 ${hostIp}`, 30_000);
  const seconds = Math.max(1, Math.round(opts.seconds));
  const timeout = (seconds + 60) * 1000;
  const cpu = backend ? new CpuWindow(backend.process.pid, guest.qemu.pid, [server.pid]) : new CpuWindow(guest.qemu.pid, undefined, [server.pid]);
  const vcpuFrom = { atMs: performance.now(), seconds: threadCpuSeconds(guest.qemu.pid, VCPU_THREAD) };
  const send = parseIperf3Json(await guest.mustRun(`iperf3 -c ${hostIp} -t ${seconds} -J`, timeout));
  const receive = parseIperf3Json(await guest.mustRun(`iperf3 -c ${hostIp} -t ${seconds} -J -R`, timeout));
  const cpuFigures = cpu.end();
  const vcpuCpu = (threadCpuSeconds(guest.qemu.pid, VCPU_THREAD) - vcpuFrom.seconds) / ((performance.now() - vcpuFrom.atMs) / 1000);
  if (!(vcpuCpu > 0)) throw new Error(`no CPU time found on QEMU's vCPU threads (${VCPU_THREAD}): are its threads named?`);
  const ping = parsePing((await guest.run(`ping -c ${PING_COUNT} -i 0.1 -w 30 ${hostIp}`, 60_000)).output);
  // What the ping's hops between threads cost on this machine, measured with the guest idle.
  const wakeCrossCpuUs = wakeRoundTripUs(GUEST_CPU, SUBJECT_CPU);
  const wakeSameCpuUs = wakeRoundTripUs(GUEST_CPU, GUEST_CPU);
  const figures: Record<string, number> = {
    guestToHostBps: send.bitsPerSecond,
    hostToGuestBps: receive.bitsPerSecond,
    pingRttMs: ping.avgMs ?? Number.NaN,
    pingRttMedianMs: ping.medianMs ?? Number.NaN,
    qemuCpu: backend ? cpuFigures.generatorCpu : cpuFigures.cpuShare,
    vcpuCpu,
    backendCpu: backend ? cpuFigures.cpuShare : 0,
    otherCpu: cpuFigures.otherCpu,
    wakeCrossCpuUs,
    wakeSameCpuUs,
  };
  await guest.shutdown();
  backend?.assertHealthy();
  return {
    figures,
    commands: [...(backend ? [backend.command] : []), guest.qemu.command, `iperf3 -c ${hostIp} -t ${seconds} -J [-R]`, `ping -c ${PING_COUNT} -i 0.1 ${hostIp}`],
    features: backend ? { backend: backend.features() } : { qemu: 'built-in tap netdev, vnet_hdr on, vhost=off' },
    placement: {
      qemu: `taskset -a -p -c ${GUEST_CPU}; threads ${affinityText(guest.qemu.pid)}`,
      ...(backend ? { backend: `taskset -c ${SUBJECT_CPU}; threads ${affinityText(backend.process.pid)}` } : {}),
      iperf3Server: 'unpinned, in the TAP’s network namespace',
    },
    logs: [guest.logPath, ...(backend ? [backend.process.logPath] : [])],
  };
}

export const guestTcp: Scenario = {
  info: {
    name: 'guest-tcp',
    title: 'Guest TCP through a TAP (QEMU TCG guest iperf3 to a peer behind the TAP)',
    reference: 'QEMU 7.2 built-in -netdev tap (vnet_hdr, vhost=off)',
    referenceShort: 'QEMU -netdev tap',
    metrics: [
      { key: 'guestToHostBps', label: 'iperf3 guest→host', unit: 'bit/s', higherIsBetter: true },
      { key: 'hostToGuestBps', label: 'iperf3 host→guest', unit: 'bit/s', higherIsBetter: true },
      { key: 'pingRttMs', label: `ping RTT guest→host (avg of ${PING_COUNT})`, unit: 'ms', higherIsBetter: false },
      { key: 'pingRttMedianMs', label: `ping RTT guest→host (median of ${PING_COUNT}: one slow reply under TCG does not move it)`, unit: 'ms', higherIsBetter: false },
      { key: 'qemuCpu', label: 'QEMU CPU during iperf3', unit: 'CPU', higherIsBetter: false },
      { key: 'vcpuCpu', label: "QEMU's vCPU thread during iperf3: the guest itself", unit: 'CPU', higherIsBetter: true, context: true },
      { key: 'backendCpu', label: 'back-end CPU during iperf3 (0 for the built-in tap)', unit: 'CPU', higherIsBetter: false },
      { key: 'otherCpu', label: 'CPU used by other processes meanwhile (noise)', unit: 'CPU', higherIsBetter: false, context: true },
      { key: 'wakeCrossCpuUs', label: `idle wake-up round trip CPU ${GUEST_CPU}↔${SUBJECT_CPU} (after the ping)`, unit: 'µs', higherIsBetter: false, context: true },
      { key: 'wakeSameCpuUs', label: `idle wake-up round trip on CPU ${GUEST_CPU} alone (after the ping)`, unit: 'µs', higherIsBetter: false, context: true },
    ],
    notes: [
      `QEMU (all threads) on CPU ${GUEST_CPU}, this back-end on CPU ${SUBJECT_CPU}; the guest is TCG-emulated, so its own CPU is the usual limit.`,
      `The vCPU thread's share of CPU ${GUEST_CPU} bounds what any back-end can gain here: taking all of QEMU's other work (its built-in tap included) off that CPU speeds a CPU-bound guest up by at most 1 / (the reference's vCPU share).`,
      'One iperf3 run of --seconds each way per run; ping after iperf3.',
      `Ping: this back-end adds two cross-CPU wake-ups of a sleeping thread to every round trip (the guest's kick wakes it on CPU ${SUBJECT_CPU}; its call wakes QEMU on CPU ${GUEST_CPU}), where QEMU's built-in tap switches threads on CPU ${GUEST_CPU}. The two wake-up rows (\`cpu-probe --wake\`: two sleeping threads woken in turn, 10 ms apart) show what those cost on this machine: on a virtual machine the host wakes a sleeping vCPU.`,
      `"tcp busy-poll": this back-end with --busy-poll ${BUSY_POLL_US} (the reference is the same QEMU tap).`,
    ],
  },
  cases: () => ['tcp', 'tcp busy-poll'],
  async prepare() {
    if (process.getuid?.() !== 0) throw new Error('guest-tcp needs root (TAP, namespaces)');
    await ensureGuestImage();
  },
  run(scope, subject, caseName, opts) {
    return runOnce(scope, subject, opts, caseName === 'tcp busy-poll' ? BUSY_POLL_US : undefined);
  },
};
