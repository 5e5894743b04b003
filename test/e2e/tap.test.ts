/**
 * In-process end-to-end: the test front-end (memfd guest memory, eventfds, driver-side rings)
 * negotiates with the real back-end over a real socket; frames cross a real TAP whose host end is
 * in a network namespace, and the kernel there answers ARP and ping. One body per feature variant.
 */
import test, { type ExecutionContext } from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import { FrontendRequest as R } from '../../src/protocol/requests.ts';
import { VirtioFeature as F } from '../../src/protocol/virtio-features.ts';
import { featureMask } from '../../src/protocol/feature-bits.ts';
import { TestFrontend } from '../helpers/test-frontend.ts';
import { MiniGuest } from '../helpers/mini-guest.ts';
import { GUEST_MAC, withBackendAndNamespace } from '../helpers/backend-harness.ts';
import { arpRequest, icmpEchoReply, icmpEchoRequest, isArpReply } from '../helpers/frames.ts';
import * as native from '../../src/native.ts';
import { mustRun } from '../helpers/proc.ts';
import type { Subnet } from '../helpers/netns.ts';

const RX = 0;
const TX = 1;

interface Variant {
  name: string;
  withoutFeatures: F[];
  rxBufferBytes: number;
  rxBuffers: number;
}

const VARIANTS: Variant[] = [
  { name: 'mergeable RX buffers, offloads on', withoutFeatures: [], rxBufferBytes: 2048, rxBuffers: 64 },
  {
    name: 'no mergeable buffers, no guest offloads',
    withoutFeatures: [F.VIRTIO_NET_F_MRG_RXBUF, F.VIRTIO_NET_F_GUEST_TSO4, F.VIRTIO_NET_F_GUEST_TSO6, F.VIRTIO_NET_F_GUEST_UFO, F.VIRTIO_NET_F_GUEST_ECN],
    rxBufferBytes: 2048,
    rxBuffers: 16,
  },
  { name: 'no EVENT_IDX, no indirect descriptors', withoutFeatures: [F.VIRTIO_RING_F_EVENT_IDX, F.VIRTIO_RING_F_INDIRECT_DESC], rxBufferBytes: 2048, rxBuffers: 64 },
];

for (const variant of VARIANTS) {
  test.serial(`frames cross the TAP both ways: ARP and ping with the kernel (${variant.name})`, async (t) => {
    const { backend, subnet } = await withBackendAndNamespace(t);
    const fe = TestFrontend.connect(backend.socketPath);
    t.teardown(() => fe.close());
    const features = await fe.negotiate({ withoutFeatures: variant.withoutFeatures });
    t.is(features & featureMask(...variant.withoutFeatures), 0n);
    const guest = new MiniGuest(fe, variant.rxBufferBytes);
    guest.postRxBuffers(variant.rxBuffers);

    guest.send(arpRequest(GUEST_MAC, subnet.guestIp, subnet.hostIp));
    t.true(await fe.waitCall(TX), 'TX completion signalled');
    t.deepEqual(fe.rings[TX].takeUsed().map((u) => u.len), [0]);
    const hostMac = await guest.receive((f) => isArpReply(f, subnet.hostIp));

    for (let seq = 1; seq <= 5; seq++) {
      const request = icmpEchoRequest(GUEST_MAC, hostMac, subnet.guestIp, subnet.hostIp, 0x4242, seq, 1000);
      guest.send(request);
      const reply = await guest.receive((f) => {
        const r = icmpEchoReply(f);
        return r && r.seq === seq ? r : undefined;
      });
      t.is(reply.payload.length, 1000);
      t.is(reply.payload[999], (999 * 7 + seq) & 0xff);
    }
    const [counters] = backend.dataPlane.counters();
    t.is(counters.txFrames, 6n);
    t.true(counters.rxFrames >= 6n);
    t.deepEqual(backend.events, []);
  });
}

