import test, { type ExecutionContext } from 'ava';
import { GuestError } from './guest-agent.ts';
import { GuestMemoryCorrupted, retryingQemuGuestCrashes } from './migration-retry.ts';

/** Runs `failures` in turn (undefined: that attempt succeeds); returns what was logged. */
async function retry(failures: (Error | undefined)[]): Promise<{ logged: string[]; attempts: number }> {
  const logged: string[] = [];
  let attempts = 0;
  const t = { log: (line: string) => logged.push(line) } as unknown as ExecutionContext;
  await retryingQemuGuestCrashes(t, async () => {
    const failure = failures[attempts++];
    if (failure) throw failure;
  }, failures.length);
  return { logged, attempts };
}

test('a crashed guest, a hung one and stale page-cache pages are retried, each logged', async (t) => {
  const { logged, attempts } = await retry([
    new GuestError('VU_GUEST_EXITED', 'QEMU exited; the guest crashed: Kernel panic - not syncing: Fatal exception in interrupt'),
    new GuestError('VU_GUEST_TIMEOUT', 'no answer'),
    new GuestMemoryCorrupted('migration 2: whole pages of the guest\'s page cache went stale (1 of the file\'s)'),
    undefined,
  ]);
  t.is(attempts, 4);
  t.is(logged.length, 3);
  t.regex(logged[2], /page cache went stale/);
});

test('any other failure fails at once, and so does the last attempt', async (t) => {
  await t.throwsAsync(retry([new Error('the file arrived intact: expected …'), undefined]), { message: /arrived intact/ });
  await t.throwsAsync(retry([new GuestError('VU_GUEST_TIMEOUT', 'no answer'), new GuestMemoryCorrupted('stale again')]), { message: 'stale again' });
});
