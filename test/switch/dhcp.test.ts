/**
 * The built-in DHCP server, byte level: client frames in, reply frames out (RFC 2131 / 2132).
 */
import test from 'ava';
import { DhcpServer, DhcpConfigError, parseCidr, OFFER_HOLD_MS, DECLINE_QUARANTINE_MS, type DhcpServerOptions } from '../../src/switch/dhcp-server.ts';
import { buildUdpFrame, internetChecksum, parseIpv4Address } from '../../src/switch/packet.ts';
import { ACK, DECLINE, DISCOVER, INFORM, NAK, OFFER, RELEASE, REQUEST, SERVER_MAC, clientFrame, mac, readReply, type ClientMessage } from './dhcp-frames.ts';

function setUp(o: Partial<DhcpServerOptions> = {}) {
  const clock = { ms: 1_000_000 };
  const server = new DhcpServer({ cidr: '10.0.2.0/24', serverMac: SERVER_MAC, now: () => clock.ms, ...o });
  /** Sends one client message (from guest port `port`, if given); returns the decoded replies. */
  const send = (m: ClientMessage, port?: string) => server.handleFrame(clientFrame(m), port).map(readReply);
  const one = (m: ClientMessage, port?: string) => {
    const replies = send(m, port);
    if (replies.length !== 1) throw new Error(`expected one reply, got ${replies.length}`);
    return replies[0];
  };
  /** DISCOVER → OFFER → REQUEST → ACK; returns the bound address. */
  const bind = (clientMac: Uint8Array, extra: Partial<ClientMessage> = {}, port?: string) => {
    const offer = one({ mac: clientMac, type: DISCOVER, ...extra }, port);
    const ack = one({ mac: clientMac, type: REQUEST, requested: offer.yiaddr, serverId: server.serverIp, ...extra }, port);
    if (ack.type !== ACK) throw new Error(`expected ACK, got type ${ack.type}`);
    return ack.yiaddr;
  };
  return { server, clock, send, one, bind };
}

test('parseCidr: subnet, mask, broadcast; host bits cleared', (t) => {
  const s = parseCidr('10.0.2.15/24');
  t.is(s.cidr, '10.0.2.0/24');
  t.is(s.mask, 0xffffff00);
  t.is(s.network, 0x0a000200);
  t.is(s.broadcast, 0x0a0002ff);
  t.is(parseCidr('192.168.100.0/30').broadcast, 0xc0a86403);
});

for (const bad of ['10.0.2.0/33', '300.1.1.1/24', '10.0.2.0/31', '10.0.2.1/32', '10.0.2.0', '10.0.2/24', 'x/24', '10.0.2.0/-1', '', '010.0.2.0/24', '10.0.0.0/7']) {
  test(`parseCidr rejects '${bad}' with VU_ERR_BAD_CIDR`, (t) => {
    const error = t.throws(() => parseCidr(bad), { instanceOf: DhcpConfigError });
    t.is(error?.code, 'VU_ERR_BAD_CIDR');
    t.true(error!.message.includes(bad));
  });
}

test('bad server options: VU_ERR_BAD_DHCP_CONFIG, or VU_ERR_BAD_CIDR for the subnet', (t) => {
  const make = (o: Partial<DhcpServerOptions>) => () => new DhcpServer({ cidr: '10.0.2.0/24', serverMac: SERVER_MAC, ...o });
  t.is(t.throws(make({ serverIp: '10.0.3.1' }), { instanceOf: DhcpConfigError })?.code, 'VU_ERR_BAD_DHCP_CONFIG');
  t.is(t.throws(make({ serverIp: '10.0.2.255' }), { instanceOf: DhcpConfigError })?.code, 'VU_ERR_BAD_DHCP_CONFIG');
  t.is(t.throws(make({ router: '1.2.3.4' }), { instanceOf: DhcpConfigError })?.code, 'VU_ERR_BAD_DHCP_CONFIG');
  t.is(t.throws(make({ leaseSeconds: 0 }), { instanceOf: DhcpConfigError })?.code, 'VU_ERR_BAD_DHCP_CONFIG');
  t.is(t.throws(make({ mtu: 20 }), { instanceOf: DhcpConfigError })?.code, 'VU_ERR_BAD_DHCP_CONFIG');
  t.is(t.throws(make({ dns: ['8.8.8'] }), { instanceOf: DhcpConfigError })?.code, 'VU_ERR_BAD_DHCP_CONFIG');
  t.is(t.throws(make({ leasesPerPort: -1 }), { instanceOf: DhcpConfigError })?.code, 'VU_ERR_BAD_DHCP_CONFIG');
  t.is(t.throws(make({ leasesPerPort: 1.5 }), { instanceOf: DhcpConfigError })?.code, 'VU_ERR_BAD_DHCP_CONFIG');
  t.is(t.throws(make({ cidr: '10.0.2.0/30', router: '10.0.2.2' }), { instanceOf: DhcpConfigError })?.code, 'VU_ERR_BAD_CIDR');
});

