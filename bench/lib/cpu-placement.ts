/**
 * Where the host runs this machine's two vCPUs, read from the cache-line round trip between them
 * (`crates/cpu-probe`). On these 2-vCPU machines the host moves the two vCPUs from minute to
 * minute between cores that share a cache and cores that do not (see `placementsOf`), and packet
 * rates follow (about 2× apart), because every frame crosses between the generator's CPU and the
 * subject's. The runner probes before and after every run, and a round
 * counts as like-for-like only when all four probes of its two runs saw the same placement.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunRecord } from './results.ts';
import { median } from './stats.ts';

const repoDir = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Figure keys the runner adds to every run it probes. */
export const PROBE_BEFORE = 'crossCpuNsBefore';
export const PROBE_AFTER = 'crossCpuNsAfter';

/** Probes less than this factor apart (sorted) belong to one placement. */
const SAME_PLACEMENT_SPREAD = 1.4;

let probePath: string | undefined;

/** Builds the probe (once per invocation; cargo makes it a no-op when it is up to date). */
export function ensureProbe(): string {
  if (probePath === undefined) {
    execFileSync(join(repoDir, 'scripts/cargo-env.sh'), ['cargo', 'build', '--release', '--quiet', '-p', 'cpu-probe'], { cwd: repoDir, stdio: 'inherit' });
    const targetDir = process.env.CARGO_TARGET_DIR ? resolve(repoDir, process.env.CARGO_TARGET_DIR) : join(repoDir, 'target');
    probePath = join(targetDir, 'release', 'cpu-probe');
    if (!existsSync(probePath)) throw new Error(`cargo built cpu-probe but ${probePath} is missing`);
  }
  return probePath;
}

/** The median cache-line round trip between CPUs `a` and `b`, in ns. */
export function crossCpuRoundTripNs(a: number, b: number): number {
  const out = execFileSync(ensureProbe(), [String(a), String(b)], { encoding: 'utf8', timeout: 15_000 });
  const ns = (JSON.parse(out) as { roundTripNs: number }).roundTripNs;
  if (!(ns > 0)) throw new Error(`cpu-probe printed no round trip: ${out}`);
  return ns;
}

/**
 * The median round trip, in µs, of two wake-ups of a sleeping thread: one on CPU `b` woken from
 * CPU `a`, then one on `a` woken from `b` (`a` = `b`: both threads on one CPU). A back-end on
 * another CPU than QEMU adds two cross-CPU wake-ups to each ping (the guest's kick, then its
 * call into QEMU), and on a virtual machine the host wakes a sleeping vCPU slowly.
 */
export function wakeRoundTripUs(a: number, b: number): number {
  const out = execFileSync(ensureProbe(), ['--wake', String(a), String(b)], { encoding: 'utf8', timeout: 15_000 });
  const us = (JSON.parse(out) as { wakeRoundTripUs: number }).wakeRoundTripUs;
  if (!(us > 0)) throw new Error(`cpu-probe --wake printed no round trip: ${out}`);
  return us;
}

/** One placement of the vCPUs seen in an invocation: the range of its probes, and their median. */
export interface Placement {
  lowNs: number;
  highNs: number;
  typicalNs: number;
}

/**
 * The placements the invocation's probes fall into: sorted, a probe more than
 * SAME_PLACEMENT_SPREAD times the one before starts a new placement. Seen here: ~30 ns (probably
 * the two hyperthreads of one core), ~65 ns (cores sharing a cache) and ~300 ns (cores that do not).
 */
export function placementsOf(runs: RunRecord[]): Placement[] {
  const probes = runs.flatMap((r) => [r.figures[PROBE_BEFORE], r.figures[PROBE_AFTER]]).filter((v) => v > 0).sort((a, b) => a - b);
  const groups: number[][] = [];
  for (const ns of probes) {
    const last = groups.at(-1);
    if (last !== undefined && ns <= last[last.length - 1] * SAME_PLACEMENT_SPREAD) last.push(ns);
    else groups.push([ns]);
  }
  return groups.map((g) => ({ lowNs: g[0], highNs: g[g.length - 1], typicalNs: Math.round(median(g)) }));
}

/** The placement a run kept throughout (both its probes in it), or undefined if it moved or was not probed. */
export function steadyPlacement(run: RunRecord, placements: Placement[]): Placement | undefined {
  const of = (ns: number) => placements.find((p) => ns >= p.lowNs && ns <= p.highNs);
  const before = of(run.figures[PROBE_BEFORE]);
  return before !== undefined && before === of(run.figures[PROBE_AFTER]) ? before : undefined;
}
