/**
 * The real BackendServer on a real socket in a fresh directory, serving one device (the TAP
 * back-end's `singleDevice`) whose data plane is a recording fake: for tests of connection
 * handling (access control, one front-end at a time) that need no TAP. Its log lines are kept
 * and shown with the test's output; the server and directory are removed at teardown.
 */
import type { ExecutionContext } from 'ava';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BackendServer, singleDevice } from '../../src/backend/server.ts';
import { NetDevice } from '../../src/device/net-device.ts';
import { createLogger } from '../../src/log.ts';
import { RecordingDataPlane } from './recording-data-plane.ts';

/** Why a second front-end is refused while one is served. */
export const BUSY_REASON = 'one guest at a time';

export interface RecordingServerOptions {
  allowUids?: number[];
  socketGroup?: number;
  /** Default 0o666: other users reach the socket, and only the credential check decides. */
  socketMode?: number;
}

export function startRecordingServer(t: ExecutionContext, options: RecordingServerOptions = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'vu-server-'));
  chmodSync(dir, 0o711); // other users may reach the socket; its own mode decides
  const socketPath = join(dir, 'vhost.sock');
  const logLines: string[] = [];
  const server = new BackendServer({
    socketPath,
    client: false,
    socketMode: options.socketMode ?? 0o666,
    socketGroup: options.socketGroup,
    allowUids: options.allowUids,
    attach: singleDevice('test', new NetDevice({ queuePairs: 1, mac: Uint8Array.of(2, 0, 0, 0, 0, 1) }), new RecordingDataPlane(), BUSY_REASON),
    log: createLogger('backend', 'debug', (line) => logLines.push(line)),
  });
  server.start();
  t.teardown(() => {
    server.stop();
    rmSync(dir, { recursive: true, force: true });
    t.log(logLines.join('').trimEnd());
  });
  return { server, socketPath, logLines };
}
