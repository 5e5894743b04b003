/**
 * The control socket and `ctl`, against a fake switch over a real UNIX socket.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { execFileSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { ControlServer } from '../../src/switch/control-server.ts';
import { ControlClient } from '../../src/switch/control-client.ts';
import { parseUplinkSpec, type MacEntry, type PortInfo, type SwitchControl } from '../../src/switch/control-protocol.ts';
import { ctlMain, defaultControlPath, defaultSocketPath } from '../../src/cli/ctl.ts';
import { formatPorts } from '../../src/switch/control-format.ts';
import { formatMac } from '../../src/device/mac.ts';
import type { PortSecurity } from '../../src/switch/port-security.ts';

class SwitchError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** A switch that records what it is asked and keeps a port list. */
class FakeSwitch implements SwitchControl {
  calls: string[] = [];
  portList: PortInfo[] = [
    { id: 0, name: 'default', kind: 'vhost-user', mac: '52:54:00:12:34:56', state: 'connected', rxFrames: 12345678901234567890n, txFrames: 2n, rxBytes: 3000n, txBytes: 4n, drops: { noRxBuffers: 5n, tooLong: 0n } },
    { id: 1, name: 'uplink-1', kind: 'tap', vlan: 10, state: 'waiting', rxFrames: 0n, txFrames: 0n, rxBytes: 0n, txBytes: 0n, drops: {} },
  ];
  nextId = 2;

  ports(): PortInfo[] {
    this.calls.push('ports');
    return this.portList;
  }
  macs(): MacEntry[] {
    this.calls.push('macs');
    return [{ mac: '52:54:00:12:34:56', portId: 0, portName: 'default', ageSeconds: 3 }];
  }
  stats(): Record<string, bigint | number> {
    this.calls.push('stats');
    return { flooded: 7n, learned: 2, 'dhcp.ack': 1 };
  }
  addPort(name: string, socketPath: string, vlan?: number, security?: PortSecurity): PortInfo {
    const ips = security?.ips.length ? ` ips=${security.ips.join(',')}` : '';
    this.calls.push(`addPort ${name} ${socketPath}${vlan ? ` vlan=${vlan}` : ''}${security ? ` mac=${formatMac(security.mac)}${ips}` : ''}`);
    if (this.portList.some((p) => p.name === name)) throw new SwitchError('VU_ERR_PORT_EXISTS', `a port named ${name} exists`);
    const port: PortInfo = { id: this.nextId++, name, kind: 'vhost-user', state: 'waiting', rxFrames: 0n, txFrames: 0n, rxBytes: 0n, txBytes: 0n, drops: {} };
    this.portList.push(port);
    return port;
  }
  removePort(name: string): void {
    this.calls.push(`removePort ${name}`);
    if (!this.portList.some((p) => p.name === name)) throw new SwitchError('VU_ERR_NO_SUCH_PORT', `no port named ${name}`);
    this.portList = this.portList.filter((p) => p.name !== name);
  }
  addUplink(spec: string, vlan?: number): PortInfo {
    this.calls.push(`addUplink ${spec}${vlan ? ` vlan=${vlan}` : ''}`);
    if (spec === 'tap:boom') throw new Error('plain failure without a code');
    const port: PortInfo = { id: this.nextId++, name: spec, kind: spec.startsWith('tap:') ? 'tap' : 'stream', state: 'connected', rxFrames: 0n, txFrames: 0n, rxBytes: 0n, txBytes: 0n, drops: {} };
    this.portList.push(port);
    return port;
  }
  removeUplink(id: number): void {
    this.calls.push(`removeUplink ${id}`);
    if (!this.portList.some((p) => p.id === id)) throw new SwitchError('VU_ERR_NO_SUCH_PORT', `no port ${id}`);
    this.portList = this.portList.filter((p) => p.id !== id);
  }
}

