/**
 * Group names to gids for --socket-group. Node has no getgrnam(); /etc/group is what it reads on
 * the systems this back-end runs on (NSS-only groups, e.g. from LDAP, are given as a number).
 */
import { readFileSync } from 'node:fs';

/** The gid of group `name` in the group file (`name:passwd:gid:members` lines), or undefined. */
export function lookupGroupId(name: string, groupFile = '/etc/group'): number | undefined {
  for (const line of readFileSync(groupFile, 'utf8').split('\n')) {
    const [group, , gid] = line.split(':');
    if (group === name && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  return undefined;
}
