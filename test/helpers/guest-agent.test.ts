import test from 'ava';
import { AgentChannel, GuestError } from './guest-agent.ts';

/** An agent channel whose console is a string the test writes, split at every offset if asked. */
function channel() {
  const sent: string[] = [];
  const agent = new AgentChannel((line) => sent.push(line));
  return { agent, sent };
}

const boot = 'SeaBIOS\r\n[    1.0] Run /init as init process\r\n__VU_READY__\r\n';

test('ready and one command, console fed in one piece', async (t) => {
  const { agent, sent } = channel();
  agent.feed(boot);
  await agent.ready;
  const result = agent.run('uname -r', 1000);
  t.deepEqual(sent, ['uname -r']);
  agent.feed('__VU_BEGIN__ 1\n6.1.0\n\n__VU_DONE__ 0\n');
  t.deepEqual(await result, { code: 0, output: '6.1.0\n' });
});

test('markers cut at every offset', async (t) => {
  const console = `${boot}__VU_BEGIN__ 1\nline one\r\nno newline\n__VU_DONE__ 7\n`;
  for (let cut = 0; cut <= console.length; cut++) {
    const { agent, sent } = channel();
    const result = agent.run('cmd', 1000);
    t.deepEqual(sent, [], 'nothing is sent before the agent is ready');
    agent.feed(console.slice(0, cut));
    agent.feed(console.slice(cut));
    t.deepEqual(await result, { code: 7, output: 'line one\nno newline' }, `cut at ${cut}`);
  }
});

test('commands run in order; kernel noise between them is skipped', async (t) => {
  const { agent, sent } = channel();
  agent.feed(boot);
  const first = agent.run('a', 1000);
  const second = agent.run('b', 1000);
  t.deepEqual(sent, ['a'], 'the second command waits for the first');
  agent.feed('__VU_BEGIN__ 1\nA\n__VU_DONE__ 0\n[ 5.0] virtio_net virtio0 eth0: renamed\n');
  t.deepEqual(await first, { code: 0, output: 'A' });
  t.deepEqual(sent, ['a', 'b']);
  agent.feed('__VU_BEGIN__ 2\nB\n__VU_DONE__ 1\n');
  t.deepEqual(await second, { code: 1, output: 'B' });
});

test('a timed-out command does not confuse the next one', async (t) => {
  const { agent, sent } = channel();
  agent.feed(boot);
  agent.feed('__VU_BEGIN__ 1\nstarted\n');
  const error = await t.throwsAsync(agent.run('sleep 100', 20), { instanceOf: GuestError });
  t.is(error?.code, 'VU_GUEST_TIMEOUT');
  const next = agent.run('echo next', 1000);
  t.deepEqual(sent, ['sleep 100', 'echo next']);
  agent.feed('late\n__VU_DONE__ 0\n__VU_BEGIN__ 2\nnext\n\n__VU_DONE__ 0\n');
  t.deepEqual(await next, { code: 0, output: 'next\n' });
});

test('QEMU exiting fails the waiting command and later ones', async (t) => {
  const { agent } = channel();
  agent.feed(boot);
  const waiting = agent.run('sleep 100', 1000);
  agent.fail(new GuestError('VU_GUEST_EXITED', 'QEMU exited'));
  await t.throwsAsync(waiting, { message: 'QEMU exited' });
  await t.throwsAsync(agent.run('true', 1000), { message: 'QEMU exited' });
});

test('a command with a newline is refused', async (t) => {
  const { agent, sent } = channel();
  await t.throwsAsync(agent.run('echo a\necho b', 1000), { instanceOf: GuestError, message: /one line/ });
  t.deepEqual(sent, []);
});
