/**
 * `npm run fuzz -- --seconds N [--seed S] [--only TARGET] [--case SEED]`: the long fuzz run.
 * Targets, sharing the time budget: the message decoder, the session state machine on the
 * recording data plane, the session on the real Rust data plane (a TAP of its own: needs root or
 * CAP_NET_ADMIN), and two cargo fuzz tests (release build; compile time not counted): the ring
 * core against hostile drivers (`vring`) and the switch against hostile frames (`switch`).
 *
 * Each target runs in a child process that records the seed of the case it is running, so that a
 * crash (SIGBUS, SIGSEGV on a guard page, an abort in the addon) is reported with the seed of the
 * case that caused it, like an exception is. The run seed is printed first; every failure prints
 * the command that replays it. Exit status: 0 when every target ran clean, 1 otherwise.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describeFailure, runCampaign, type CampaignResult, type FuzzCase } from './campaign.ts';
import { decoderCase } from './decoder-fuzz.ts';
import { NativeSessionFuzzer, recordingSessionCase } from './session-fuzz.ts';
import { formatSeed } from './rng.ts';

const TARGETS = ['decoder', 'session', 'session-native', 'vring', 'switch'] as const;
type Target = (typeof TARGETS)[number];
/** Share of the budget each target gets when all run. */
const SHARE: Record<Target, number> = { decoder: 0.15, session: 0.2, 'session-native': 0.2, vring: 0.3, switch: 0.15 };
/** The cargo targets: package and test file. */
const CARGO_FUZZ: Partial<Record<Target, { crate: string; test: string }>> = {
  vring: { crate: 'vring', test: 'fuzz' },
  switch: { crate: 'datapath', test: 'switch_fuzz' },
};
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SELF = fileURLToPath(import.meta.url);

interface Options {
  seconds: number;
  seed: bigint;
  only?: Target;
  caseSeed?: bigint;
  /** Child mode: run `only` here and write each case's seed to this file first. */
  caseFile?: string;
}

const USAGE = `--seconds N, --seed S, --only ${TARGETS.join('|')}, --case SEED`;

function parseOptions(argv: string[]): Options {
  const options: Options = { seconds: 60, seed: BigInt(`0x${randomBytes(8).toString('hex')}`) };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`${flag} needs a value (${USAGE})`);
    if (flag === '--seconds') {
      options.seconds = Number(value);
      if (!(options.seconds > 0)) throw new Error(`--seconds ${value} is not a positive number`);
    } else if (flag === '--seed') options.seed = BigInt(value);
    else if (flag === '--case') options.caseSeed = BigInt(value);
    else if (flag === '--case-file') options.caseFile = value;
    else if (flag === '--only') {
      if (!TARGETS.includes(value as Target)) throw new Error(`--only: one of ${TARGETS.join(', ')}`);
      options.only = value as Target;
    } else throw new Error(`unknown option ${flag} (${USAGE})`);
  }
  if (options.caseSeed !== undefined && options.only === undefined) throw new Error('--case needs --only TARGET');
  return options;
}

/** Child mode: one TypeScript target, the whole budget or just the case to replay. */
async function runTarget(target: Target, options: Options): Promise<CampaignResult> {
  const record = (seed: bigint) => writeFileSync(options.caseFile!, formatSeed(seed));
  const run = async (fuzzCase: FuzzCase) => {
    if (options.caseSeed === undefined) return runCampaign(target, fuzzCase, options.seed, options.seconds * 1000, record);
    record(options.caseSeed);
    try {
      await fuzzCase(options.caseSeed);
      return { target, cases: 1 };
    } catch (error) {
      return { target, cases: 1, failure: { seed: options.caseSeed, error } };
    }
  };
  if (target === 'decoder') return run(decoderCase);
  if (target === 'session') return run(recordingSessionCase);
  const fuzzer = new NativeSessionFuzzer(`vufz-${process.pid % 100000}`);
  try {
    return await run((seed) => fuzzer.runCase(seed));
  } finally {
    fuzzer.close();
  }
}

/** Runs a TypeScript target in a child process; true if it ran clean. A crash is reported with its case seed. */
function spawnTarget(target: Target, options: Options, seconds: number): boolean {
  const dir = mkdtempSync(join(tmpdir(), 'vu-fuzz-'));
  const caseFile = join(dir, 'case');
  try {
    const args = [SELF, '--only', target, '--seed', formatSeed(options.seed), '--seconds', String(seconds), '--case-file', caseFile];
    if (options.caseSeed !== undefined) args.push('--case', formatSeed(options.caseSeed));
    const child = spawnSync(process.execPath, ['--import=tsx', ...args], { cwd: ROOT, stdio: 'inherit' });
    if (child.signal) {
      let seed = '(none recorded)';
      try {
        seed = readFileSync(caseFile, 'utf8');
      } catch {}
      console.log(`${target}: CRASHED (${child.signal}) in case seed ${seed} (replay: npm run fuzz -- --only ${target} --case ${seed})`);
      return false;
    }
    return child.status === 0;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A cargo fuzz test for the budget (or one case); it prints its own seeds (vring::fuzz_cases). */
function runCargoFuzz(target: Target, { crate, test }: { crate: string; test: string }, options: Options, seconds: number): boolean {
  const env: NodeJS.ProcessEnv = { ...process.env, FUZZ_SEED: formatSeed(options.seed) };
  if (options.caseSeed !== undefined) env.FUZZ_CASE = formatSeed(options.caseSeed);
  else env.FUZZ_SECONDS = String(Math.max(1, Math.round(seconds)));
  const cargo = spawnSync('scripts/cargo-env.sh', ['cargo', 'test', '--release', '-p', crate, '--test', test, '--', '--nocapture'], { cwd: ROOT, env, stdio: 'inherit' });
  console.log(cargo.status === 0 ? `${target}: no failure` : `${target}: FAILED (the case seed is printed above; replay: npm run fuzz -- --only ${target} --case SEED)`);
  return cargo.status === 0;
}

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  if (options.caseFile !== undefined) {
    const result = await runTarget(options.only!, options);
    console.log(describeFailure(result));
    return result.failure ? 1 : 0;
  }
  const targets: readonly Target[] = options.only ? [options.only] : TARGETS;
  const total = targets.reduce((sum, t) => sum + SHARE[t], 0);
  console.log(`fuzz: run seed ${formatSeed(options.seed)}, ${options.seconds} s, targets ${targets.join(', ')} (replay the run: npm run fuzz -- --seed ${formatSeed(options.seed)} --seconds ${options.seconds})`);
  let clean = true;
  for (const target of targets) {
    const seconds = (options.seconds * SHARE[target]) / total;
    const cargo = CARGO_FUZZ[target];
    const ok = cargo ? runCargoFuzz(target, cargo, options, seconds) : spawnTarget(target, options, seconds);
    clean &&= ok;
  }
  return clean ? 0 : 1;
}

process.exitCode = await main();
