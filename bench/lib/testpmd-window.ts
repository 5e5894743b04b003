/**
 * Packet rates out of testpmd's periodic "NIC statistics for port N" prints, over a window of its
 * output: every print carries `Rx-pps`/`Tx-pps` that testpmd computed over the preceding period
 * from its own TSC, so a window's rate is the mean of the per-print rates it contains (no clock
 * skew between our reading and testpmd's printing).
 */
import type { Testpmd } from '../../test/helpers/testpmd.ts';

export interface WindowRates {
  /** Mean over the prints in the window of the sum over ports of Rx-pps. */
  rxPps: number;
  /** The same for Tx-pps. */
  txPps: number;
  /** How many complete prints of all ports the window held. */
  prints: number;
}

/** Marks the current end of testpmd's output; pass it to ratesSince() later. */
export function mark(testpmd: Testpmd): number {
  return testpmd.log().length;
}

/** Rates from the prints testpmd made after `from` (a mark()). `ports` = ports per print. */
export function ratesSince(testpmd: Testpmd, from: number, ports: number): WindowRates {
  const text = testpmd.log().slice(from);
  const blocks = [...text.matchAll(/NIC statistics for port (\d+)\s+#+\n([\s\S]*?)\n\s*#{20,}/g)];
  const rx: number[] = [];
  const tx: number[] = [];
  for (const block of blocks) {
    rx.push(Number(/Rx-pps:\s+(\d+)/.exec(block[2])?.[1] ?? Number.NaN));
    tx.push(Number(/Tx-pps:\s+(\d+)/.exec(block[2])?.[1] ?? Number.NaN));
  }
  const prints = Math.floor(blocks.length / ports);
  // The first print in the window may cover time before it (warm-up): drop it when there are more.
  const skip = prints > 1 ? 1 : 0;
  const mean = (values: number[]) => {
    let sum = 0;
    for (let p = skip; p < prints; p++) for (let i = 0; i < ports; i++) sum += values[p * ports + i];
    return prints - skip > 0 ? sum / (prints - skip) : Number.NaN;
  };
  return { rxPps: mean(rx), txPps: mean(tx), prints: prints - skip };
}
