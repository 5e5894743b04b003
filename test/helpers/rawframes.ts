/**
 * Host-side frame injection and counting on a network interface, with no extra software:
 * counters come from the kernel (`ip -json -statistics link show`), frames are sent by a tiny
 * python3 AF_PACKET script (send-frames.py next to this file). Both work inside a network
 * namespace (`netns`), through `ip -netns` / `ip netns exec`.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { mustRun } from './proc.ts';

const SEND_FRAMES_SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'send-frames.py');

/** EtherType of the frames sendFrames() builds by default: IEEE 802 "local experimental 1". */
export const EXPERIMENTAL_ETHERTYPE = 0x88b5;

/** The kernel's 64-bit counters of one interface. */
export interface IfStats {
  rxPackets: number;
  rxBytes: number;
  rxErrors: number;
  rxDropped: number;
  txPackets: number;
  txBytes: number;
  txErrors: number;
  txDropped: number;
}

/** Prefixes a command with `ip netns exec NS` when a namespace is given. */
function inNetns(netns: string | undefined, command: string[]): [string, string[]] {
  return netns === undefined ? [command[0], command.slice(1)] : ['ip', ['netns', 'exec', netns, ...command]];
}

/** Reads the counters of `ifname` (in namespace `netns` if given). */
export async function readIfStats(ifname: string, netns?: string): Promise<IfStats> {
  const [file, args] = inNetns(netns, ['ip', '-json', '-statistics', 'link', 'show', 'dev', ifname]);
  const stdout = await mustRun(file, args);
  const [link] = JSON.parse(stdout) as Array<{ stats64?: { rx: Record<string, number>; tx: Record<string, number> } }>;
  const stats = link?.stats64;
  if (!stats) throw new Error(`ip link show ${ifname}${netns ? ` (netns ${netns})` : ''} printed no stats64`);
  return {
    rxPackets: stats.rx.packets,
    rxBytes: stats.rx.bytes,
    rxErrors: stats.rx.errors,
    rxDropped: stats.rx.dropped,
    txPackets: stats.tx.packets,
    txBytes: stats.tx.bytes,
    txErrors: stats.tx.errors,
    txDropped: stats.tx.dropped,
  };
}

/** Polls readIfStats until `predicate` holds; rejects with the last counters on timeout. */
export async function waitForIfStats(
  ifname: string,
  predicate: (stats: IfStats) => boolean,
  { netns, timeoutMs = 10_000, intervalMs = 100 }: { netns?: string; timeoutMs?: number; intervalMs?: number } = {},
): Promise<IfStats> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const stats = await readIfStats(ifname, netns);
    if (predicate(stats)) return stats;
    if (Date.now() >= deadline) {
      throw new Error(`interface ${ifname}${netns ? ` (netns ${netns})` : ''}: condition not met after ${timeoutMs} ms, last counters ${JSON.stringify(stats)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

export interface SendFramesOptions {
  /** Interface to send out of; it must be up. */
  ifname: string;
  count: number;
  netns?: string;
  /** Default ff:ff:ff:ff:ff:ff. */
  dstMac?: string;
  /** Default 02:00:00:00:00:01 (locally administered). */
  srcMac?: string;
  /** Default EXPERIMENTAL_ETHERTYPE. */
  etherType?: number;
  /** Bytes per frame handed to the kernel, header included, FCS excluded (default 64, minimum 22). */
  frameSize?: number;
}

/**
 * Sends `count` raw Ethernet frames out of an interface. Each payload starts with "VUNT" and a
 * 32-bit big-endian sequence number. Resolves with the number of frames the kernel accepted
 * (always `count` unless it throws).
 */
export async function sendFrames(o: SendFramesOptions): Promise<number> {
  const command = [
    'python3', SEND_FRAMES_SCRIPT,
    '--ifname', o.ifname,
    '--count', String(o.count),
    ...(o.dstMac ? ['--dst', o.dstMac] : []),
    ...(o.srcMac ? ['--src', o.srcMac] : []),
    ...(o.etherType !== undefined ? ['--ethertype', String(o.etherType)] : []),
    ...(o.frameSize !== undefined ? ['--size', String(o.frameSize)] : []),
  ];
  const [file, args] = inNetns(o.netns, command);
  const stdout = await mustRun(file, args, { timeoutMs: 60_000 });
  return Number(stdout.trim());
}
