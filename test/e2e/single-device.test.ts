/**
 * The TAP back-end's one device, end to end on a real socket (the data plane is a recording
 * fake): a second front-end is refused while the first is served, and a front-end that closes and
 * connects again at once is served, however soon its new connection arrives.
 */
import test from 'ava';
import { FrontendRequest as R } from '../../src/protocol/requests.ts';
import { BUSY_REASON, startRecordingServer } from '../helpers/recording-server.ts';
import { TestFrontend } from '../helpers/test-frontend.ts';

test.serial('a second front-end is refused with a log line while the first is served; the first goes on', async (t) => {
  const { server, socketPath, logLines } = startRecordingServer(t);
  const first = TestFrontend.connect(socketPath);
  t.teardown(() => first.close());
  await first.negotiate();
  const second = TestFrontend.connect(socketPath);
  t.teardown(() => second.close());
  await t.throwsAsync(second.get({ request: R.GET_FEATURES }));
  t.is(logLines.filter((l) => l.includes('refusing a front-end') && l.includes(BUSY_REASON)).length, 1);
  t.is(server.connectionCount, 1);
  t.is(typeof (await first.get({ request: R.GET_FEATURES })), 'bigint');
});

test.serial('a front-end that closes and connects again at once is served every time', async (t) => {
  const { server, socketPath, logLines } = startRecordingServer(t);
  // No pause between close and connect: the new connection may be accepted before the old one's
  // reader has reported the close. It must be served anyway, not refused as a second guest.
  for (let round = 0; round < 30; round++) {
    const fe = TestFrontend.connect(socketPath);
    try {
      await fe.negotiate();
      t.is(server.connectionCount, 1, `round ${round}`);
    } finally {
      fe.close();
    }
  }
  t.deepEqual(logLines.filter((l) => l.includes('refusing')), []);
});