test('internetChecksum: the RFC 1071 worked IPv4 header', (t) => {
  const header = Uint8Array.from([0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7]);
  t.is(internetChecksum(header), 0xb861);
});

test('isDhcpRequestFrame: IPv4 UDP to port 67 only', (t) => {
  const discover = clientFrame({ mac: mac(1), type: DISCOVER });
  t.true(DhcpServer.isDhcpRequestFrame(discover));
  const toClientPort = discover.slice();
  toClientPort[37] = 68;
  t.false(DhcpServer.isDhcpRequestFrame(toClientPort));
  const arp = discover.slice();
  arp[13] = 0x06;
  t.false(DhcpServer.isDhcpRequestFrame(arp));
  const tcp = discover.slice();
  tcp[23] = 6;
  t.false(DhcpServer.isDhcpRequestFrame(tcp));
  t.false(DhcpServer.isDhcpRequestFrame(discover.subarray(0, 40)));
});

test('DISCOVER → OFFER: broadcast, addresses, and the options Linux clients need', (t) => {
  const { one } = setUp();
  const offer = one({ mac: mac(1), type: DISCOVER, xid: 0xdeadbeef });
  t.is(offer.type, OFFER);
  t.is(offer.dstMac, 'ff:ff:ff:ff:ff:ff');
  t.is(offer.srcMac, '02:00:00:00:00:01');
  t.is(offer.srcIp, '10.0.2.1');
  t.is(offer.dstIp, '255.255.255.255');
  t.is(offer.srcPort, 67);
  t.is(offer.dstPort, 68);
  t.is(offer.message.op, 2);
  t.is(offer.message.xid, 0xdeadbeef);
  t.is(offer.message.flags, 0x8000);
  t.deepEqual(Array.from(offer.message.chaddr.subarray(0, 6)), Array.from(mac(1)));
  t.is(offer.yiaddr, '10.0.2.2');
  t.is(offer.message.ciaddr, 0);
  t.deepEqual(offer.option(54), [10, 0, 2, 1]); // server identifier
  t.is(offer.option32(51), 3600); // lease time
  t.is(offer.option32(58), 1800); // T1
  t.is(offer.option32(59), 3150); // T2
  t.deepEqual(offer.option(1), [255, 255, 255, 0]);
  t.deepEqual(offer.option(28), [10, 0, 2, 255]);
  t.is(offer.option(3), undefined, 'no router unless configured');
  t.is(offer.option(6), undefined, 'no DNS unless configured');
  t.is(offer.option(26), undefined, 'no MTU unless configured');
  t.true(offer.message.options.size > 0);
});

test('router, DNS and MTU options when configured', (t) => {
  const { one } = setUp({ router: '10.0.2.254', dns: ['10.0.2.3', '9.9.9.9'], mtu: 1400, leaseSeconds: 600 });
  const offer = one({ mac: mac(1), type: DISCOVER });
  t.deepEqual(offer.option(3), [10, 0, 2, 254]);
  t.deepEqual(offer.option(6), [10, 0, 2, 3, 9, 9, 9, 9]);
  t.deepEqual(offer.option(26), [0x05, 0x78]);
  t.is(offer.option32(51), 600);
});

test('no BROADCAST flag: OFFER and ACK unicast to chaddr / yiaddr (§4.1)', (t) => {
  const { one } = setUp();
  const offer = one({ mac: mac(7), type: DISCOVER, broadcast: false });
  t.is(offer.dstMac, '52:54:00:00:00:07');
  t.is(offer.dstIp, '10.0.2.2');
  const ack = one({ mac: mac(7), type: REQUEST, broadcast: false, requested: offer.yiaddr, serverId: '10.0.2.1' });
  t.is(ack.type, ACK);
  t.is(ack.dstIp, '10.0.2.2');
});

