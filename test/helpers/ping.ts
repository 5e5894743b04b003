/** Ping between a test guest and a host namespace, parsed (busybox ping on both sides). */
import { parsePing, type Guest, type PingFigures } from './guest.ts';
import type { NetNs } from './netns.ts';

export type PingResult = PingFigures & { code: number | null };

/** `count` pings 200 ms apart from the guest. */
export async function pingFromGuest(guest: Guest, address: string, count = 5): Promise<PingResult> {
  const result = await guest.run(`ping -c ${count} -i 0.2 -w 15 ${address}`, 30_000);
  return { ...parsePing(result.output), code: result.code };
}

/** `count` pings 200 ms apart from a network namespace (there is no host ping binary: busybox). */
export async function pingFromNamespace(ns: NetNs, address: string, count = 5): Promise<PingResult> {
  const result = await ns.exec('busybox', ['ping', '-c', String(count), '-i', '0.2', '-w', '15', address], { timeoutMs: 30_000 });
  return { ...parsePing(result.stdout), code: result.code };
}
