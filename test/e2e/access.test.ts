/**
 * Access control end to end: the real server on a real socket; a front-end process running as
 * another uid (setpriv) is refused and logged, ours is served, --allow-uid lets the other in, and
 * --socket-group/--socket-mode land on the socket file.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { statSync } from 'node:fs';
import { promisify } from 'node:util';
import { FrontendRequest as R } from '../../src/protocol/requests.ts';
import { startRecordingServer } from '../helpers/recording-server.ts';
import { TestFrontend } from '../helpers/test-frontend.ts';

const OTHER_UID = 4242;

/**
 * A front-end in a child process (as `uid` when given): connects, sends GET_FEATURES, prints
 * `reply <bytes>` if an answer comes, `closed` if the back-end hangs up first, `error <code>` if
 * connect fails.
 */
const CLIENT = `
const s = require('node:net').connect(process.argv[1]);
let got = 0, said = false;
const say = (what) => { if (!said) console.log(what); said = true; };
s.on('connect', () => s.write(Buffer.from([1,0,0,0, 1,0,0,0, 0,0,0,0])));
s.on('data', (d) => { got += d.length; if (got >= 20) { say('reply ' + got); s.destroy(); } });
s.on('close', () => say('closed'));
s.on('error', (e) => say(['EPIPE', 'ECONNRESET'].includes(e.code) ? 'closed' : 'error ' + e.code));
setTimeout(() => { console.log('timeout'); process.exit(0); }, 5000).unref();
`;

async function frontendProcess(socketPath: string, uid?: number): Promise<string> {
  const node = process.execPath;
  const [file, args] = uid === undefined
    ? [node, ['-e', CLIENT, socketPath]]
    : ['setpriv', ['--reuid', String(uid), '--regid', String(uid), '--clear-groups', node, '-e', CLIENT, socketPath]];
  const { stdout } = await promisify(execFile)(file, args, { timeout: 10_000 });
  return stdout.trim();
}

test.serial('a peer whose uid is not on the allow list is logged and closed; ours is served', async (t) => {
  t.not(process.getuid!(), OTHER_UID);
  const { socketPath, logLines } = startRecordingServer(t);
  t.is(await frontendProcess(socketPath, OTHER_UID), 'closed');
  const refused = logLines.filter((l) => l.includes('refusing a front-end whose uid is not allowed'));
  t.is(refused.length, 1);
  t.regex(refused[0], new RegExp(`pid=\\d+ uid=${OTHER_UID} gid=${OTHER_UID}`));
  // The refused peer did not take the one front-end slot: we are served, in this process and in a child.
  t.is(await frontendProcess(socketPath), 'reply 20');
  const fe = TestFrontend.connect(socketPath);
  t.teardown(() => fe.close());
  t.is(typeof (await fe.get({ request: R.GET_FEATURES })), 'bigint');
});

test.serial('--allow-uid admits the listed uid', async (t) => {
  const { socketPath, logLines } = startRecordingServer(t, { allowUids: [0, OTHER_UID] });
  t.is(await frontendProcess(socketPath, OTHER_UID), 'reply 20');
  t.false(logLines.some((l) => l.includes('refusing')));
});

test.serial('an allow list without our uid refuses us too', async (t) => {
  const { socketPath } = startRecordingServer(t, { allowUids: [OTHER_UID] });
  t.is(await frontendProcess(socketPath), 'closed');
});

test.serial('the socket file gets --socket-mode and --socket-group', (t) => {
  const { socketPath } = startRecordingServer(t, { socketMode: 0o660, socketGroup: OTHER_UID + 1 });
  const st = statSync(socketPath);
  t.true(st.isSocket());
  t.is(st.mode & 0o777, 0o660);
  t.is(st.gid, OTHER_UID + 1);
});

test.serial('the default socket mode 0600 keeps other users out before any credential check', async (t) => {
  const { socketPath, logLines } = startRecordingServer(t, { socketMode: 0o600, allowUids: [0, OTHER_UID] });
  t.is(await frontendProcess(socketPath, OTHER_UID), 'error EACCES');
  t.false(logLines.some((l) => l.includes('front-end connected')));
});