test('SELECTING REQUEST → ACK and a bound lease', (t) => {
  const { one, server, clock } = setUp();
  const offer = one({ mac: mac(1), type: DISCOVER });
  t.deepEqual(server.leases(), [], 'an offer is not a lease');
  const ack = one({ mac: mac(1), type: REQUEST, requested: offer.yiaddr, serverId: '10.0.2.1' });
  t.is(ack.type, ACK);
  t.is(ack.yiaddr, '10.0.2.2');
  t.is(ack.dstIp, '255.255.255.255');
  t.is(ack.option32(51), 3600);
  t.deepEqual(ack.option(54), [10, 0, 2, 1]);
  t.deepEqual(server.leases(), [{ mac: '52:54:00:00:00:01', ip: '10.0.2.2', expiresAt: clock.ms + 3600_000 }]);
  t.like(server.counters(), { discover: 1, offer: 1, request: 1, ack: 1, nak: 0 });
});

test('RENEWING (unicast, ciaddr) and REBINDING (broadcast, ciaddr): ACK unicast to ciaddr, lease extended', (t) => {
  const { one, bind, server, clock } = setUp();
  const address = bind(mac(1));
  clock.ms += 1800_000; // T1
  const renew = one({ mac: mac(1), type: REQUEST, broadcast: false, ciaddr: address, srcIp: address, dstIp: '10.0.2.1' });
  t.is(renew.type, ACK);
  t.is(renew.yiaddr, address);
  t.is(renew.dstIp, address);
  t.is(renew.dstMac, '52:54:00:00:00:01');
  t.is(renew.message.ciaddr, renew.message.yiaddr);
  t.is(server.leases()[0].expiresAt, clock.ms + 3600_000);
  clock.ms += 3150_000; // T2
  const rebind = one({ mac: mac(1), type: REQUEST, ciaddr: address, srcIp: address });
  t.is(rebind.type, ACK);
  t.is(rebind.dstIp, address, 'ciaddr set: unicast even with the BROADCAST flag');
  t.is(server.leases()[0].expiresAt, clock.ms + 3600_000);
});

test('INIT-REBOOT: ACK for the own address, also with no record (after a restart)', (t) => {
  const { one, bind } = setUp();
  const address = bind(mac(1));
  t.is(one({ mac: mac(1), type: REQUEST, requested: address }).type, ACK);
  const fresh = setUp();
  const ack = fresh.one({ mac: mac(9), type: REQUEST, requested: '10.0.2.77' });
  t.is(ack.type, ACK);
  t.is(ack.yiaddr, '10.0.2.77');
  t.is(fresh.server.leases()[0].ip, '10.0.2.77');
});

test('NAK for an address held by another client, outside the pool or the subnet', (t) => {
  const { one, bind, server } = setUp();
  const taken = bind(mac(1));
  for (const requested of [taken, '10.0.2.1', '10.0.2.255', '192.168.1.5']) {
    const nak = one({ mac: mac(2), type: REQUEST, requested, broadcast: false });
    t.is(nak.type, NAK, requested);
    t.is(nak.dstIp, '255.255.255.255', 'NAK is always broadcast');
    t.is(nak.dstMac, 'ff:ff:ff:ff:ff:ff');
    t.is(nak.yiaddr, '0.0.0.0');
    t.deepEqual(nak.option(54), [10, 0, 2, 1]);
    t.truthy(nak.option(56), 'a reason text');
    t.is(nak.option(51), undefined);
  }
  t.is(server.counters().nak, 4);
  t.is(server.leases().length, 1, 'nothing changed');
});

test('same MAC → same address; two MACs → different addresses', (t) => {
  const { bind, one, server } = setUp();
  const a = bind(mac(1));
  const b = bind(mac(2));
  t.not(a, b);
  t.is(one({ mac: mac(1), type: DISCOVER }).yiaddr, a);
  t.is(bind(mac(1)), a);
  t.is(server.leases().length, 2);
});

