/**
 * The session state machine against a recording data plane: every request's handling, REPLY_ACK,
 * failures, and that every fd that arrives is closed exactly once.
 */
import test from 'ava';
import { Session } from '../../src/backend/session.ts';
import { NetDevice } from '../../src/device/net-device.ts';
import { createLogger } from '../../src/log.ts';
import { encodeRequest } from '../../src/protocol/encode.ts';
import { decodeReply, decodeReplyAck } from '../../src/protocol/decode-reply.ts';
import { FrontendRequest as R } from '../../src/protocol/requests.ts';
import type { RequestInput } from '../../src/protocol/request-types.ts';
import type { RepliedRequest } from '../../src/protocol/reply-types.ts';
import { VhostUserProtocolFeature as P } from '../../src/protocol/protocol-features.ts';
import { VirtioFeature as F } from '../../src/protocol/virtio-features.ts';
import { featureMask } from '../../src/protocol/feature-bits.ts';
import { RecordingDataPlane } from '../helpers/recording-data-plane.ts';
import { DeviceStateDirection } from '../../src/protocol/payloads.ts';
import { encodeDeviceState } from '../../src/migration/device-state.ts';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

function setUp(queuePairs = 1) {
  const dataPlane = new RecordingDataPlane();
  const replies: Uint8Array[] = [];
  const closedByChannel: string[] = [];
  const closedFds: number[] = [];
  const logLines: string[] = [];
  const device = new NetDevice({ queuePairs, mac: Uint8Array.of(2, 0, 0, 0, 0, 1) });
  const session = new Session(
    device,
    dataPlane,
    { send: (bytes) => replies.push(bytes), close: (reason) => closedByChannel.push(reason) },
    createLogger('test', 'debug', (line) => logLines.push(line)),
    (fd) => closedFds.push(fd),
  );
  const send = (input: RequestInput, fds: number[] = []) => session.onMessage(encodeRequest(input), fds);
  const get = <K extends RepliedRequest>(input: RequestInput & { request: K }) => {
    send(input);
    return decodeReply(replies.pop()!, input.request);
  };
  const ack = (input: RequestInput, fds: number[] = []) => {
    send({ ...input, needReply: true } as RequestInput, fds);
    return decodeReplyAck(replies.pop()!, input.request);
  };
  const withProtocol = (...features: P[]) => send({ request: R.SET_PROTOCOL_FEATURES, features: featureMask(...features) });
  return { session, dataPlane, replies, closedByChannel, closedFds, logLines, send, get, ack, withProtocol, device };
}

test('GET_FEATURES offers VERSION_1, MRG_RXBUF, offloads and PROTOCOL_FEATURES; SET_FEATURES reaches the data plane', (t) => {
  const s = setUp();
  const offered = s.get({ request: R.GET_FEATURES });
  for (const bit of [F.VIRTIO_F_VERSION_1, F.VIRTIO_NET_F_MRG_RXBUF, F.VIRTIO_NET_F_CSUM, F.VIRTIO_NET_F_HOST_TSO4, F.VIRTIO_NET_F_GUEST_TSO4, F.VIRTIO_RING_F_EVENT_IDX, F.VHOST_USER_F_PROTOCOL_FEATURES]) {
    t.not(offered & featureMask(bit), 0n, F[bit]);
  }
  t.is(offered & featureMask(F.VIRTIO_NET_F_MQ), 0n, 'MQ only with more than one queue pair');
  s.send({ request: R.SET_FEATURES, features: offered });
  t.deepEqual(s.dataPlane.calls, [['setFeatures', offered]]);
  t.true(s.logLines.some((l) => l.includes('features negotiated') && l.includes('VIRTIO_F_VERSION_1')));
});

