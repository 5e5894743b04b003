/**
 * Runs fuzz cases until a time budget is spent. Each case has its own seed (derived from the run
 * seed and its index), so a failure is reported as one seed that replays that case alone.
 */
import { caseSeed, formatSeed } from './rng.ts';

export interface CampaignResult {
  target: string;
  cases: number;
  /** The first failing case, if any. */
  failure?: { seed: bigint; error: unknown };
}

/** A fuzz case: throws (anything) when the code under test misbehaved. */
export type FuzzCase = (seed: bigint) => void | Promise<void>;

/**
 * runCampaign() - runs cases of `fuzzCase` until `budgetMs` is spent or one fails
 * @onCase: told each case's seed before it runs (a crash cannot report it afterwards)
 */
export async function runCampaign(target: string, fuzzCase: FuzzCase, runSeed: bigint, budgetMs: number, onCase?: (seed: bigint) => void): Promise<CampaignResult> {
  const deadline = Date.now() + budgetMs;
  let cases = 0;
  while (Date.now() < deadline) {
    const seed = caseSeed(runSeed, cases);
    onCase?.(seed);
    try {
      await fuzzCase(seed);
    } catch (error) {
      return { target, cases: cases + 1, failure: { seed, error } };
    }
    cases++;
  }
  return { target, cases };
}

/** One line (plus the error's stack) that says how to replay a failed case. */
export function describeFailure(result: CampaignResult): string {
  if (!result.failure) return `${result.target}: ${result.cases} cases, no failure`;
  const { seed, error } = result.failure;
  const detail = error instanceof Error ? (error.stack ?? error.message) : String(error);
  return `${result.target}: case ${result.cases} FAILED, seed ${formatSeed(seed)} (replay: npm run fuzz -- --only ${result.target} --case ${formatSeed(seed)})\n${detail}`;
}