test('client identifier is the lease key when present, and echoed (RFC 6842)', (t) => {
  const { bind, one } = setUp();
  const id = Uint8Array.of(0xff, 1, 2, 3, 4);
  const a = bind(mac(1), { clientId: id });
  t.is(bind(mac(2), { clientId: id }), a, 'same client id, other MAC: same address');
  t.not(bind(mac(1), { clientId: Uint8Array.of(1, 9, 9, 9, 9, 9, 9) }), a, 'same MAC, other client id: another client');
  t.deepEqual(one({ mac: mac(1), type: DISCOVER, clientId: id }).option(61), Array.from(id));
});

test('pool full: a /29 leases 5 addresses, the 6th client gets no offer and is counted', (t) => {
  const lines: string[] = [];
  const { bind, send, server } = setUp({ cidr: '10.9.9.0/29', log: { warn: (m: string) => lines.push(m) } as never });
  const addresses = [1, 2, 3, 4, 5].map((n) => bind(mac(n)));
  t.deepEqual(addresses, ['10.9.9.2', '10.9.9.3', '10.9.9.4', '10.9.9.5', '10.9.9.6']);
  t.deepEqual(send({ mac: mac(6), type: DISCOVER }), []);
  t.is(server.counters().poolExhausted, 1);
  t.true(lines.some((l) => l.includes('pool full')));
});

test('a guest port holds at most leasesPerPort clients: a new one gets no OFFER and a NAK; other ports, uplinks and the own clients go on', (t) => {
  const lines: string[] = [];
  const { bind, send, one, server } = setUp({ leasesPerPort: 3, log: { warn: (m: string) => lines.push(m), debug: () => {} } as never });
  const addresses = [1, 2, 3].map((n) => bind(mac(n), {}, 'guest1'));
  t.deepEqual(send({ mac: mac(4), type: DISCOVER }, 'guest1'), [], 'a fourth client on guest1 gets no offer');
  const nak = one({ mac: mac(4), type: REQUEST, requested: '10.0.2.200' }, 'guest1');
  t.is(nak.type, NAK, 'nor an address it asks for outright (INIT-REBOOT)');
  t.deepEqual(send({ mac: mac(5), type: DISCOVER, clientId: Uint8Array.of(1, 2, 3) }, 'guest1'), [], 'an invented client id is a new client');
  t.like(server.counters(), { portLimit: 3 });
  t.is(lines.filter((l) => l.includes('more addresses than it may hold')).length, 1, 'logged once, not per frame');
  t.is(bind(mac(1), {}, 'guest1'), addresses[0], 'a client with an address renews it at the limit');
  t.is(bind(mac(6), {}, 'guest2'), '10.0.2.5', 'another guest port is not affected');
  t.is(bind(mac(7)), '10.0.2.6', 'an uplink (no guest port) is not limited');
});

test('a released or expired lease makes room on its port; leasesPerPort 0 is no limit', (t) => {
  const { bind, send, clock } = setUp({ leasesPerPort: 2 });
  const [first] = [1, 2].map((n) => bind(mac(n), {}, 'guest1'));
  t.deepEqual(send({ mac: mac(3), type: DISCOVER }, 'guest1'), []);
  send({ mac: mac(1), type: RELEASE, ciaddr: first, serverId: '10.0.2.1', srcIp: first, dstIp: '10.0.2.1' }, 'guest1');
  t.is(bind(mac(3), {}, 'guest1'), '10.0.2.4', 'released: room for one more');
  t.deepEqual(send({ mac: mac(4), type: DISCOVER }, 'guest1'), []);
  clock.ms += 3600_000;
  t.is(bind(mac(4), {}, 'guest1'), '10.0.2.5', 'expired: room again');

  const unlimited = setUp({ leasesPerPort: 0 });
  t.deepEqual([1, 2, 3, 4, 5].map((n) => unlimited.bind(mac(n), {}, 'guest1')).length, 5);
  t.is(unlimited.server.counters().portLimit, 0);
});

const ip = (text: string) => parseIpv4Address(text)!;

