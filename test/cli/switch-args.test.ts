/** Switch-mode command lines: defaults, named ports, uplinks, VLANs, DHCP, and what excludes what. */
import test from 'ava';
import { DEFAULT_DHCP_CIDR, parseArgs, UsageError, type BackendOptions } from '../../src/cli/args.ts';

const parse = (...argv: string[]) => parseArgs(argv, () => undefined) as BackendOptions;

test('no arguments: the switch on the default socket with DHCP on', (t) => {
  const o = parse();
  t.is(o.mode, 'run');
  t.is(o.tap, undefined);
  t.regex(o.socketPath!, /vhost-user-net\.sock$/);
  t.regex(o.controlPath, /vhost-user-net\.ctl$/);
  t.is(o.dhcp, DEFAULT_DHCP_CIDR);
});

test('named ports and uplinks, with access VLANs', (t) => {
  const o = parse('--port', 'web=/tmp/web.sock,vlan=10', '--port', 'db=/tmp/db.sock', '--uplink', 'tap:up0,vlan=10', '--uplink', 'stream:tcp:127.0.0.1:5000', '--dhcp', 'off');
  t.deepEqual(o.ports, [{ name: 'web', path: '/tmp/web.sock', vlan: 10 }, { name: 'db', path: '/tmp/db.sock', vlan: 0 }]);
  t.deepEqual(o.uplinks, [{ spec: 'tap:up0', vlan: 10 }, { spec: 'stream:tcp:127.0.0.1:5000', vlan: 0 }]);
  t.is(o.dhcp, 'off');
});

for (const argv of [
  ['--port', 'web'],
  ['--port', 'a=/x', '--port', 'a=/y'],
  ['--port', 'a=/x,vlan=4095'],
  ['--uplink', 'stream:tcp:host'],
  ['--tap', 't0', '--socket-path', '/x', '--uplink', 'tap:u'],
  ['--client'],
  ['--queues', '2'],
]) {
  test(`refused: ${argv.join(' ')}`, (t) => {
    t.throws(() => parse(...argv), { instanceOf: UsageError });
  });
}

test('ctl is a subcommand', (t) => {
  t.deepEqual(parseArgs(['ctl', '--json', 'ports']), { mode: 'ctl', argv: ['--json', 'ports'] });
});