async function setUp(t: { teardown: (fn: () => unknown) => void }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vu-ctl-'));
  const socketPath = path.join(dir, 'vhost-user-net.ctl');
  const fake = new FakeSwitch();
  const server = new ControlServer(socketPath, fake);
  await server.listen();
  t.teardown(async () => {
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const client = await ControlClient.connect(socketPath);
  t.teardown(() => client.close());
  const ctl = async (...argv: string[]) => {
    let stdout = '';
    let stderr = '';
    const status = await ctlMain(['--control', socketPath, ...argv], (s) => (stdout += s), (s) => (stderr += s));
    return { status, stdout, stderr };
  };
  return { dir, socketPath, fake, server, client, ctl };
}

test.serial('the socket is created mode 0600 even under a permissive umask, and removed on close', async (t) => {
  const umask = process.umask(0);
  let socketPath: string;
  let server: Awaited<ReturnType<typeof setUp>>['server'];
  try {
    ({ socketPath, server } = await setUp(t));
  } finally {
    process.umask(umask);
  }
  t.is(fs.statSync(socketPath).mode & 0o777, 0o600);
  await server.close();
  t.false(fs.existsSync(socketPath));
});

test('round trips: ports, macs, stats (bigints as decimal strings)', async (t) => {
  const { client } = await setUp(t);
  const ports = await client.request('ports');
  t.true(ports.ok);
  t.like(ports, { ok: true, result: [{ id: 0, name: 'default', rxFrames: '12345678901234567890', drops: { noRxBuffers: '5', tooLong: '0' } }, { id: 1, vlan: 10 }] });
  t.deepEqual(await client.request('macs'), { id: 2, ok: true, result: [{ mac: '52:54:00:12:34:56', portId: 0, portName: 'default', ageSeconds: 3 }] });
  t.deepEqual(await client.request('stats'), { id: 3, ok: true, result: { flooded: '7', learned: 2, 'dhcp.ack': 1 } });
});

test('round trips: add-port, remove-port, add-uplink, remove-uplink', async (t) => {
  const { client, fake } = await setUp(t);
  t.like(await client.request('add-port', { name: 'vm1', path: '/run/vm1.sock' }), { ok: true, result: { id: 2, name: 'vm1', kind: 'vhost-user', rxFrames: '0' } });
  t.like(await client.request('remove-port', { name: 'vm1' }), { ok: true, result: { removed: 'vm1' } });
  t.like(await client.request('add-uplink', { spec: 'stream:tcp:127.0.0.1:5555' }), { ok: true, result: { id: 3, kind: 'stream' } });
  t.like(await client.request('remove-uplink', { id: 3 }), { ok: true, result: { removed: 3 } });
  t.deepEqual(fake.calls, ['addPort vm1 /run/vm1.sock', 'removePort vm1', 'addUplink stream:tcp:127.0.0.1:5555', 'removeUplink 3']);
});

test('add-port with an access VLAN and a locked MAC and IP addresses, add-uplink with a VLAN', async (t) => {
  const { client, fake } = await setUp(t);
  t.like(await client.request('add-port', { name: 'vm2', path: '/run/vm2.sock', vlan: 10, mac: '52:54:00:12:34:56' }), { ok: true });
  t.like(await client.request('add-uplink', { spec: 'tap:up0', vlan: 10 }), { ok: true });
  t.like(await client.request('add-port', { name: 'vm3', path: '/run/vm3.sock', mac: '52:54:00:12:34:57', ips: ['10.0.0.3', '192.168.7.3'] }), { ok: true });
  t.like(await client.request('add-port', { name: 'vm4', path: '/run/vm4.sock', mac: '52:54:00:12:34:58', ips: ['FD00:0::4', '10.0.0.4'] }), { ok: true });
  t.deepEqual(fake.calls, [
    'addPort vm2 /run/vm2.sock vlan=10 mac=52:54:00:12:34:56',
    'addUplink tap:up0 vlan=10',
    'addPort vm3 /run/vm3.sock mac=52:54:00:12:34:57 ips=10.0.0.3,192.168.7.3',
    'addPort vm4 /run/vm4.sock mac=52:54:00:12:34:58 ips=fd00::4,10.0.0.4,fe80::5054:ff:fe12:3458',
  ]);
});

test('bad requests: clear errors, the switch is not called, the connection keeps serving', async (t) => {
  const { client, fake } = await setUp(t);
  const cases: [string, string][] = [
    ['this is not json', 'VU_ERR_BAD_REQUEST'],
    ['[1,2]', 'VU_ERR_BAD_REQUEST'],
    ['{"id":"x","cmd":"ports"}', 'VU_ERR_BAD_REQUEST'],
    ['{"id":7,"cmd":42}', 'VU_ERR_BAD_REQUEST'],
    ['{"id":7,"cmd":"reboot"}', 'VU_ERR_UNKNOWN_COMMAND'],
    ['{"id":7,"cmd":"add-port","args":{"name":"vm1"}}', 'VU_ERR_BAD_ARGS'],
    ['{"id":7,"cmd":"add-port","args":{"name":"","path":"/x"}}', 'VU_ERR_BAD_ARGS'],
    ['{"id":7,"cmd":"add-port","args":{"name":"-rf","path":"/x"}}', 'VU_ERR_BAD_ARGS'],
    ['{"id":7,"cmd":"add-port","args":{"name":"vm1","path":"/x","mode":1}}', 'VU_ERR_BAD_ARGS'],
    ['{"id":7,"cmd":"add-port","args":{"name":"vm1","path":"/x","vlan":4095}}', 'VU_ERR_BAD_ARGS'],
    ['{"id":7,"cmd":"add-port","args":{"name":"vm1","path":"/x","vlan":"10"}}', 'VU_ERR_BAD_ARGS'],
    ['{"id":7,"cmd":"add-port","args":{"name":"vm1","path":"/x","mac":"01:00:5e:00:00:01"}}', 'VU_ERR_BAD_ARGS'],
    ['{"id":7,"cmd":"add-port","args":{"name":"vm1","path":"/x","mac":"nope"}}', 'VU_ERR_BAD_ARGS'],
    ['{"id":7,"cmd":"add-port","args":{"name":"vm1","path":"/x","ips":["10.0.0.5"]}}', 'VU_ERR_BAD_ARGS'],
    ['{"id":7,"cmd":"add-port","args":{"name":"vm1","path":"/x","mac":"52:54:00:12:34:56","ips":"10.0.0.5"}}', 'VU_ERR_BAD_ARGS'],
    ['{"id":7,"cmd":"add-port","args":{"name":"vm1","path":"/x","mac":"52:54:00:12:34:56","ips":["10.0.0.256"]}}', 'VU_ERR_BAD_ARGS'],
    ['{"id":7,"cmd":"add-port","args":{"name":"vm1","path":"/x","mac":"52:54:00:12:34:56","ips":["10.0.0.5","10.0.0.5"]}}', 'VU_ERR_BAD_ARGS'],
    ['{"id":7,"cmd":"add-port","args":{"name":"vm1","path":"/x","mac":"52:54:00:12:34:56","ips":["fd00::5","fd00:0::5"]}}', 'VU_ERR_BAD_ARGS'],
    ['{"id":7,"cmd":"add-port","args":{"name":"vm1","path":"/x","mac":"52:54:00:12:34:56","ips":["ff02::1"]}}', 'VU_ERR_BAD_ARGS'],
    ['{"id":7,"cmd":"add-uplink","args":{"spec":"tap:up0","mac":"52:54:00:12:34:56"}}', 'VU_ERR_BAD_ARGS'],
    ['{"id":7,"cmd":"remove-port","args":{}}', 'VU_ERR_BAD_ARGS'],
    ['{"id":7,"cmd":"add-uplink","args":{"spec":"vxlan:1.2.3.4"}}', 'VU_ERR_BAD_ARGS'],
    ['{"id":7,"cmd":"add-uplink","args":{"spec":"stream:tcp:host:99999"}}', 'VU_ERR_BAD_ARGS'],
    ['{"id":7,"cmd":"add-uplink","args":{"spec":"tap:a-name-far-too-long"}}', 'VU_ERR_BAD_ARGS'],
    ['{"id":7,"cmd":"remove-uplink","args":{"id":"3"}}', 'VU_ERR_BAD_ARGS'],
    ['{"id":7,"cmd":"remove-uplink","args":{"id":-1}}', 'VU_ERR_BAD_ARGS'],
    ['{"id":7,"cmd":"ports","args":[]}', 'VU_ERR_BAD_ARGS'],
  ];
  for (const [line, code] of cases) {
    const response = await client.sendLine(line);
    t.false(response.ok, line);
    if (!response.ok) {
      t.is(response.error.code, code, line);
      t.true(response.error.message.length > 0);
    }
    t.is(response.id, line.includes('"id":7') ? 7 : null, line);
  }
  t.deepEqual(fake.calls, [], 'nothing reached the switch');
  t.true((await client.request('ports')).ok, 'still serving');
});

test('switch errors: its code and message, or VU_ERR_INTERNAL; still serving', async (t) => {
  const { client, fake } = await setUp(t);
  t.like(await client.request('add-port', { name: 'default', path: '/x' }), { ok: false, error: { code: 'VU_ERR_PORT_EXISTS', message: 'a port named default exists' } });
  t.like(await client.request('remove-uplink', { id: 99 }), { ok: false, error: { code: 'VU_ERR_NO_SUCH_PORT' } });
  t.like(await client.request('add-uplink', { spec: 'tap:boom' }), { ok: false, error: { code: 'VU_ERR_INTERNAL', message: 'plain failure without a code' } });
  t.is(fake.portList.length, 2);
  t.true((await client.request('ports')).ok);
});

test('several requests in one write are answered in order; many clients at once', async (t) => {
  const { socketPath } = await setUp(t);
  const socket = net.connect(socketPath);
  const lines = await new Promise<string[]>((resolve) => {
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      data += chunk;
      const got = data.split('\n').filter(Boolean);
      if (got.length === 3) resolve(got);
    });
    socket.write('{"id":1,"cmd":"stats"}\n\n{"id":2,"cmd":"nope"}\n{"id":3,"cmd":"macs"}\n');
  });
  socket.destroy();
  t.deepEqual(
    lines.map((l) => JSON.parse(l)).map((r) => [r.id, r.ok]),
    [
      [1, true],
      [2, false],
      [3, true],
    ],
  );
  const clients = await Promise.all([1, 2, 3, 4, 5].map(() => ControlClient.connect(socketPath)));
  const answers = await Promise.all(clients.map((c) => c.request('ports')));
  clients.forEach((c) => c.close());
  t.true(answers.every((a) => a.ok));
});