test('a port locked to IPv4 addresses: its guest gets the first one in the subnet, and nobody else gets it', (t) => {
  const { bind, send, one, server } = setUp();
  t.is(server.lockPort('vm1', [ip('192.168.5.5'), ip('10.0.2.2'), ip('10.0.2.3')]), ip('10.0.2.2'));
  t.is(bind(mac(1), {}, 'vm1'), '10.0.2.2');
  t.is(bind(mac(2)), '10.0.2.3', 'others get the pool without it (its other addresses are not set aside)');
  const asked = one({ mac: mac(3), type: REQUEST, requested: '10.0.2.2' }, 'guest1');
  t.is(asked.type, NAK, 'another client asking for it outright');
  const wrong = one({ mac: mac(1), type: REQUEST, requested: '10.0.2.7' }, 'vm1');
  t.is(wrong.type, NAK, 'the locked port asking for another address');
  t.is(bind(mac(4), { clientId: Uint8Array.of(9) }, 'vm1'), '10.0.2.2', 'another client on the port (the guest rebooted into another DHCP client) takes it over');
  t.deepEqual(send({ mac: mac(5), type: DISCOVER }, 'guest2').map((r) => r.yiaddr), ['10.0.2.4']);
});

test("another port copying the client id of a locked port's guest cannot take its address, and its RELEASE changes nothing that lasts", (t) => {
  const { bind, send, one, server } = setUp();
  server.lockPort('vm1', [ip('10.0.2.50')]);
  const victim = { clientId: Uint8Array.of(7, 7) };
  t.is(bind(mac(1), victim, 'vm1'), '10.0.2.50');
  t.is(one({ mac: mac(2), type: REQUEST, requested: '10.0.2.50', ...victim }, 'guest2').type, NAK, 'the copy asking for it outright');
  t.not(send({ mac: mac(2), type: DISCOVER, ...victim }, 'guest2')[0]?.yiaddr, '10.0.2.50', 'nor is it offered');
  send({ mac: mac(2), type: RELEASE, ciaddr: '10.0.2.50', serverId: '10.0.2.1', srcIp: '10.0.2.50', dstIp: '10.0.2.1', ...victim }, 'guest2');
  const renewal = one({ mac: mac(1), type: REQUEST, ciaddr: '10.0.2.50', srcIp: '10.0.2.50', dstIp: '10.0.2.1', ...victim }, 'vm1');
  t.like(renewal, { type: ACK, yiaddr: '10.0.2.50' }, 'the guest renews its address');
});

test('the two ends of a migration lock one address; removing the lock returns it to the pool', (t) => {
  const { bind, server } = setUp({ cidr: '10.9.9.0/29' });
  server.lockPort('vm1-source', [ip('10.9.9.2')]);
  server.lockPort('vm1-destination', [ip('10.9.9.2')]);
  t.is(bind(mac(1), {}, 'vm1-source'), '10.9.9.2');
  t.is(bind(mac(1), {}, 'vm1-destination'), '10.9.9.2', 'the migrated guest renews on the destination port');
  server.lockPort('vm1-source', undefined);
  t.is(bind(mac(2)), '10.9.9.3', 'still set aside for the destination port');
  server.lockPort('vm1-destination', undefined);
  t.deepEqual([3, 4, 5].map((n) => bind(mac(n))), ['10.9.9.4', '10.9.9.5', '10.9.9.6']);
  t.throws(() => bind(mac(6)), undefined, 'the pool is full: 10.9.9.2 is leased to the guest, as a plain lease now');
});

test('a locked port with no address in the subnet, or one still leased to another client, gets no offer and a NAK', (t) => {
  const { bind, send, one, server, clock } = setUp();
  t.is(server.lockPort('vm1', [ip('192.168.5.5'), ip('10.0.2.1'), ip('10.0.2.255')]), undefined, 'outside, the server itself, the broadcast');
  t.deepEqual(send({ mac: mac(1), type: DISCOVER }, 'vm1'), []);
  t.is(one({ mac: mac(1), type: REQUEST, requested: '10.0.2.9' }, 'vm1').type, NAK, 'nor a pool address it asks for');
  t.is(bind(mac(2), {}, 'guest1'), '10.0.2.2');
  server.lockPort('vm2', [ip('10.0.2.2')]);
  t.deepEqual(send({ mac: mac(3), type: DISCOVER }, 'vm2'), [], 'a lease from before the lock keeps the address until it ends');
  const renewal = one({ mac: mac(2), type: REQUEST, ciaddr: '10.0.2.2', srcIp: '10.0.2.2', dstIp: '10.0.2.1' }, 'guest1');
  t.is(renewal.type, NAK, 'but is not renewed: the address is the locked port\'s now');
  clock.ms += 3600_000;
  t.is(bind(mac(3), {}, 'vm2'), '10.0.2.2', 'once the lease ended');
});

