/** `npm run bench -- [--rounds N] [--seconds S] [--only NAME[,NAME]] [--out DIR]`. */

export interface BenchOptions {
  /** Rounds per case; each round runs this back-end and the reference once, alternating who goes first. */
  rounds: number;
  /** Measured seconds per run (after warm-up). */
  seconds: number;
  /** Scenarios to run (default: all, in priority order). */
  only?: string[];
  /** Where results/<timestamp>.{json,md} go. */
  outDir: string;
  /** Scaling scenario: the largest number of connected ports. */
  maxPorts: number;
  /**
   * A run during which other processes used more than this much CPU (1.0 = one core) is
   * repeated, up to `retries` times; the least disturbed attempt is kept.
   */
  maxNoise: number;
  retries: number;
  /**
   * After the planned rounds, a case with fewer rounds than this made in one placement of the
   * vCPUs (see cpu-placement.ts) gets more rounds, at most `maxExtraRounds` of them.
   */
  steadyRounds: number;
  maxExtraRounds: number;
  /** Only rewrite the Markdown report and charts of this results JSON (no measurement). */
  render?: string;
}

export const BENCH_USAGE = `Usage: npm run bench -- [options]
  --rounds N        rounds per case (default 3); each round runs both subjects, alternating order
  --seconds S       measured seconds per run, after warm-up (default 5; idle uses at least 10)
  --only A[,B]      run only these scenarios: tap-rate, vm2vm-rate, guest-tcp, idle, scaling
  --max-ports N     scaling: largest port count (default 64)
  --max-noise CPU   repeat a run if other processes used more CPU than this meanwhile (default 0.5)
  --retries N       at most this many repeats per run (default 2; 0 keeps every first attempt)
  --steady-rounds N after the planned rounds, give a case more rounds until N of its rounds were
                    made in one placement of the vCPUs (default 3; 0: never)
  --max-extra-rounds N  at most this many such extra rounds per case (default: as --rounds)
  --out DIR         output directory (default bench/results)
  --render FILE     rewrite FILE's Markdown report and charts from the JSON (no measuring)
  --help`;

export function parseBenchArgs(argv: string[], defaultOutDir: string): BenchOptions | 'help' {
  const options: BenchOptions = { rounds: 3, seconds: 5, outDir: defaultOutDir, maxPorts: 64, maxNoise: 0.5, retries: 2, steadyRounds: 3, maxExtraRounds: Number.NaN };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].includes('=') ? [argv[i].slice(0, argv[i].indexOf('=')), argv[i].slice(argv[i].indexOf('=') + 1)] : [argv[i], undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    const whole = (text: string): number => {
      const n = Number(text);
      if (!Number.isInteger(n) || n < 0) throw new Error(`${flag}: '${text}' is not a whole number`);
      return n;
    };
    const positive = (text: string): number => {
      const n = Number(text);
      if (!Number.isFinite(n) || n <= 0) throw new Error(`${flag}: '${text}' is not a positive number`);
      return n;
    };
    switch (flag) {
      case '--rounds':
        options.rounds = Math.round(positive(value()));
        break;
      case '--seconds':
        options.seconds = positive(value());
        break;
      case '--only':
        options.only = value().split(',').map((s) => s.trim()).filter(Boolean);
        break;
      case '--max-ports':
        options.maxPorts = Math.round(positive(value()));
        break;
      case '--max-noise':
        options.maxNoise = positive(value());
        break;
      case '--retries':
        options.retries = whole(value());
        break;
      case '--steady-rounds':
        options.steadyRounds = whole(value());
        break;
      case '--max-extra-rounds':
        options.maxExtraRounds = whole(value());
        break;
      case '--render':
        options.render = value();
        break;
      case '--out':
        options.outDir = value();
        break;
      case '--help':
      case '-h':
        return 'help';
      default:
        throw new Error(`unknown option ${argv[i]}\n${BENCH_USAGE}`);
    }
  }
  if (Number.isNaN(options.maxExtraRounds)) options.maxExtraRounds = options.rounds;
  return options;
}
