/**
 * DPDK pieces shared by the packet-rate scenarios: CPU placement on a 2-CPU machine, the frame
 * sizes, and the feature names a testpmd logged for a socket.
 *
 * Placement: the traffic generator (net_virtio_user testpmd) forwards on CPU 0; the subject under
 * test (this back-end pinned with taskset, or the reference testpmd's forwarding lcore) runs on
 * CPU 1. testpmd's main lcore only prints statistics; it sits on the other CPU.
 */
import { describeFeatures, VhostUserProtocolFeature, VirtioFeature } from '../../src/protocol/index.ts';
import type { Testpmd } from '../../test/helpers/testpmd.ts';
import { threadAffinity } from './procfs.ts';

export const GENERATOR_CPU = 0;
export const SUBJECT_CPU = 1;

/**
 * Frame sizes as named in the report (on the wire, with the 4-byte FCS) and the bytes testpmd
 * generates (`--txpkts`, no FCS).
 */
export const FRAME_CASES: Record<string, number> = { '64B': 60, '1518B': 1514 };

/** The busy-poll budget of the "busy-poll" cases (`--busy-poll`, µs). */
export const BUSY_POLL_US = 50;

/** Mbufs for a generator/reference: enough for 2 ports × (rx ring + tx ring + bursts) at 2 KiB each. */
export const BENCH_MBUFS = 8192;

/** Feature words a testpmd logged for `socketPath` (net_vhost) or its virtio_user ports, as names. */
export function testpmdFeatureNames(testpmd: Testpmd, socketPath?: string): Record<string, string[]> {
  const f = testpmd.negotiatedFeatures(socketPath);
  const out: Record<string, string[]> = {};
  if (f.sent !== undefined) out.virtio = describeFeatures(f.sent, VirtioFeature);
  if (f.protocol !== undefined) out.protocol = describeFeatures(f.protocol, VhostUserProtocolFeature);
  return out;
}

/** "pid 123 (lcores 0,1 main 0): threads 123→0-1, 130→1" — where a testpmd's threads may run. */
export function testpmdPlacement(testpmd: Testpmd): string {
  const o = testpmd.options;
  return `lcores ${o.lcores}, main lcore ${o.mainLcore}; threads ${affinityText(testpmd.pid)}`;
}

export function affinityText(pid: number): string {
  try {
    return Object.entries(threadAffinity(pid))
      .map(([tid, cpus]) => `${tid}→${cpus}`)
      .join(' ');
  } catch (error) {
    return `unavailable: ${(error as Error).message}`;
  }
}
