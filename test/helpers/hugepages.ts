/**
 * 2 MB hugepages for DPDK processes started by tests.
 *
 * DPDK's EAL needs hugetlbfs; `--single-file-segments` (which `net_virtio_user` needs so that
 * the back-end can map its memory) leaves `<prefix>map_*` files in the hugetlbfs mount and a
 * runtime directory `/var/run/dpdk/<prefix>` behind after every run. `cleanupPrefix` removes both.
 * Setup needs root: CI machines are fresh and the tests do it themselves.
 */
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';

const execFileAsync = promisify(execFile);

/** Where the 2 MB hugetlbfs is mounted (DPDK's default `--huge-dir` lookup finds it there). */
export const HUGEPAGE_DIR = '/dev/hugepages';
/** DPDK's runtime directory for a root process: `<dir>/<file-prefix>/{config,mp_socket,…}`. */
export const DPDK_RUNTIME_DIR = '/var/run/dpdk';

const NR_HUGEPAGES = '/proc/sys/vm/nr_hugepages';

export interface HugepageState {
  /** HugePages_Total (2 MB pages). */
  total: number;
  /** HugePages_Free. */
  free: number;
}

/** A `--file-prefix` must be usable as a file name fragment: no `/`, no glob characters. */
export function assertValidPrefix(prefix: string): void {
  if (!/^[A-Za-z0-9_-]{1,40}$/.test(prefix)) {
    throw new Error(`invalid DPDK file prefix ${JSON.stringify(prefix)}: use 1-40 of [A-Za-z0-9_-]`);
  }
}

/** Reads HugePages_Total/HugePages_Free from /proc/meminfo. */
export async function hugepageState(): Promise<HugepageState> {
  const meminfo = await readFile('/proc/meminfo', 'utf8');
  const field = (name: string): number => {
    const match = new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(meminfo);
    if (!match) throw new Error(`/proc/meminfo has no ${name} line`);
    return Number(match[1]);
  };
  return { total: field('HugePages_Total'), free: field('HugePages_Free') };
}

async function hugetlbfsMounted(dir: string): Promise<boolean> {
  const mounts = await readFile('/proc/mounts', 'utf8');
  return mounts.split('\n').some((line) => {
    const [, mountPoint, fsType] = line.split(' ');
    return mountPoint === dir && fsType === 'hugetlbfs';
  });
}

/**
 * Makes sure at least `minPages` 2 MB hugepages are reserved and hugetlbfs is mounted on
 * HUGEPAGE_DIR. Never lowers an existing reservation (other processes may be using it).
 * Throws if the kernel could not reserve enough pages (fragmented memory) or we are not root.
 */
export async function ensureHugepages(minPages = 512): Promise<HugepageState> {
  const reserved = Number((await readFile(NR_HUGEPAGES, 'utf8')).trim());
  if (reserved < minPages) await writeFile(NR_HUGEPAGES, `${minPages}\n`);
  const state = await hugepageState();
  if (state.total < minPages) {
    throw new Error(`kernel reserved only ${state.total} of ${minPages} requested 2 MB hugepages`);
  }
  if (!(await hugetlbfsMounted(HUGEPAGE_DIR))) {
    await mkdir(HUGEPAGE_DIR, { recursive: true });
    await execFileAsync('mount', ['-t', 'hugetlbfs', '-o', 'pagesize=2M', 'nodev', HUGEPAGE_DIR]);
  }
  return state;
}

/**
 * Removes what a DPDK process with `--file-prefix=prefix` leaves behind: its hugepage files
 * (`<prefix>map_*` in HUGEPAGE_DIR) and its runtime directory. Call only after that process
 * has exited. Synchronous so that it can run in a process 'exit' handler. Returns the paths removed.
 */
export function cleanupPrefix(prefix: string): string[] {
  assertValidPrefix(prefix);
  const removed: string[] = [];
  const names = existsSync(HUGEPAGE_DIR) ? readdirSync(HUGEPAGE_DIR) : [];
  for (const name of names.filter((n) => n.startsWith(`${prefix}map_`))) {
    const file = path.join(HUGEPAGE_DIR, name);
    rmSync(file, { force: true });
    removed.push(file);
  }
  const runtimeDir = path.join(DPDK_RUNTIME_DIR, prefix);
  if (existsSync(runtimeDir)) {
    rmSync(runtimeDir, { recursive: true, force: true });
    removed.push(runtimeDir);
  }
  return removed;
}