test('a port locked to IPv6 addresses only gets no IPv4 address (it could not send from one)', (t) => {
  const { send, server, bind } = setUp();
  t.is(server.lockPort('vm1', []), undefined);
  t.deepEqual(send({ mac: mac(1), type: DISCOVER }, 'vm1'), []);
  server.lockPort('vm1', undefined);
  t.is(bind(mac(1), {}, 'vm1'), '10.0.2.2', 'unlocked, it is a client as any other');
});

test('offers reserve their address until OFFER_HOLD_MS', (t) => {
  const { one, send, clock } = setUp({ cidr: '10.9.9.0/30' });
  t.is(one({ mac: mac(1), type: DISCOVER }).yiaddr, '10.9.9.2');
  t.deepEqual(send({ mac: mac(2), type: DISCOVER }), [], 'the only address is reserved');
  clock.ms += OFFER_HOLD_MS;
  t.is(one({ mac: mac(2), type: DISCOVER }).yiaddr, '10.9.9.2');
});

test('RELEASE frees the address for others; the client gets it back if still free', (t) => {
  const { bind, send, server, one, clock } = setUp({ cidr: '10.9.9.0/29' });
  const addresses = [1, 2, 3, 4, 5].map((n) => bind(mac(n)));
  t.deepEqual(send({ mac: mac(3), type: RELEASE, ciaddr: addresses[2], serverId: '10.9.9.1', srcIp: addresses[2], dstIp: '10.9.9.1' }), []);
  t.is(server.leases().length, 4);
  t.is(server.counters().release, 1);
  t.is(one({ mac: mac(3), type: DISCOVER }).yiaddr, addresses[2], 'back to the releasing client');
  clock.ms += OFFER_HOLD_MS;
  t.is(bind(mac(6)), addresses[2], 'or to another client when the pool has nothing else');
});

test('RELEASE for another server or another address changes nothing', (t) => {
  const { bind, send, server } = setUp();
  const a = bind(mac(1));
  send({ mac: mac(1), type: RELEASE, ciaddr: a, serverId: '10.0.2.99' });
  send({ mac: mac(2), type: RELEASE, ciaddr: a, serverId: '10.0.2.1' });
  t.is(server.leases().length, 1);
});

test('leases expire: gone from leases(), address reusable, and the same client gets it back first', (t) => {
  const { bind, one, send, server, clock } = setUp({ cidr: '10.9.9.0/30' });
  const a = bind(mac(1));
  t.deepEqual(send({ mac: mac(2), type: DISCOVER }), []);
  clock.ms += 3600_000 - 1;
  t.is(server.leases().length, 1);
  clock.ms += 1;
  t.deepEqual(server.leases(), []);
  t.is(one({ mac: mac(1), type: DISCOVER }).yiaddr, a);
  clock.ms += OFFER_HOLD_MS;
  t.is(bind(mac(2)), a);
  t.is(one({ mac: mac(1), type: REQUEST, requested: a }).type, NAK, 'the old holder cannot take it back now');
});

test('never-used addresses go first, then the longest-expired one', (t) => {
  const { bind, send, clock } = setUp({ cidr: '10.9.9.0/29' });
  const a = bind(mac(1));
  clock.ms += 3600_000;
  t.deepEqual([2, 3, 4, 5].map((n) => bind(mac(n))), ['10.9.9.3', '10.9.9.4', '10.9.9.5', '10.9.9.6']);
  t.is(bind(mac(6)), a);
  t.deepEqual(send({ mac: mac(1), type: DISCOVER }), [], 'its old holder finds the pool full');
});

test('SELECTING another server: no reply, our offer freed', (t) => {
  const { one, send, server } = setUp({ cidr: '10.9.9.0/30' });
  const offer = one({ mac: mac(1), type: DISCOVER });
  t.deepEqual(send({ mac: mac(1), type: REQUEST, requested: offer.yiaddr, serverId: '10.9.9.200' }), []);
  t.is(one({ mac: mac(2), type: DISCOVER }).yiaddr, offer.yiaddr);
  t.is(server.counters().ignored, 1);
});