test('SET_FEATURES with a bit never offered fails with REPLY_ACK status 1 and changes nothing', (t) => {
  const s = setUp();
  s.withProtocol(P.REPLY_ACK);
  t.is(s.ack({ request: R.SET_FEATURES, features: featureMask(F.VIRTIO_NET_F_CTRL_VQ) }), 1n);
  t.deepEqual(s.dataPlane.calls, []);
  t.deepEqual(s.closedByChannel, []);
});

test('without REPLY_ACK negotiated no ack is sent even if NEED_REPLY is set', (t) => {
  const s = setUp();
  s.send({ request: R.SET_OWNER, needReply: true });
  t.is(s.replies.length, 0);
});

test('GET_QUEUE_NUM answers in queue pairs and needs PROTOCOL_F_MQ', (t) => {
  const s = setUp(4);
  s.withProtocol(P.MQ);
  t.is(s.get({ request: R.GET_QUEUE_NUM }), 4n);
  const offered = s.get({ request: R.GET_FEATURES });
  t.not(offered & featureMask(F.VIRTIO_NET_F_MQ), 0n);
});

test('GET_QUEUE_NUM without MQ negotiated closes the connection (its reply cannot say "failed")', (t) => {
  const s = setUp();
  s.send({ request: R.GET_QUEUE_NUM });
  t.is(s.replies.length, 0);
  t.is(s.closedByChannel.length, 1);
});

test('SET_MEM_TABLE hands every region fd to the data plane', (t) => {
  const s = setUp();
  s.withProtocol(P.REPLY_ACK);
  const region = (gpa: bigint) => ({ guestPhysAddr: gpa, memorySize: 0x1000n, userspaceAddr: 0x7000_0000n + gpa, mmapOffset: 0n });
  t.is(s.ack({ request: R.SET_MEM_TABLE, memTable: { numRegions: 2, padding: 0, regions: [region(0n), region(0x10000n)] } }, [40, 41]), 0n);
  t.deepEqual(s.dataPlane.calls, [['setMemTable', 2, [40, 41]]]);
  t.deepEqual(s.dataPlane.closedFds, [40, 41]);
  t.deepEqual(s.closedFds, [], 'the session closes nothing the data plane took');
});

test('a refused memory table fails the request; the connection stays', (t) => {
  const s = setUp();
  s.withProtocol(P.REPLY_ACK);
  s.dataPlane.failNext = 'setMemTable';
  const region = { guestPhysAddr: 0n, memorySize: 0x1000n, userspaceAddr: 0n, mmapOffset: 0n };
  t.is(s.ack({ request: R.SET_MEM_TABLE, memTable: { numRegions: 1, padding: 0, regions: [region] } }, [40]), 1n);
  t.deepEqual(s.closedByChannel, []);
  t.true(s.logLines.some((l) => l.includes('VU_ERR_GUEST_MEMORY')));
});

for (const num of [0, 3, 100, 65536]) {
  test(`SET_VRING_NUM ${num} is refused (power of two, at most 32768)`, (t) => {
    const s = setUp();
    s.withProtocol(P.REPLY_ACK);
    t.is(s.ack({ request: R.SET_VRING_NUM, state: { index: 0, num } }), 1n);
    t.deepEqual(s.dataPlane.calls, []);
  });
}

test('a queue index past the device is refused, and its kick fd is closed', (t) => {
  const s = setUp();
  s.withProtocol(P.REPLY_ACK);
  t.is(s.ack({ request: R.SET_VRING_KICK, file: { index: 2, noFd: false } }, [55]), 1n);
  t.deepEqual(s.closedFds, [55]);
  t.deepEqual(s.dataPlane.calls, []);
});

