import test from 'ava';
import { parseFileDifference, wholePagesOnly } from './file-corruption.ts';

// The figures of a real run (QEMU's own tap, no vhost-user, 2026-11-26): wget segfaulted, one page stale.
const STALE_PAGE = 'cmp: EOF on /tmp/recv\n4079 bytes differ in 1 file pages of 4 KiB\npage 2656: bytes 10878976-10883071\n';

test('a stale whole page of the file is told apart from differences inside pages', (t) => {
  const stale = parseFileDifference(STALE_PAGE);
  t.deepEqual(stale, { bytes: 4079, pages: [{ page: 2656, first: 10878976, last: 10883071 }] });
  t.true(wholePagesOnly(stale));
  // A TCP segment's worth (1448 bytes) across a page boundary, as a stale RX buffer would leave.
  const segment = parseFileDifference('1440 bytes differ in 2 file pages of 4 KiB\npage 7: bytes 31500-32767\npage 8: bytes 32768-32947\n');
  t.false(wholePagesOnly(segment));
  // One whole page and one partial: not the guest's page cache alone.
  t.false(wholePagesOnly(parseFileDifference('4100 bytes differ in 2 file pages of 4 KiB\npage 1: bytes 4096-8191\npage 3: bytes 12300-12400\n')));
  t.false(wholePagesOnly(parseFileDifference('')), 'no difference found is no evidence either');
});
