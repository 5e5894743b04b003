/**
 * A minimal QMP client (QEMU Machine Protocol: one JSON object per line over a UNIX socket) for
 * the tests that drive QEMU at run time, e.g. live migration. Connects to a QEMU started with
 * `-qmp unix:<path>,server=on,wait=off`, negotiates capabilities, runs one command at a time and
 * keeps asynchronous events for whoever asks.
 */
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

export class QmpError extends Error {
  constructor(
    readonly command: string,
    readonly errorClass: string,
    message: string,
  ) {
    super(`QMP ${command}: ${errorClass}: ${message}`);
    this.name = 'QmpError';
  }
}

type Waiter = { command: string; resolve: (value: unknown) => void; reject: (error: Error) => void };

export class QmpClient {
  readonly events: QmpEvent[] = [];
  private buffer = '';
  private readonly waiters: Waiter[] = [];
  private greeted!: () => void;
  private readonly greeting = new Promise<void>((resolve) => (this.greeted = resolve));

  private constructor(private readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => this.feed(text));
    socket.on('close', () => {
      for (const w of this.waiters.splice(0)) w.reject(new Error(`QMP ${w.command}: connection closed`));
    });
    socket.on('error', () => undefined); // reported through 'close'
  }

  /** Connects to `path` (retrying while QEMU creates the socket) and enters command mode. */
  static async connect(path: string, timeoutMs = 30_000): Promise<QmpClient> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const socket = await new Promise<Socket>((resolve, reject) => {
          const s = connect(path, () => resolve(s));
          s.once('error', reject);
        });
        const client = new QmpClient(socket);
        await client.greeting;
        await client.execute('qmp_capabilities');
        return client;
      } catch (error) {
        if (Date.now() > deadline) throw new Error(`QMP socket ${path}: ${(error as Error).message}`);
        await sleep(100);
      }
    }
  }

  /** Runs `command` and resolves with its `return` value; rejects with QmpError on an `error` reply. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    return new Promise((resolve, reject) => {
      this.waiters.push({ command, resolve: resolve as (v: unknown) => void, reject });
      this.socket.write(`${JSON.stringify(args ? { execute: command, arguments: args } : { execute: command })}\n`);
    });
  }

  /** Resolves with the first event named `name` (already received or arriving within `timeoutMs`). */
  async waitEvent(name: string, timeoutMs: number): Promise<QmpEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.events.find((e) => e.event === name);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no QMP event ${name} within ${timeoutMs} ms`);
      await sleep(50);
    }
  }

  close(): void {
    this.socket.destroy();
  }

  private feed(text: string): void {
    this.buffer += text;
    let newline: number;
    while ((newline = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, newline).trim();
      this.buffer = this.buffer.slice(newline + 1);
      if (line) this.onMessage(JSON.parse(line) as Record<string, unknown>);
    }
  }

  private onMessage(message: Record<string, unknown>): void {
    if ('QMP' in message) return this.greeted();
    if ('event' in message) {
      this.events.push(message as unknown as QmpEvent);
      return;
    }
    const waiter = this.waiters.shift();
    if (!waiter) return;
    if ('error' in message) {
      const error = message.error as { class: string; desc: string };
      waiter.reject(new QmpError(waiter.command, error.class, error.desc));
    } else {
      waiter.resolve(message.return);
    }
  }
}
