/**
 * The client side of the control socket: one connection, requests answered in order.
 */
import * as net from 'node:net';
import { ControlError, encodeControlRequest, parseControlResponse, type ControlCommand, type ControlResponse } from './control-protocol.ts';

/** How long a request may wait for its response. */
const RESPONSE_TIMEOUT_MS = 10_000;

export class ControlClient {
  private nextId = 1;
  private pending = '';
  private readonly waiting: { resolve: (r: ControlResponse) => void; reject: (e: Error) => void }[] = [];
  private closedError: Error | undefined;

  private constructor(private readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', (error) => this.fail(new ControlError('VU_ERR_CONTROL_SOCKET', `control socket: ${error.message}`)));
    socket.on('close', () => this.fail(new ControlError('VU_ERR_CONTROL_SOCKET', 'the switch closed the control connection')));
  }

  /** Connects to a running switch; throws ControlError VU_ERR_CONTROL_SOCKET if nobody listens at `path`. */
  static connect(path: string): Promise<ControlClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(path);
      socket.once('connect', () => {
        socket.removeAllListeners('error');
        resolve(new ControlClient(socket));
      });
      socket.once('error', (error: NodeJS.ErrnoException) => {
        const why = error.code === 'ENOENT' || error.code === 'ECONNREFUSED' ? 'no vhost-user-net is listening there' : error.message;
        reject(new ControlError('VU_ERR_CONTROL_SOCKET', `cannot reach the control socket ${path}: ${why} (${error.code ?? 'error'})`));
      });
    });
  }

  /** Sends one request; resolves with the server's response (ok or not). */
  request(cmd: ControlCommand, args: Record<string, unknown> = {}): Promise<ControlResponse> {
    return this.sendLine(encodeControlRequest(this.nextId++, cmd, args));
  }

  /** Sends a raw line (a newline is added if missing); resolves with the response to it. */
  sendLine(line: string): Promise<ControlResponse> {
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new ControlError('VU_ERR_CONTROL_SOCKET', `no answer within ${RESPONSE_TIMEOUT_MS} ms`)), RESPONSE_TIMEOUT_MS);
      this.waiting.push({
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.socket.write(line.endsWith('\n') ? line : `${line}\n`);
    });
  }

  close(): void {
    this.socket.end();
  }

  private onData(chunk: string): void {
    this.pending += chunk;
    let newline: number;
    while ((newline = this.pending.indexOf('\n')) >= 0) {
      const line = this.pending.slice(0, newline);
      this.pending = this.pending.slice(newline + 1);
      const waiter = this.waiting.shift();
      if (!waiter) continue; // An answer nobody asked for (e.g. to an over-long line): nothing to do with it.
      try {
        waiter.resolve(parseControlResponse(line));
      } catch (error) {
        waiter.reject(error as Error);
      }
    }
  }

  private fail(error: Error): void {
    this.closedError ??= error;
    for (const waiter of this.waiting.splice(0)) waiter.reject(error);
  }
}
