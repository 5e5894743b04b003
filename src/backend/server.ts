/**
 * Accepts front-end connections (or, in client mode, connects to a listening front-end) and runs
 * one Session per connection. The TAP back-end serves one guest: while a front-end is connected,
 * another connection is refused with a log line; when it leaves, the device is reset (rings
 * stopped, memory unmapped) and the next front-end is accepted. The TAP stays open throughout.
 */
import { existsSync, unlinkSync } from 'node:fs';
import * as native from '../native.ts';
import type { DataPlane } from '../device/data-plane.ts';
import type { NetDevice } from '../device/net-device.ts';
import type { Logger } from '../log.ts';
import { Session } from './session.ts';

/** How often client mode retries while the front-end's socket is not there yet. */
const CLIENT_RETRY_MS = 500;

export interface ServerOptions {
  socketPath?: string;
  listenFd?: number;
  client: boolean;
  socketMode: number;
  device: NetDevice;
  dataPlane: DataPlane;
  log: Logger;
}

export class BackendServer {
  private acceptor: native.Acceptor | undefined;
  private listenFd: number | undefined;
  private active: { connection: native.Connection; session: Session } | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private connections = 0;

  constructor(private readonly options: ServerOptions) {}

  start(): void {
    const { socketPath, listenFd, client, socketMode, log } = this.options;
    if (client) {
      this.connectWithRetry(true);
      return;
    }
    if (listenFd !== undefined) {
      this.listenFd = listenFd;
      log.info('serving on an inherited socket', { fd: listenFd });
    } else {
      this.listenFd = native.listenUnix(socketPath!, socketMode);
      log.info('listening', { socket: socketPath });
    }
    this.acceptor = new native.Acceptor(this.listenFd, (fd) => this.onConnected(fd));
  }

  private connectWithRetry(firstAttempt: boolean): void {
    if (this.stopped) return;
    const { socketPath, log } = this.options;
    try {
      const fd = native.connectUnix(socketPath!);
      this.onConnected(fd);
    } catch (error) {
      const code = (error as { errnoName?: string }).errnoName;
      if (code !== 'ENOENT' && code !== 'ECONNREFUSED') log.warn('connect failed', { socket: socketPath, error: (error as Error).message });
      else if (firstAttempt) log.info('waiting for the front-end to listen', { socket: socketPath });
      this.retryTimer = setTimeout(() => this.connectWithRetry(false), CLIENT_RETRY_MS);
    }
  }

  private onConnected(fd: number): void {
    const { log, device, dataPlane } = this.options;
    const connection = new native.Connection(fd);
    if (this.active || this.stopped) {
      log.warn('refusing a second front-end: this TAP back-end serves one guest at a time');
      connection.close();
      return;
    }
    const id = ++this.connections;
    const connLog = log.child(`conn${id}`);
    const peer = safePeer(connection);
    connLog.info('front-end connected', peer);
    const session = new Session(device, dataPlane, {
      send: (bytes, fds) => connection.send(bytes, fds),
      close: (reason) => {
        connLog.warn('closing the connection', { reason });
        connection.close();
      },
    }, connLog, native.closeFd);
    this.active = { connection, session };
    connection.start(
      (msg, fds) => session.onMessage(msg, fds),
      (error) => this.onDisconnected(connection, connLog, error),
    );
  }

  private onDisconnected(connection: native.Connection, connLog: Logger, error: Error | null): void {
    if (this.active?.connection !== connection) return;
    const { session } = this.active;
    this.active = undefined;
    session.teardown();
    connection.close();
    if (error) connLog.warn('front-end disconnected', { error: error.message });
    else connLog.info('front-end disconnected');
    if (this.options.client && !this.stopped) this.retryTimer = setTimeout(() => this.connectWithRetry(true), CLIENT_RETRY_MS);
  }

  /** Stops accepting, drops the connection (rings stopped, memory released) and removes the socket file. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.acceptor?.close();
    if (this.active) {
      const { connection, session } = this.active;
      this.active = undefined;
      session.teardown();
      connection.close();
    }
    if (this.listenFd !== undefined && this.options.listenFd === undefined) {
      native.closeFd(this.listenFd);
      if (this.options.socketPath && existsSync(this.options.socketPath)) unlinkSync(this.options.socketPath);
    }
  }
}

function safePeer(connection: native.Connection): Record<string, unknown> {
  try {
    const { pid, uid, gid } = connection.peerCredentials();
    return { pid, uid, gid };
  } catch {
    return {};
  }
}
