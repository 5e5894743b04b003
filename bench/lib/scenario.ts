/**
 * What a scenario is to the runner: its description (metrics, reference) and a function that
 * performs one run of one subject for one case and returns its figures. The runner does the
 * rounds, the alternation and the error handling (a failed run is recorded with its error and
 * the comparison uses the runs that succeeded).
 */
import type { BenchOptions } from './options.ts';
import type { RunRecord, ScenarioInfo, Subject } from './results.ts';
import type { Scope } from './scope.ts';

/** A run's result before the runner adds scenario/case/subject/round. */
export type RunOutcome = Omit<RunRecord, 'scenario' | 'case' | 'subject' | 'round'>;

export interface Scenario {
  info: ScenarioInfo;
  /** The cases (e.g. frame sizes) every round measures. */
  cases(options: BenchOptions): string[];
  /** Checks prerequisites once (DPDK installed, hugepages, guest image). */
  prepare?(options: BenchOptions): Promise<void>;
  /** One run of `subject` on `caseName`; everything it starts is registered on `scope`. */
  run?(scope: Scope, subject: Subject, caseName: string, options: BenchOptions): Promise<RunOutcome>;
  /**
   * Instead of `run`: a scenario without a reference (scaling) that produces several records per
   * run does its own rounds.
   */
  runAll?(options: BenchOptions, record: (r: RunRecord) => void): Promise<void>;
}
