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

test('--dhcp-leases-per-port: a count, 0 for no limit; the default is left to the DHCP server', (t) => {
  t.is(parse().dhcpLeasesPerPort, undefined);
  t.is(parse('--dhcp-leases-per-port', '3').dhcpLeasesPerPort, 3);
  t.is(parse('--dhcp-leases-per-port', '0').dhcpLeasesPerPort, 0);
});

test('a named port locked to a MAC (port security), options in either order', (t) => {
  const o = parse('--port', 'web=/tmp/web.sock,mac=52:54:00:12:34:56,vlan=10', '--port', 'db=/tmp/db.sock,vlan=20,mac=52:54:00:12:34:57');
  t.deepEqual(o.ports, [
    { name: 'web', path: '/tmp/web.sock', vlan: 10, security: { mac: Uint8Array.of(0x52, 0x54, 0, 0x12, 0x34, 0x56), ips: [] } },
    { name: 'db', path: '/tmp/db.sock', vlan: 20, security: { mac: Uint8Array.of(0x52, 0x54, 0, 0x12, 0x34, 0x57), ips: [] } },
  ]);
});

test('a named port locked to IPv4 addresses too, in the order given', (t) => {
  const o = parse('--port', 'web=/tmp/web.sock,ip=10.0.0.5,mac=52:54:00:12:34:56,ip=192.168.1.5');
  t.deepEqual(o.ports[0].security?.ips, ['10.0.0.5', '192.168.1.5']);
});

test('IPv6 addresses are locked in canonical form, with the link-local address derived from the MAC', (t) => {
  const o = parse('--port', 'web=/tmp/web.sock,mac=52:54:00:12:34:56,ip=FD00:0:0::0005,ip=10.0.0.5');
  t.deepEqual(o.ports[0].security?.ips, ['fd00::5', '10.0.0.5', 'fe80::5054:ff:fe12:3456']);
  const listed = parse('--port', 'web=/tmp/web.sock,mac=52:54:00:12:34:56,ip=fe80::5054:ff:fe12:3456,ip=fd00::5');
  t.deepEqual(listed.ports[0].security?.ips, ['fe80::5054:ff:fe12:3456', 'fd00::5'], 'listed already: not added twice');
});

for (const [argv, message] of [
  [['--port', 'a=/x,mac=01:00:5e:00:00:01'], /--port mac: .* multicast/],
  [['--port', 'a=/x,mac=52:54:00'], /--port mac: .* not a MAC address/],
  [['--port', 'a=/x,vlan=10,vlan=20'], /,vlan= is given twice/],
  [['--port', 'a=/x,ip=10.0.0.5'], /,ip= needs ,mac= too/],
  [['--port', 'a=/x,mac=52:54:00:12:34:56,ip=10.0.0.5,ip=10.0.0.5'], /,ip=10.0.0.5 is given twice/],
  [['--port', 'a=/x,mac=52:54:00:12:34:56,ip=10.0.0'], /--port ip: '10.0.0' is not an IPv4 or IPv6 address/],
  [['--port', 'a=/x,mac=52:54:00:12:34:56,ip=fd00::5::1'], /--port ip: 'fd00::5::1' is not an IPv4 or IPv6 address/],
  [['--port', 'a=/x,mac=52:54:00:12:34:56,ip=fe80::1%eth0'], /--port ip: 'fe80::1%eth0' is not an IPv4 or IPv6 address/],
  [['--port', 'a=/x,mac=52:54:00:12:34:56,ip=ff02::1'], /--port ip: ff02::1 is not a host's address/],
  [['--port', 'a=/x,mac=52:54:00:12:34:56,ip=::'], /--port ip: :: is not a host's address/],
  [['--port', 'a=/x,mac=52:54:00:12:34:56,ip=::ffff:10.0.0.5'], /--port ip: ::ffff:10.0.0.5 is not a host's address/],
  [['--port', 'a=/x,mac=52:54:00:12:34:56,ip=fd00::5,ip=fd00:0::5'], /,ip=fd00::5 is given twice/],
  [['--port', 'a=/x,mac=52:54:00:12:34:56,ip=224.0.0.1'], /--port ip: 224.0.0.1 is not a host's address/],
  [['--port', 'a=/x,mac=52:54:00:12:34:56,ip=0.0.0.0'], /--port ip: 0.0.0.0 is not a host's address/],
  [['--uplink', 'tap:u,ip=10.0.0.5'], /,ip= is not an option of --uplink/],
  [['--uplink', 'tap:u,mac=52:54:00:12:34:56'], /,mac= is not an option of --uplink/],
  [['--dhcp-leases-per-port', '-1'], /--dhcp-leases-per-port/],
  [['--dhcp-leases-per-port', 'many'], /--dhcp-leases-per-port/],
  [['--tap', 't0', '--socket-path', '/x', '--dhcp-leases-per-port', '2'], /--dhcp-leases-per-port is for the switch/],
] as const) {
  test(`refused with a reason: ${argv.join(' ')}`, (t) => {
    t.throws(() => parse(...argv), { instanceOf: UsageError, message });
  });
}

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
