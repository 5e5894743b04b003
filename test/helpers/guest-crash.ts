// How a test guest's kernel says it crashed, read from the serial console that QEMU logs.

/** The words a Linux crash report starts with. */
const CRASH_REPORT = /Kernel panic|BUG: |Oops: |invalid opcode/;

/**
 * The first kernel crash report in a console's text, from its first word to the end of its line
 * ("Kernel panic - not syncing: …", "BUG: …"); undefined if there is none. Give it the whole
 * console: the backtrace printed after the report can be longer than any tail an error quotes.
 */
export function guestCrashLine(console: string): string | undefined {
  const line = console.split(/\r?\n/).find((l) => CRASH_REPORT.test(l));
  return line?.slice(line.search(CRASH_REPORT)).trim();
}