/** A negotiated front-end with RX buffers posted whose ARP request the host has answered. */
async function servedGuest(t: ExecutionContext, socketPath: string, subnet: Subnet) {
  const fe = TestFrontend.connect(socketPath);
  t.teardown(() => fe.close());
  await fe.negotiate();
  const guest = new MiniGuest(fe, 2048);
  guest.postRxBuffers(64);
  guest.send(arpRequest(GUEST_MAC, subnet.guestIp, subnet.hostIp));
  const arpReply = await guest.receive((f) => isArpReply(f, subnet.hostIp));
  return { fe, guest, arpReply };
}

test.serial('a disconnect resets the device and the next front-end, connecting at once, is served on the same TAP', async (t) => {
  const { backend, subnet } = await withBackendAndNamespace(t);
  for (let round = 0; round < 3; round++) {
    const { fe, arpReply } = await servedGuest(t, backend.socketPath, subnet);
    t.truthy(arpReply, `round ${round}`);
    fe.close();
  }
});

test.serial('a TAP deleted under a served guest stops the queue pair as a host failure, not a guest fault', async (t) => {
  const { backend, subnet, ns, tap } = await withBackendAndNamespace(t);
  await servedGuest(t, backend.socketPath, subnet);
  await mustRun('ip', ['-n', ns.name, 'link', 'del', tap]);
  const deadline = Date.now() + 5000;
  while (backend.events.length === 0 && Date.now() < deadline) await sleep(20);
  // The worker learns it from epoll (error or hang-up on the TAP's fd) or from a read that fails
  // with EBADFD, whichever comes first; both messages say what happened.
  t.is(backend.events.length, 1, JSON.stringify(backend.events));
  const [event] = backend.events;
  t.like(event, { kind: 'host-failure', queuePair: 0 });
  t.regex('message' in event ? event.message : '', /was the TAP deleted\?/);
});

test.serial('GET_VRING_BASE stops a ring where it is; SET_VRING_BASE + KICK resume it with nothing lost', async (t) => {
  const { backend, subnet } = await withBackendAndNamespace(t);
  const { fe, guest } = await servedGuest(t, backend.socketPath, subnet);
  const base = await fe.get({ request: R.GET_VRING_BASE, state: { index: TX, num: 0 } });
  t.deepEqual(base, { index: TX, num: 1 });
  // A frame queued while the ring is stopped is sent once the ring restarts.
  guest.send(arpRequest(GUEST_MAC, subnet.guestIp, subnet.hostIp));
  await sleep(100);
  t.is(fe.rings[TX].usedIdx(), 1, 'a stopped ring is not processed');
  await fe.expectAck({ request: R.SET_VRING_BASE, state: { index: TX, num: base.num } });
  const kick = native.eventfdCreate();
  await fe.expectAck({ request: R.SET_VRING_KICK, file: { index: TX, noFd: false } }, [kick]);
  native.closeFd(kick);
  await fe.expectAck({ request: R.SET_VRING_ENABLE, state: { index: TX, num: 1 } });
  await guest.receive((f) => isArpReply(f, subnet.hostIp));
  t.is(fe.rings[TX].usedIdx(), 2);
});

test.serial('a TX descriptor outside guest memory breaks only that device: one fault line, the process and connection live', async (t) => {
  const { backend } = await withBackendAndNamespace(t);
  const fe = TestFrontend.connect(backend.socketPath);
  t.teardown(() => fe.close());
  await fe.negotiate();
  fe.rings[TX].addDescChain([{ addr: 0x7fff_0000_0000, len: 64 }]);
  fe.kick(TX);
  const deadline = Date.now() + 5000;
  while (backend.events.length === 0 && Date.now() < deadline) await sleep(20);
  t.is(backend.events.length, 1);
  t.is(backend.events[0].kind, 'fault');
  t.regex(backend.events[0].message, /queue|memory|range/i);
  // The control plane still answers.
  t.is(typeof (await fe.get({ request: R.GET_FEATURES })), 'bigint');
});
