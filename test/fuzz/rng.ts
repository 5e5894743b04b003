/**
 * The fuzzers' seeded random source (xorshift64 over BigInt: simple to audit, fast enough here).
 * Same seed, same sequence. Every fuzz case gets its own seed (`caseSeed(run, index)`, splitmix64,
 * as in crates/vring/tests/fuzz.rs) so one failing case replays alone.
 */
const MASK = (1n << 64n) - 1n;

export class Rng {
  private state: bigint;

  constructor(readonly seed: bigint) {
    this.state = (seed & MASK) || 0x9e37_79b9_7f4a_7c15n;
  }

  /** The next 64 random bits. */
  u64(): bigint {
    let x = this.state;
    x ^= (x << 13n) & MASK;
    x ^= x >> 7n;
    x ^= (x << 17n) & MASK;
    this.state = x;
    return x;
  }

  /** A whole number in [0, n), n ≤ 2^32. */
  below(n: number): number {
    return Number(this.u64() % BigInt(n));
  }

  /** True with probability 1/n. */
  oneIn(n: number): boolean {
    return this.below(n) === 0;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)];
  }

  bytes(length: number): Uint8Array {
    return Uint8Array.from({ length }, () => this.below(256));
  }
}

/** The seed of case `index` of the run seeded `runSeed` (splitmix64 of their sum). */
export function caseSeed(runSeed: bigint, index: number): bigint {
  let z = (runSeed + BigInt(index) * 0x9e37_79b9_7f4a_7c15n) & MASK;
  z = ((z ^ (z >> 30n)) * 0xbf58_476d_1ce4_e5b9n) & MASK;
  z = ((z ^ (z >> 27n)) * 0x94d0_49bb_1331_11ebn) & MASK;
  return z ^ (z >> 31n);
}

export function formatSeed(seed: bigint): string {
  return `0x${seed.toString(16)}`;
}
