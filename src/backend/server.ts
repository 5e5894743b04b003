/**
 * Accepts front-end connections (or, in client mode, connects to a listening front-end) and runs
 * one Session per connection on the device `attach` gives it. The TAP back-end has one device:
 * while a front-end uses it, another connection is refused with a log line; when it leaves, the
 * device is reset (rings stopped, memory unmapped) and the next front-end is accepted. The switch
 * gives every connection a new port, removed when the connection ends.
 *
 * A front-end that closes and reconnects at once (QEMU restarting a guest, a front-end's own
 * reconnect) is served, not refused: before attaching a new connection, connections whose peer
 * has already closed are ended, even if their reader thread has not reported the close yet.
 *
 * Access control: the socket file gets `socketMode` (and `socketGroup`), and every connection's
 * peer credentials (SO_PEERCRED, taken by the kernel at connect time, so a peer cannot lie) are
 * checked against `allowUids` before a single byte is read; a refused peer is logged and closed.
 */
import { chownSync, existsSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import * as native from '../native.ts';
import type { DataPlane } from '../device/data-plane.ts';
import type { NetDevice } from '../device/net-device.ts';
import type { Logger } from '../log.ts';
import { Session } from './session.ts';
import { defaultAllowUids } from './access.ts';

/** How often client mode retries while the front-end's socket is not there yet. */
const CLIENT_RETRY_MS = 500;

export interface ServerOptions {
  socketPath?: string;
  listenFd?: number;
  client: boolean;
  socketMode: number;
  /** chown the created socket to this group (with a group-writable socketMode). */
  socketGroup?: number;
  /** Peer uids that are served; default: this process's uid and root. */
  allowUids?: readonly number[];
  /** The device a new connection is served by, or why it is refused. */
  attach: (connectionId: number) => AttachedDevice | { refused: string };
  log: Logger;
}

/** A device handed to one connection; `detach` gives it back when the connection ends. */
export interface AttachedDevice {
  /** The TAP or switch port name, for logs. */
  name: string;
  device: NetDevice;
  dataPlane: DataPlane;
  detach(): void;
}

/** attach() for a back-end with a single device: one connection at a time. */
export function singleDevice(name: string, device: NetDevice, dataPlane: DataPlane, reason: string): () => AttachedDevice | { refused: string } {
  let inUse = false;
  return () => {
    if (inUse) return { refused: reason };
    inUse = true;
    return { name, device, dataPlane, detach: () => (inUse = false) };
  };
}

interface Active {
  connection: native.Connection;
  session: Session;
  attached: AttachedDevice;
  log: Logger;
}

export class BackendServer {
  private acceptor: native.Acceptor | undefined;
  private listenFd: number | undefined;
  private readonly active = new Map<native.Connection, Active>();
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
      this.listenFd = listenOn(socketPath!, socketMode);
      if (this.options.socketGroup !== undefined) chownSync(socketPath!, -1, this.options.socketGroup);
      log.info('listening', { socket: socketPath, mode: `0${socketMode.toString(8)}`, group: this.options.socketGroup });
    }
    this.acceptor = new native.Acceptor(this.listenFd, (fd) => this.onConnected(fd, true));
  }

  private connectWithRetry(firstAttempt: boolean): void {
    if (this.stopped) return;
    const { socketPath, log } = this.options;
    try {
      const fd = native.connectUnix(socketPath!);
      this.onConnected(fd, false);
    } catch (error) {
      const code = (error as { errnoName?: string }).errnoName;
      if (code !== 'ENOENT' && code !== 'ECONNREFUSED') log.warn('connect failed', { socket: socketPath, error: (error as Error).message });
      else if (firstAttempt) log.info('waiting for the front-end to listen', { socket: socketPath });
      this.retryTimer = setTimeout(() => this.connectWithRetry(false), CLIENT_RETRY_MS);
    }
  }

  /**
   * A new connection: `accepted` ones (a peer connected to our socket) must come from an allowed
   * uid; in client mode we connected to the path we were given, so the peer is the one chosen.
   */
  private onConnected(fd: number, accepted: boolean): void {
    const { log } = this.options;
    const connection = new native.Connection(fd);
    const peer = safePeer(connection);
    const allowUids = this.options.allowUids ?? defaultAllowUids();
    if (accepted && (peer.uid === undefined || !allowUids.includes(peer.uid))) {
      log.warn('refusing a front-end whose uid is not allowed (--allow-uid)', { ...peer, allowed: allowUids.join(',') });
      connection.close();
      return;
    }
    if (this.stopped) {
      connection.close();
      return;
    }
    if (accepted) this.endHungUpConnections();
    const id = ++this.connections;
    let attached: AttachedDevice | { refused: string };
    try {
      attached = this.options.attach(id);
    } catch (error) {
      attached = { refused: (error as Error).message };
    }
    if ('refused' in attached) {
      log.warn('refusing a front-end', { ...peer, reason: attached.refused });
      connection.close();
      return;
    }
    const connLog = log.child(`conn${id}`);
    connLog.info('front-end connected', { ...peer, port: attached.name });
    const session = new Session(attached.device, attached.dataPlane, {
      send: (bytes, fds) => connection.send(bytes, fds),
      close: (reason) => {
        connLog.warn('closing the connection', { reason });
        connection.close();
      },
    }, connLog, native.closeFd);
    this.active.set(connection, { connection, session, attached, log: connLog });
    connection.start(
      (msg, fds) => session.onMessage(msg, fds),
      (error) => this.onDisconnected(connection, connLog, error),
    );
  }

  private onDisconnected(connection: native.Connection, connLog: Logger, error: Error | null): void {
    const active = this.active.get(connection);
    if (!active) return;
    this.active.delete(connection);
    this.release(active);
    if (error) connLog.warn('front-end disconnected', { error: error.message });
    else connLog.info('front-end disconnected');
    if (this.options.client && !this.stopped) this.retryTimer = setTimeout(() => this.connectWithRetry(true), CLIENT_RETRY_MS);
  }

  /** Ends the connections whose peer has closed, as their reader would report it a little later. */
  private endHungUpConnections(): void {
    for (const { connection, log } of [...this.active.values()]) {
      if (peerHungUp(connection)) this.onDisconnected(connection, log, null);
    }
  }

  /** Stops accepting, drops the connection (rings stopped, memory released) and removes the socket file. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.acceptor?.close();
    for (const active of this.active.values()) this.release(active);
    this.active.clear();
    if (this.listenFd !== undefined && this.options.listenFd === undefined) {
      native.closeFd(this.listenFd);
      if (this.options.socketPath && existsSync(this.options.socketPath)) unlinkSync(this.options.socketPath);
    }
  }

  private release({ connection, session, attached }: Active): void {
    session.teardown();
    connection.close();
    attached.detach();
  }

  /** Connections being served now. */
  get connectionCount(): number {
    return this.active.size;
  }
}

/**
 * `native.listenUnix`, whose bind failure names the socket path and, for the two usual mistakes
 * (a missing directory, one the user may not write to), says so.
 */
function listenOn(path: string, mode: number): number {
  try {
    return native.listenUnix(path, mode);
  } catch (error) {
    if (native.isNativeError(error) && error.syscall === 'bind') {
      const hint = { ENOENT: ` (the directory ${dirname(path)} does not exist)`, EACCES: ` (no permission to create a file in ${dirname(path)})` }[error.errnoName ?? ''] ?? '';
      error.message = `cannot listen on ${path}: ${error.message}${hint}`;
    }
    throw error;
  }
}

/** Whether the peer closed; if the kernel cannot say, the reader thread will report it. */
function peerHungUp(connection: native.Connection): boolean {
  try {
    return connection.peerHungUp();
  } catch {
    return false;
  }
}

/** The peer's credentials, or none if SO_PEERCRED failed (such a peer is refused). */
function safePeer(connection: native.Connection): Partial<native.PeerCredentials> {
  try {
    const { pid, uid, gid } = connection.peerCredentials();
    return { pid, uid, gid };
  } catch {
    return {};
  }
}