test('without PROTOCOL_FEATURES a ring is enabled when it starts; with it, only by SET_VRING_ENABLE', (t) => {
  const legacy = setUp();
  legacy.send({ request: R.SET_FEATURES, features: featureMask(F.VIRTIO_F_VERSION_1) });
  legacy.send({ request: R.SET_VRING_KICK, file: { index: 0, noFd: false } }, [7]);
  t.deepEqual(legacy.dataPlane.calls.slice(1), [['setVringKick', 0, 7], ['setVringEnable', 0, true]]);
  t.true(legacy.logLines.some((l) => l.includes('link up')));

  const modern = setUp();
  modern.send({ request: R.SET_FEATURES, features: featureMask(F.VIRTIO_F_VERSION_1, F.VHOST_USER_F_PROTOCOL_FEATURES) });
  modern.send({ request: R.SET_VRING_KICK, file: { index: 0, noFd: false } }, [7]);
  t.deepEqual(modern.dataPlane.calls.slice(1), [['setVringKick', 0, 7]]);
  modern.send({ request: R.SET_VRING_ENABLE, state: { index: 0, num: 1 } });
  t.deepEqual(modern.dataPlane.calls.at(-1), ['setVringEnable', 0, true]);
});

test('SET_VRING_CALL and SET_VRING_ERR with the "no fd" bit pass null', (t) => {
  const s = setUp();
  s.send({ request: R.SET_VRING_CALL, file: { index: 1, noFd: true } });
  s.send({ request: R.SET_VRING_ERR, file: { index: 1, noFd: true } });
  t.deepEqual(s.dataPlane.calls, [['setVringCall', 1, null], ['setVringErr', 1, null]]);
});

test('SET_VRING_KICK without fd (polling mode) is refused clearly', (t) => {
  const s = setUp();
  s.withProtocol(P.REPLY_ACK);
  t.is(s.ack({ request: R.SET_VRING_KICK, file: { index: 0, noFd: true } }), 1n);
  t.true(s.logLines.some((l) => l.includes('polling mode')));
});

test('GET_VRING_BASE stops the ring and returns where it stopped', (t) => {
  const s = setUp();
  s.send({ request: R.SET_VRING_BASE, state: { index: 1, num: 77 } });
  t.deepEqual(s.get({ request: R.GET_VRING_BASE, state: { index: 1, num: 0 } }), { index: 1, num: 77 });
  t.deepEqual(s.dataPlane.calls.at(-1), ['getVringBase', 1]);
});

test('packed rings (VIRTIO_F_RING_PACKED acked): any queue size up to 32768; the base carries the wrap counter, and a position past the ring is refused', (t) => {
  const s = setUp();
  s.withProtocol(P.REPLY_ACK);
  t.not(s.get({ request: R.GET_FEATURES }) & featureMask(F.VIRTIO_F_RING_PACKED), 0n, 'offered');
  s.send({ request: R.SET_FEATURES, features: featureMask(F.VIRTIO_F_VERSION_1, F.VIRTIO_F_RING_PACKED) });
  t.is(s.ack({ request: R.SET_VRING_NUM, state: { index: 0, num: 100 } }), 0n, 'not a power of two: fine for a packed ring');
  t.is(s.ack({ request: R.SET_VRING_NUM, state: { index: 0, num: 32769 } }), 1n);
  t.is(s.ack({ request: R.SET_VRING_BASE, state: { index: 0, num: 0x8000 | 100 } }), 1n, 'position 100 of a ring of 100');
  t.is(s.ack({ request: R.SET_VRING_BASE, state: { index: 0, num: 0x8063_8063 } }), 0n, 'used half (bits 16-31) as QEMU sends it');
  t.deepEqual(s.dataPlane.calls.at(-1), ['setVringBase', 0, 0x8063_8063]);
  t.is(s.session.vrings[0].nextAvail, 0x8063, 'the avail position and its wrap counter');
});

test('GET_CONFIG returns mac, link status, queue pairs and MTU at their offsets', (t) => {
  const s = setUp(2);
  s.withProtocol(P.CONFIG);
  const reply = s.get({ request: R.GET_CONFIG, config: { offset: 0, size: 12, flags: 0, payload: new Uint8Array(12) } });
  t.deepEqual([...reply.payload], [2, 0, 0, 0, 0, 1, 1, 0, 2, 0, 0xdc, 0x05]);
});

