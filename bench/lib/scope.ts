/**
 * Cleanup for one measurement run outside ava: a `Teardown` (what the test helpers take as `t`)
 * that runs its functions last-registered-first when the run ends, also when it failed. Every
 * process, TAP, namespace and DPDK prefix a scenario creates is registered on a Scope.
 */
import type { Teardown } from '../../test/helpers/proc.ts';

export class Scope implements Teardown {
  private readonly cleanups: Array<() => void | Promise<void>> = [];

  teardown(fn: () => void | Promise<void>): void {
    this.cleanups.push(fn);
  }

  /** Runs every cleanup (newest first); a failing cleanup is reported and the rest still run. */
  async close(): Promise<void> {
    while (this.cleanups.length > 0) {
      const fn = this.cleanups.pop()!;
      try {
        await fn();
      } catch (error) {
        console.error(`bench: cleanup failed: ${(error as Error).message}`);
      }
    }
  }
}

/** Runs `body` with a fresh Scope and closes the scope whatever happens. */
export async function withScope<T>(body: (scope: Scope) => Promise<T>): Promise<T> {
  const scope = new Scope();
  try {
    return await body(scope);
  } finally {
    await scope.close();
  }
}