test('DECLINE: the address is skipped until the quarantine ends', (t) => {
  const { bind, one, send, server, clock } = setUp();
  const a = bind(mac(1));
  t.deepEqual(send({ mac: mac(1), type: DECLINE, requested: a, serverId: '10.0.2.1' }), []);
  t.deepEqual(server.leases(), []);
  const next = one({ mac: mac(1), type: DISCOVER }).yiaddr;
  t.not(next, a);
  t.is(one({ mac: mac(2), type: REQUEST, requested: a }).type, NAK);
  clock.ms += DECLINE_QUARANTINE_MS;
  t.is(one({ mac: mac(2), type: REQUEST, requested: a }).type, ACK);
});

test('INFORM: ACK unicast to ciaddr with parameters and no lease', (t) => {
  const { one, server } = setUp({ router: '10.0.2.1' });
  const ack = one({ mac: mac(1), type: INFORM, ciaddr: '10.0.2.50', srcIp: '10.0.2.50' });
  t.is(ack.type, ACK);
  t.is(ack.dstIp, '10.0.2.50');
  t.is(ack.yiaddr, '0.0.0.0');
  t.is(ack.option(51), undefined);
  t.deepEqual(ack.option(3), [10, 0, 2, 1]);
  t.deepEqual(server.leases(), []);
});

test('relay (giaddr set): reply to the relay on port 67', (t) => {
  const { one } = setUp();
  const offer = one({ mac: mac(1), type: DISCOVER, giaddr: '10.0.2.254' });
  t.is(offer.dstIp, '10.0.2.254');
  t.is(offer.dstPort, 67);
});

test('a request unicast to another server is not ours', (t) => {
  const { send, server } = setUp();
  t.deepEqual(send({ mac: mac(1), type: REQUEST, ciaddr: '10.0.2.5', srcIp: '10.0.2.5', dstIp: '10.0.2.9' }), []);
  t.is(server.counters().ignored, 1);
});

test('ARP: "who has <server address>" is answered, other ARP and non-DHCP frames are not accepted', (t) => {
  const { server } = setUp();
  const request = (targetIp: number[], senderIp = [10, 0, 2, 2]) =>
    Uint8Array.from([...Array(6).fill(0xff), ...mac(1), 0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1, ...mac(1), ...senderIp, 0, 0, 0, 0, 0, 0, ...targetIp, ...Array(18).fill(0)]);
  const forServer = request([10, 0, 2, 1]);
  t.true(server.accepts(forServer));
  t.false(server.accepts(request([10, 0, 2, 9])));
  t.true(server.accepts(clientFrame({ mac: mac(1), type: DISCOVER })));
  const [reply] = server.handleFrame(forServer);
  t.deepEqual(
    Array.from(reply),
    [...mac(1), ...SERVER_MAC, 0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 2, ...SERVER_MAC, 10, 0, 2, 1, ...mac(1), 10, 0, 2, 2],
  );
  const [probeReply] = server.handleFrame(request([10, 0, 2, 1], [0, 0, 0, 0]));
  t.deepEqual(Array.from(probeReply.subarray(0, 6)), Array(6).fill(0xff), 'a probe is answered by broadcast');
  t.deepEqual(server.handleFrame(request([10, 0, 2, 9])), []);
  t.deepEqual(server.handleFrame(forServer.subarray(0, 41)), []);
  t.is(server.counters().arpReplies, 2);
  const ipv6 = Uint8Array.from([0x33, 0x33, 0, 0, 0, 0x16, ...mac(1), 0x86, 0xdd, ...Array(76).fill(0)]);
  t.deepEqual(server.handleFrame(ipv6), []);
  t.like(server.counters(), { malformed: 0, ignored: 0 }, 'other traffic is not counted');
});

test('malformed: a valid DISCOVER cut at every offset gives [] and never throws', (t) => {
  const { server } = setUp();
  const discover = clientFrame({ mac: mac(1), type: DISCOVER });
  for (let length = 0; length < discover.length; length++) {
    t.deepEqual(server.handleFrame(discover.slice(0, length)), [], `cut at ${length}`);
  }
  const lookLikeDhcp = Array.from({ length: discover.length }, (_, n) => DhcpServer.isDhcpRequestFrame(discover.subarray(0, n))).filter(Boolean).length;
  t.true(lookLikeDhcp > 0);
  t.is(server.counters().malformed, lookLikeDhcp, 'cuts that pass the cheap filter are counted as malformed');
  t.deepEqual(server.leases(), []);
});

