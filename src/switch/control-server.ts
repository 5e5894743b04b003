/**
 * The control socket: a UNIX stream socket (mode 0600) serving the JSON-lines control protocol
 * to `vhost-user-net ctl` and scripts. Any number of clients; each request line gets one
 * response line, in order. A bad request gets an error response and nothing else happens: the
 * connection, the other clients and the switch carry on. A line longer than MAX_REQUEST_BYTES
 * gets an error and its connection is closed (there is no way to find the next request in it).
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import type { Logger } from '../log.ts';
import {
  ControlError,
  MAX_REQUEST_BYTES,
  dispatchControlRequest,
  encodeControlResponse,
  errorBody,
  parseControlRequest,
  requestIdOf,
  type ControlResponse,
  type SwitchControl,
} from './control-protocol.ts';

const SOCKET_MODE = 0o600;
/** How long to wait for an old socket's owner to answer before calling it stale. */
const STALE_PROBE_MS = 1000;

export class ControlServer {
  private server: net.Server | undefined;
  private readonly connections = new Set<net.Socket>();
  /** Inode of the socket file we created, so close() never removes someone else's. */
  private socketIno: number | undefined;

  constructor(
    readonly path: string,
    private readonly handler: SwitchControl,
    private readonly log?: Logger,
  ) {}

  /**
   * Listens on `path`. A stale socket file (nobody accepts on it) is replaced; a live one (another
   * instance) or a file that is not a socket makes this throw ControlError VU_ERR_CONTROL_SOCKET.
   */
  async listen(): Promise<void> {
    await removeStaleSocket(this.path);
    const server = net.createServer((socket) => this.serve(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // listen() binds synchronously: with this umask the socket file is created 0600, so there
      // is no moment (with a permissive process umask) at which another user could connect.
      const umask = process.umask(0o777 & ~SOCKET_MODE);
      try {
        server.listen(this.path, () => {
          server.off('error', reject);
          resolve();
        });
      } finally {
        process.umask(umask);
      }
    });
    this.socketIno = fs.statSync(this.path).ino;
    server.on('error', (error) => this.log?.error('control socket error', { path: this.path, reason: error.message }));
    this.server = server;
  }

  /** Stops listening, closes every connection, removes the socket file. */
  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    for (const socket of this.connections) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    try {
      if (fs.statSync(this.path).ino === this.socketIno) fs.unlinkSync(this.path);
    } catch {
      // Already gone.
    }
  }

  private serve(socket: net.Socket): void {
    this.connections.add(socket);
    socket.setEncoding('utf8');
    let pending = '';
    const tooLong = () => {
      const error = new ControlError('VU_ERR_BAD_REQUEST', `request line longer than ${MAX_REQUEST_BYTES} bytes`);
      socket.end(encodeControlResponse({ id: null, ok: false, error: errorBody(error) }));
      pending = '';
    };
    socket.on('data', (chunk: string) => {
      if (socket.writableEnded) return;
      pending += chunk;
      let newline: number;
      while ((newline = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        if (Buffer.byteLength(line) > MAX_REQUEST_BYTES) return tooLong();
        if (line.trim().length > 0) socket.write(encodeControlResponse(this.answer(line)));
      }
      if (Buffer.byteLength(pending) > MAX_REQUEST_BYTES) tooLong();
    });
    socket.on('error', (error) => this.log?.debug('control connection error', { reason: error.message }));
    socket.on('close', () => this.connections.delete(socket));
  }

  /** The response to one request line; never throws. */
  private answer(line: string): ControlResponse {
    let id: number | null = null;
    try {
      const request = parseControlRequest(line);
      id = request.id;
      return { id, ok: true, result: dispatchControlRequest(this.handler, request) };
    } catch (error) {
      const body = errorBody(error);
      if (id === null) id = requestIdOf(line);
      this.log?.info('control request failed', { code: body.code, reason: body.message });
      return { id, ok: false, error: body };
    }
  }
}

/** Removes `path` if it is a socket nobody accepts on; throws if it is live or not a socket. */
async function removeStaleSocket(path: string): Promise<void> {
  let stat: fs.Stats;
  try {
    stat = fs.lstatSync(path);
  } catch {
    return; // Nothing there.
  }
  if (!stat.isSocket()) throw new ControlError('VU_ERR_CONTROL_SOCKET', `${path} exists and is not a socket; not replacing it`);
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.connect(path);
    const done = (result: boolean) => {
      probe.destroy();
      resolve(result);
    };
    probe.setTimeout(STALE_PROBE_MS, () => done(true));
    probe.once('connect', () => done(true));
    probe.once('error', () => done(false));
  });
  if (live) throw new ControlError('VU_ERR_CONTROL_SOCKET', `${path}: another vhost-user-net is listening on it`);
  fs.unlinkSync(path);
}