test('an over-long line gets an error and its connection closed; the server keeps serving', async (t) => {
  const { socketPath, client } = await setUp(t);
  const victim = await ControlClient.connect(socketPath);
  const response = await victim.sendLine(`{"id":1,"cmd":"ports","args":{"x":"${'a'.repeat(70_000)}"}}`);
  t.like(response, { ok: false, error: { code: 'VU_ERR_BAD_REQUEST' } });
  await t.throwsAsync(victim.request('ports'), { message: /closed|EPIPE|reset/ });
  t.true((await client.request('ports')).ok);
});

test('a stale socket file is replaced; a live one or a regular file is refused', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vu-ctl-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const socketPath = path.join(dir, 'ctl');
  // A socket file nobody listens on, as a crashed instance leaves it behind.
  execFileSync('python3', ['-c', 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', socketPath]);
  t.true(fs.existsSync(socketPath));
  const first = new ControlServer(socketPath, new FakeSwitch());
  await first.listen();
  t.teardown(() => first.close());
  const client = await ControlClient.connect(socketPath);
  t.true((await client.request('ports')).ok);
  client.close();
  const second = new ControlServer(socketPath, new FakeSwitch());
  await t.throwsAsync(second.listen(), { message: /another vhost-user-net is listening/ });
  const file = path.join(dir, 'plain');
  fs.writeFileSync(file, 'keep me');
  await t.throwsAsync(new ControlServer(file, new FakeSwitch()).listen(), { message: /not a socket/ });
  t.is(fs.readFileSync(file, 'utf8'), 'keep me');
});

test('ctl ports: an aligned table', async (t) => {
  const { ctl } = await setUp(t);
  const { status, stdout, stderr } = await ctl('ports');
  t.is(status, 0);
  t.is(stderr, '');
  t.is(
    stdout,
    [
      'ID  NAME      KIND        STATE      MAC                VLAN             RX-FRAMES  RX-BYTES  TX-FRAMES  TX-BYTES  DROPS  DROP-REASONS',
      ' 0  default   vhost-user  connected  52:54:00:12:34:56     -  12345678901234567890      3000          2         4      5  noRxBuffers=5',
      ' 1  uplink-1  tap         waiting    -                    10                     0         0          0         0      0  -',
      '',
    ].join('\n'),
  );
});

test('ctl --json: the raw result', async (t) => {
  const { ctl } = await setUp(t);
  const ports = await ctl('--json', 'ports');
  t.is(ports.status, 0);
  t.like(JSON.parse(ports.stdout), [{ id: 0, rxFrames: '12345678901234567890' }, { id: 1 }]);
  const stats = await ctl('stats', '--json');
  t.deepEqual(JSON.parse(stats.stdout), { flooded: '7', learned: 2, 'dhcp.ack': 1 });
});

test('ctl ports: a LOCKED-IPS column after MAC once a port is locked to IPv4 addresses', (t) => {
  const port = { id: 4, name: 'vm4', kind: 'vhost-user', state: 'waiting', rxFrames: '0', txFrames: '0', rxBytes: '0', txBytes: '0', drops: {} };
  const table = formatPorts([{ ...port, mac: '52:54:00:12:34:58', macLocked: true, lockedIps: ['10.0.0.4', '10.0.1.4'] }, { ...port, id: 5, name: 'vm5' }]);
  t.is(
    table,
    [
      'ID  NAME  KIND        STATE    MAC                         LOCKED-IPS         VLAN  RX-FRAMES  RX-BYTES  TX-FRAMES  TX-BYTES  DROPS  DROP-REASONS',
      ' 4  vm4   vhost-user  waiting  52:54:00:12:34:58 (locked)  10.0.0.4,10.0.1.4     -          0         0          0         0      0  -',
      ' 5  vm5   vhost-user  waiting  -                           -                     -          0         0          0         0      0  -',
      '',
    ].join('\n'),
  );
});

test('ctl macs, stats, add/remove: tables and messages', async (t) => {
  const { ctl, fake } = await setUp(t);
  t.is((await ctl('macs')).stdout, 'MAC                VLAN  PORT  PORT-NAME  AGE(s)\n52:54:00:12:34:56     -     0  default         3\n');
  t.is((await ctl('stats')).stdout, 'COUNTER   VALUE\nflooded       7\nlearned       2\ndhcp.ack      1\n');
  const added = await ctl('add-port', 'vm1=/run/vm 1.sock');
  t.is(added.status, 0);
  t.regex(added.stdout, /^ID +NAME.*\n +2 +vm1 +vhost-user +waiting/);
  t.is((await ctl('remove-port', 'vm1')).stdout, 'removed port vm1\n');
  t.regex((await ctl('add-uplink', 'stream:unix:/tmp/q.sock')).stdout, /stream:unix:\/tmp\/q\.sock +stream +connected/);
  t.is((await ctl('remove-uplink', '3')).stdout, 'removed uplink 3\n');
  t.regex((await ctl('add-port', 'vm2=/run/vm2.sock,vlan=10,mac=52:54:00:12:34:56,ip=10.0.0.2,ip=10.0.0.12')).stdout, / +vm2 +vhost-user +waiting/);
  t.is((await ctl('add-uplink', 'tap:up0,vlan=20')).status, 0);
  t.deepEqual(fake.calls, ['macs', 'stats', 'addPort vm1 /run/vm 1.sock', 'removePort vm1', 'addUplink stream:unix:/tmp/q.sock', 'removeUplink 3', 'addPort vm2 /run/vm2.sock vlan=10 mac=52:54:00:12:34:56 ips=10.0.0.2,10.0.0.12', 'addUplink tap:up0 vlan=20']);
});

test('ctl: the switch refusing is exit 1 with its message; bad command lines are exit 2 and send nothing', async (t) => {
  const { ctl, fake } = await setUp(t);
  const refused = await ctl('remove-port', 'ghost');
  t.is(refused.status, 1);
  t.is(refused.stdout, '');
  t.is(refused.stderr, 'vhost-user-net ctl: remove-port: no port named ghost (VU_ERR_NO_SUCH_PORT)\n');
  fake.calls = [];
  for (const argv of [[], ['reboot'], ['ports', 'extra'], ['add-port', 'vm1'], ['add-port', '=/x'], ['add-port', 'vm1='], ['add-uplink', 'tap:'], ['add-uplink', 'udp:1.2.3.4:5'], ['add-port', 'vm1=/x,vlan=0'], ['add-port', 'vm1=/x,mac=01:00:5e:00:00:01'], ['add-uplink', 'tap:u,mac=52:54:00:12:34:56'], ['remove-uplink', 'x'], ['remove-uplink', '-1'], ['--bogus', 'ports']]) {
    const result = await ctl(...argv);
    t.is(result.status, 2, argv.join(' '));
    t.regex(result.stderr, /^vhost-user-net ctl: /);
  }
  t.deepEqual(fake.calls, []);
  t.is((await ctlMain(['--help'], () => {})), 0);
});

test('ctl: no switch running is exit 1 with a clear message', async (t) => {
  let stderr = '';
  const status = await ctlMain(['--control', path.join(os.tmpdir(), `vu-nothing-${process.pid}.ctl`), 'ports'], () => {}, (s) => (stderr += s));
  t.is(status, 1);
  t.regex(stderr, /cannot reach the control socket .*: no vhost-user-net is listening there \(ENOENT\)/);
});

test('default paths: $XDG_RUNTIME_DIR, else the current directory', (t) => {
  t.is(defaultControlPath({ XDG_RUNTIME_DIR: '/run/user/1000' }), '/run/user/1000/vhost-user-net.ctl');
  t.is(defaultSocketPath({ XDG_RUNTIME_DIR: '/run/user/1000' }), '/run/user/1000/vhost-user-net.sock');
  t.is(defaultControlPath({}), './vhost-user-net.ctl');
  t.is(defaultSocketPath({ XDG_RUNTIME_DIR: '' }), './vhost-user-net.sock');
});

test('parseUplinkSpec: the three forms', (t) => {
  t.deepEqual(parseUplinkSpec('tap:tap0'), { kind: 'tap', name: 'tap0' });
  t.deepEqual(parseUplinkSpec('stream:unix:/run/q.sock'), { kind: 'stream-unix', path: '/run/q.sock' });
  t.deepEqual(parseUplinkSpec('stream:tcp:10.0.0.1:1234'), { kind: 'stream-tcp', host: '10.0.0.1', port: 1234 });
  t.deepEqual(parseUplinkSpec('stream:tcp:[::1]:1234'), { kind: 'stream-tcp', host: '::1', port: 1234 });
  t.deepEqual(parseUplinkSpec('stream:tcp:switch-b.local:5000'), { kind: 'stream-tcp', host: 'switch-b.local', port: 5000 });
  for (const bad of ['tap:', 'tap:a/b', 'stream:unix:', 'stream:tcp:host', 'stream:tcp:host:0', 'stream:tcp::5', 'socket:x']) {
    t.throws(() => parseUplinkSpec(bad), { message: /expected tap:NAME/ }, bad);
  }
});