test('malformed DHCP payloads with valid IP/UDP: truncated, wrong op, bad cookie, options past the end', (t) => {
  const { server } = setUp();
  const good = { mac: mac(1), type: DISCOVER } as const;
  const full = clientFrame(good);
  // Every cut of the DHCP payload up to the message type option, in a correct UDP/IP frame.
  for (let length = 0; length < 243; length++) {
    t.deepEqual(server.handleFrame(rewrap(full.subarray(42, 42 + length))), [], `payload cut at ${length}`);
  }
  t.deepEqual(server.handleFrame(clientFrame({ ...good, op: 2 })), [], 'BOOTREPLY op');
  t.deepEqual(server.handleFrame(clientFrame({ ...good, cookie: [99, 130, 83, 98] })), [], 'bad cookie');
  t.deepEqual(server.handleFrame(rewrap(clientPayloadWithOptions([53, 1, 1, 61, 200, 1, 2, 3]))), [], 'option runs past the end');
  t.deepEqual(server.handleFrame(rewrap(clientPayloadWithOptions([53, 1, 1, 12]))), [], 'option code without its length');
  t.deepEqual(server.handleFrame(rewrap(clientPayloadWithOptions([55, 2, 1, 3]))), [], 'no message type');
  t.deepEqual(server.handleFrame(rewrap(clientPayloadWithOptions([53, 2, 1, 1]))), [], 'message type of length 2');
  t.deepEqual(server.handleFrame(clientFrame({ ...good, type: 2 })), [], 'a server message type');
  t.deepEqual(server.handleFrame(clientFrame({ ...good, type: 99 })), [], 'an unknown message type');
  const badIpChecksum = full.slice();
  badIpChecksum[24] ^= 1;
  t.deepEqual(server.handleFrame(badIpChecksum), [], 'IP header checksum');
  const badUdpLength = full.slice();
  badUdpLength[38] = 0x7f; // UDP length past the IP payload
  t.deepEqual(server.handleFrame(badUdpLength), [], 'UDP length');
  const fragment = full.slice();
  fragment[20] = 0x20; // MF
  t.deepEqual(server.handleFrame(fragment), [], 'fragment');
  t.deepEqual(server.leases(), []);
  t.is(server.counters().offer, 0);
  // Still serving after all of that.
  t.is(readReply(server.handleFrame(full)[0]).type, OFFER);
});

test('a partial UDP checksum (checksum offload: pseudo-header sum only) is accepted', (t) => {
  const { server } = setUp();
  const frame = clientFrame({ mac: mac(1), type: DISCOVER });
  frame[40] = 0x12;
  frame[41] = 0x34;
  t.is(readReply(server.handleFrame(frame)[0]).type, OFFER);
});

test('a missing END option after whole options is tolerated', (t) => {
  const { server } = setUp();
  const payload = clientPayloadWithOptions([53, 1, 1]);
  t.is(readReply(server.handleFrame(rewrap(payload))[0]).type, OFFER);
});

test('random byte flips of a valid DISCOVER never throw', (t) => {
  const { server } = setUp();
  const discover = clientFrame({ mac: mac(1), type: DISCOVER });
  let seed = 12345;
  const random = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  for (let i = 0; i < 2000; i++) {
    const frame = discover.slice();
    for (let flips = 1 + Math.floor(random() * 4); flips > 0; flips--) frame[Math.floor(random() * frame.length)] = Math.floor(random() * 256);
    t.notThrows(() => server.handleFrame(frame));
  }
});

/** A DHCP payload in a well-formed frame (correct lengths and checksums). */
function rewrap(payload: Uint8Array): Uint8Array {
  return buildUdpFrame({ dstMac: new Uint8Array(6).fill(0xff), srcMac: mac(1), srcIp: 0, dstIp: 0xffffffff, srcPort: 68, dstPort: 67, payload });
}

/** The fixed fields and cookie of a DISCOVER from mac(1), followed by exactly `options`. */
function clientPayloadWithOptions(options: number[]): Uint8Array {
  const fixed = new Uint8Array(240);
  fixed.set([1, 1, 6, 0], 0);
  fixed.set(mac(1), 28);
  fixed.set([99, 130, 83, 99], 236);
  const bytes = new Uint8Array(240 + options.length);
  bytes.set(fixed, 0);
  bytes.set(options, 240);
  return bytes;
}
