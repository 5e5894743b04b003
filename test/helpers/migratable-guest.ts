/**
 * Guests that QEMU 7.2 live-migrates under TCG, and the migration itself, for the migration tests.
 * A migratable guest runs the `qemu64` CPU ('max' is not migratable: QEMU 7.2 TCG corrupts the
 * guest on the destination with it) and single-threaded TCG (fewer destination-guest crashes in
 * our runs; weak evidence, see qemu-args.ts), and has a QMP socket.
 */
import type { ExecutionContext } from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import { bootGuest, type Guest, type GuestOptions } from './guest.ts';
import { QmpClient } from './qmp.ts';

/** A guest and its QMP client. */
export interface MigratableGuest {
  guest: Guest;
  qmp: QmpClient;
}

/** QEMU's `query-migrate` answer, the fields the tests read. */
export interface MigrationInfo {
  status: string;
  'total-time'?: number;
  downtime?: number;
  'error-desc'?: string;
  ram?: { transferred: number; 'dirty-sync-count': number };
}

const MIGRATION_TIMEOUT_MS = 120_000;

/**
 * Boots a migratable guest with its QMP socket at `qmpPath`; with `incoming` (a migration URI) as
 * a migration destination. QEMU and the QMP client are stopped at the test's teardown.
 */
export async function bootMigratableGuest(
  t: ExecutionContext,
  options: Omit<GuestOptions, 'cpuModel' | 'singleThreadedTcg' | 'teardown'> & { qmpPath: string; incoming?: string },
): Promise<MigratableGuest> {
  const { qmpPath, incoming, extraQemuArgs = [], ...guestOptions } = options;
  const guest = await bootGuest({
    ...guestOptions,
    cpuModel: 'qemu64',
    singleThreadedTcg: true,
    extraQemuArgs: [...extraQemuArgs, '-qmp', `unix:${qmpPath},server=on,wait=off`, ...(incoming ? ['-incoming', incoming] : [])],
    teardown: t,
  });
  const qmp = await QmpClient.connect(qmpPath);
  t.teardown(() => qmp.close());
  return { guest, qmp };
}

/** Migrates `source` into `destination` (started with `incoming` = `uri`) and waits until it runs. */
export async function migrate(source: MigratableGuest, destination: MigratableGuest, uri: string): Promise<MigrationInfo> {
  await source.qmp.execute('migrate', { uri });
  const deadline = Date.now() + MIGRATION_TIMEOUT_MS;
  for (;;) {
    const info = await source.qmp.execute<MigrationInfo>('query-migrate');
    if (info.status === 'completed') {
      await destination.qmp.waitEvent('RESUME', 30_000);
      return info;
    }
    if (info.status === 'failed' || info.status === 'cancelled') {
      throw new Error(`migration ${info.status}: ${info['error-desc'] ?? '(no error text)'}; source log ${source.guest.logPath}, destination log ${destination.guest.logPath}`);
    }
    if (Date.now() > deadline) throw new Error(`migration still ${info.status} after ${MIGRATION_TIMEOUT_MS / 1000} s`);
    await sleep(100);
  }
}