test('GET_CONFIG past the 256-byte space closes the connection', (t) => {
  const s = setUp();
  s.withProtocol(P.CONFIG);
  s.send({ request: R.GET_CONFIG, config: { offset: 250, size: 12, flags: 0, payload: new Uint8Array(12) } });
  t.is(s.closedByChannel.length, 1);
});

test('SET_STATUS / GET_STATUS round-trip with PROTOCOL_F_STATUS', (t) => {
  const s = setUp();
  s.withProtocol(P.STATUS);
  s.send({ request: R.SET_STATUS, status: 0xfn });
  t.is(s.get({ request: R.GET_STATUS }), 0xfn);
});

test('NET_SET_MTU checks the range', (t) => {
  const s = setUp();
  s.withProtocol(P.REPLY_ACK, P.MTU);
  t.is(s.ack({ request: R.NET_SET_MTU, mtu: 9000n }), 0n);
  t.is(s.device.mtu, 9000);
  t.is(s.ack({ request: R.NET_SET_MTU, mtu: 10n }), 1n);
});

test('a malformed message closes the connection and closes its fds', (t) => {
  const s = setUp();
  const bytes = encodeRequest({ request: R.SET_VRING_NUM, state: { index: 0, num: 256 } });
  s.session.onMessage(bytes.subarray(0, bytes.length - 1), [9, 10]);
  t.is(s.closedByChannel.length, 1);
  t.deepEqual(s.closedFds, [9, 10]);
});

test('an unknown request code closes the connection without a crash', (t) => {
  const s = setUp();
  const bytes = new Uint8Array(12);
  new DataView(bytes.buffer).setUint32(0, 99, true);
  new DataView(bytes.buffer).setUint32(4, 1, true);
  s.session.onMessage(bytes, []);
  t.is(s.closedByChannel.length, 1);
  t.true(s.logLines.some((l) => l.includes('VU_ERR_UNKNOWN_REQUEST')));
});

test('a known request this back-end does not implement fails with an ack, and its fd is closed', (t) => {
  const s = setUp();
  s.withProtocol(P.REPLY_ACK);
  t.is(s.ack({ request: R.SET_BACKEND_REQ_FD }, [12]), 1n);
  t.deepEqual(s.closedFds, [12]);
  t.true(s.logLines.some((l) => l.includes('SET_BACKEND_REQ_FD') && l.includes('not supported')));
});

test('teardown resets the data plane', (t) => {
  const s = setUp();
  s.session.teardown();
  t.deepEqual(s.dataPlane.calls, [['reset']]);
});

test('live migration is offered: VHOST_F_LOG_ALL, protocol features LOG_SHMFD and RARP', (t) => {
  const s = setUp();
  t.not(s.get({ request: R.GET_FEATURES }) & featureMask(F.VHOST_F_LOG_ALL), 0n);
  t.not(s.get({ request: R.GET_PROTOCOL_FEATURES }) & featureMask(P.LOG_SHMFD, P.RARP), 0n);
});

test('SET_LOG_BASE with LOG_SHMFD hands the log fd to the data plane and replies 0', (t) => {
  const s = setUp();
  s.withProtocol(P.LOG_SHMFD);
  s.send({ request: R.SET_LOG_BASE, log: { mmapSize: 0x1000n, mmapOffset: 0n } }, [33]);
  t.is(decodeReply(s.replies.pop()!, R.SET_LOG_BASE), 0n);
  t.deepEqual(s.dataPlane.calls, [['setLogBase', 0x1000n, 0n, 33]]);
  t.deepEqual(s.dataPlane.closedFds, [33]);
  t.deepEqual(s.closedByChannel, []);
});

