// How a file that a migrating guest downloaded differs from the original, and whether that
// difference is the guest's own memory corruption (QEMU 7.2 TCG) rather than the back-end's.

const PAGE = 4096;
/** A stale page of random data differs from the fresh one in all but a few of its bytes. */
const SLACK = 64;

/** The bytes of a file that differ, per 4 KiB page of the file. */
export interface FileDifference {
  /** How many bytes differ (as far as both files go). */
  bytes: number;
  pages: { page: number; first: number; last: number }[];
}

/**
 * A busybox shell command that prints where `file` differs from `reference`: a line
 * "N bytes differ in M file pages of 4 KiB", then "page P: bytes FIRST-LAST" per page (40 at most).
 */
export function fileDifferenceCommand(file: string, reference: string): string {
  const summary = [
    "awk '{o=$1-1; p=int(o/4096); if(!(p in s)){s[p]=o; n++} e[p]=o; c++}",
    'END{print c" bytes differ in "n" file pages of 4 KiB"; for(p in s) print "page "p": bytes "s[p]"-"e[p]}\'',
  ].join(' ');
  return `cmp -l ${file} ${reference} | ${summary} | sort -n -k2 | head -40`;
}

/** Reads the output of `fileDifferenceCommand` (other lines, such as cmp's "EOF on …", are skipped). */
export function parseFileDifference(output: string): FileDifference {
  const bytes = Number(/^(\d+) bytes differ/m.exec(output)?.[1] ?? 0);
  const pages = [...output.matchAll(/^page (\d+): bytes (\d+)-(\d+)$/gm)].map((m) => ({ page: Number(m[1]), first: Number(m[2]), last: Number(m[3]) }));
  return { bytes, pages };
}

/**
 * Whether every differing page of the file differs from its first bytes to its last: whole pages
 * of the guest's page cache went stale — memory the guest's CPU wrote, which QEMU's TCG tracks
 * (seen with QEMU's own `-netdev tap` too). What the back-end writes, RX buffers, reaches the file
 * as TCP segments at offsets that have nothing to do with the file's pages.
 */
export function wholePagesOnly(diff: FileDifference): boolean {
  return diff.pages.length > 0 && diff.pages.every(({ page, first, last }) => first - page * PAGE < SLACK && (page + 1) * PAGE - 1 - last < SLACK);
}
