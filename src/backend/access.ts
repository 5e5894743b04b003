/**
 * Who may talk to this back-end: the uids whose connections are served. The kernel records the
 * peer's credentials at connect time (SO_PEERCRED), so a front-end cannot claim another uid.
 */

/** Uids served when none are configured: this process's own and root. */
export function defaultAllowUids(): number[] {
  const own = process.getuid?.() ?? 0;
  return own === 0 ? [0] : [own, 0];
}