test('SET_LOG_BASE without LOG_SHMFD or without an fd fails and closes the fd', (t) => {
  const s = setUp();
  s.withProtocol(P.REPLY_ACK);
  t.is(s.ack({ request: R.SET_LOG_BASE, log: { mmapSize: 0x1000n, mmapOffset: 0n } }, [34]), 1n);
  t.deepEqual(s.closedFds, [34]);
  s.withProtocol(P.REPLY_ACK, P.LOG_SHMFD);
  t.is(s.ack({ request: R.SET_LOG_BASE, log: { mmapSize: 0x1000n, mmapOffset: 0n } }), 1n);
  t.deepEqual(s.dataPlane.calls, []);
});

test('a log the data plane refuses closes the connection (the reply cannot say "failed")', (t) => {
  const s = setUp();
  s.withProtocol(P.LOG_SHMFD);
  s.dataPlane.failNext = 'setLogBase';
  s.send({ request: R.SET_LOG_BASE, log: { mmapSize: 0x1000n, mmapOffset: 0n } }, [35]);
  t.is(s.replies.length, 0);
  t.is(s.closedByChannel.length, 1);
});

test('SET_LOG_FD is accepted and its eventfd closed', (t) => {
  const s = setUp();
  s.withProtocol(P.REPLY_ACK, P.LOG_SHMFD);
  t.is(s.ack({ request: R.SET_LOG_FD }, [36]), 0n);
  t.deepEqual(s.closedFds, [36]);
});

test('SEND_RARP with protocol feature RARP asks the data plane to announce the MAC', (t) => {
  const s = setUp();
  s.withProtocol(P.REPLY_ACK);
  const mac = Uint8Array.of(0x52, 0x54, 0, 1, 2, 3);
  t.is(s.ack({ request: R.SEND_RARP, mac }), 1n, 'needs RARP negotiated');
  s.withProtocol(P.REPLY_ACK, P.RARP);
  t.is(s.ack({ request: R.SEND_RARP, mac }), 0n);
  t.deepEqual(s.dataPlane.calls, [['sendRarp', [0x52, 0x54, 0, 1, 2, 3]]]);
});

test('CHECK_DEVICE_STATE waits for a LOAD still being read; requests after it are held and answered in order', async (t) => {
  const s = setUp();
  s.withProtocol(P.DEVICE_STATE);
  const dir = mkdtempSync(join(tmpdir(), 'vu-session-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  execFileSync('mkfifo', [join(dir, 'fifo')]);
  const readEnd = openSync(join(dir, 'fifo'), constants.O_RDONLY | constants.O_NONBLOCK);
  const writeEnd = openSync(join(dir, 'fifo'), constants.O_WRONLY);
  s.send({ request: R.SET_DEVICE_STATE_FD, transfer: { direction: DeviceStateDirection.LOAD, phase: 0 } }, [readEnd]);
  t.is(decodeReply(s.replies.shift()!, R.SET_DEVICE_STATE_FD), 0x100n, 'ok, no fd of its own');
  s.send({ request: R.CHECK_DEVICE_STATE });
  s.send({ request: R.GET_FEATURES });
  t.is(s.replies.length, 0, 'CHECK waits for the end of the transfer; GET_FEATURES waits its turn');

  const zero = { rxFrames: 0n, rxBytes: 0n, rxDroppedNoBuffer: 0n, rxTruncated: 0n, txFrames: 0n, txBytes: 0n, txDropped: 0n, txErrors: 5n };
  writeSync(writeEnd, encodeDeviceState({ version: 2, mac: s.device.mac, mtu: 9000, queuePairs: 1, features: 0n, vrings: [], counters: [zero], stations: [] }));
  closeSync(writeEnd);
  for (let wait = 0; wait < 250 && s.replies.length < 2; wait++) await sleep(20);
  t.is(s.replies.length, 2);
  t.is(decodeReply(s.replies[0], R.CHECK_DEVICE_STATE), 0n);
  t.is(decodeReply(s.replies[1], R.GET_FEATURES), s.device.offeredFeatures);
  t.is(s.device.mtu, 9000, 'the loaded MTU is in the config space');
  t.deepEqual(s.session.carriedCounters, [zero]);
});
