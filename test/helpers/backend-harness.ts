/**
 * Runs the real back-end in this process (BackendServer + the Rust data plane on a TAP) on a
 * temporary socket, for end-to-end tests with the test front-end.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BackendServer, singleDevice } from '../../src/backend/server.ts';
import { NetDevice } from '../../src/device/net-device.ts';
import { NativeDataPlane } from '../../src/device/native-data-plane.ts';
import { createLogger } from '../../src/log.ts';
import * as native from '../../src/native.ts';
import type { Teardown } from './proc.ts';
import { createTap, NetNs, privateSubnet } from './netns.ts';

export const GUEST_MAC = Uint8Array.of(0x02, 0x00, 0x00, 0x00, 0x00, 0x01);

export interface InProcessBackend {
  socketPath: string;
  dataPlane: NativeDataPlane;
  nativeDevice: native.NetDevice;
  logLines: string[];
  events: native.DeviceEvent[];
}

export function startInProcessBackend(t: Teardown & { log: (...v: unknown[]) => void }, tap: string, queuePairs = 1): InProcessBackend {
  const dir = mkdtempSync(join(tmpdir(), 'vu-e2e-'));
  const socketPath = join(dir, 'vhost.sock');
  const logLines: string[] = [];
  const events: native.DeviceEvent[] = [];
  const log = createLogger('backend', 'debug', (line) => logLines.push(line));
  const nativeDevice = new native.NetDevice(tap, queuePairs, (event) => {
    events.push(event);
    log.warn(`device event: ${event.kind}: ${event.message}`);
  });
  const dataPlane = new NativeDataPlane(nativeDevice);
  const device = new NetDevice({ queuePairs, mac: GUEST_MAC });
  const attach = singleDevice(tap, device, dataPlane, 'this TAP back-end serves one guest at a time');
  const server = new BackendServer({ socketPath, client: false, socketMode: 0o600, attach, log });
  server.start();
  t.teardown(() => {
    server.stop();
    nativeDevice.close();
    rmSync(dir, { recursive: true, force: true });
    t.log(logLines.join('').trimEnd());
  });
  return { socketPath, dataPlane, nativeDevice, logLines, events };
}

/** A TAP served by an in-process back-end, its host end in a fresh namespace with an address. */
export async function withBackendAndNamespace(t: Teardown & { log: (...v: unknown[]) => void }) {
  const tap = await createTap(t);
  const backend = startInProcessBackend(t, tap);
  const ns = await NetNs.create(t);
  const subnet = privateSubnet();
  await ns.moveLink(tap);
  await ns.configure(tap, subnet.hostCidr);
  return { tap, backend, ns, subnet };
}
