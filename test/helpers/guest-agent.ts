// Host side of the guest's serial command agent (test/guest/guest-agent.sh). Pure: it is fed the
// console output and given a function that writes to the console, so it is testable without QEMU.
//
// Protocol: the agent prints `__VU_READY__` once; the n-th line the host writes is command n; the
// agent answers `__VU_BEGIN__ <n>`, the output, then `\n__VU_DONE__ <exit code>`. Anything else on
// the console (kernel messages, output of a command whose wait timed out) is skipped, because the
// host only accepts the output that follows the BEGIN marker carrying the number it expects.

export type GuestErrorCode =
  | 'VU_GUEST_TIMEOUT' // the agent did not become ready or a command did not finish in time
  | 'VU_GUEST_EXITED' // QEMU exited (or was killed) while the host was waiting
  | 'VU_GUEST_BAD_COMMAND'; // a command the agent cannot receive (newline, too long)

export class GuestError extends Error {
  constructor(
    readonly code: GuestErrorCode,
    message: string,
    /** The command concerned, if any. */
    readonly command?: string,
    /** What the command printed before the failure. */
    readonly partialOutput?: string,
  ) {
    super(message);
    this.name = 'GuestError';
  }
}

export interface CommandResult {
  code: number;
  /** stdout and stderr interleaved, without the line ending the agent adds before its marker. */
  output: string;
}

const READY = '__VU_READY__';
const DONE = /\n__VU_DONE__ (\d+)\n/;
// The guest's console reads commands in canonical mode: a line longer than this would be cut.
const MAX_COMMAND_BYTES = 4000;

interface Request {
  command: string;
  timeoutMs: number;
  resolve: (result: CommandResult) => void;
  reject: (error: GuestError) => void;
}

interface Pending extends Request {
  seq: number;
  timer: NodeJS.Timeout;
}

export class AgentChannel {
  /** Resolves once the agent has printed its ready marker. */
  readonly ready: Promise<void>;
  private markReady!: () => void;
  private failReady!: (error: GuestError) => void;
  private isReady = false;
  private failure: GuestError | undefined;
  // Console text not consumed yet, with '\r' removed.
  private buffer = '';
  private sentSeq = 0;
  private pending: Pending | undefined;
  private readonly queue: Request[] = [];

  constructor(private readonly writeLine: (line: string) => void) {
    this.ready = new Promise((resolve, reject) => {
      this.markReady = resolve;
      this.failReady = reject;
    });
    this.ready.catch(() => undefined); // observed by whoever awaits it; never unhandled
  }

  /** Commands sent so far (the agent numbers them from 1). */
  get sequence(): number {
    return this.sentSeq;
  }

  /**
   * Takes over an agent that is already running: the guest was live-migrated into the QEMU this
   * channel listens to. The agent will not print its ready marker again; commands continue the
   * numbering after `sequence` (what the previous channel had sent).
   */
  resume(sequence: number): void {
    if (this.isReady) throw new Error('AgentChannel.resume: the agent is already ready');
    this.isReady = true;
    this.sentSeq = sequence;
    this.buffer = '';
    this.markReady();
    this.sendNext();
  }

  /** Feeds console output as it arrives. */
  feed(text: string): void {
    this.buffer += text.replace(/\r/g, '');
    if (!this.isReady) {
      const at = this.buffer.indexOf(`${READY}\n`);
      if (at < 0) {
        this.buffer = this.buffer.slice(-READY.length); // keep a marker cut between chunks
        return;
      }
      this.isReady = true;
      this.buffer = this.buffer.slice(at + READY.length + 1);
      this.markReady();
      this.sendNext();
    }
    this.consume();
  }

  /** Fails the wait for readiness and every command, now and later (QEMU is gone). */
  fail(error: GuestError): void {
    this.failure ??= error;
    this.failReady(error);
    if (this.pending) this.settle(this.pending, error);
    for (const request of this.queue.splice(0)) request.reject(error);
  }

  /**
   * Runs `command` with `sh -c` in the guest and resolves with its exit code and output. Commands
   * are sent one at a time in call order, once the agent is ready; `timeoutMs` counts from the
   * sending. On timeout the promise rejects (VU_GUEST_TIMEOUT) but the command goes on in the
   * guest; the next command runs after it ends.
   */
  run(command: string, timeoutMs: number): Promise<CommandResult> {
    return new Promise((resolve, reject) => {
      if (this.failure) return reject(this.failure);
      checkCommand(command);
      this.queue.push({ command, timeoutMs, resolve, reject });
      this.sendNext();
    });
  }

  /** Sends `command` now, without waiting for it to finish (e.g. `poweroff -f`, which never answers). */
  post(command: string): void {
    checkCommand(command);
    this.sentSeq++;
    this.writeLine(command);
  }

  private sendNext(): void {
    if (!this.isReady || this.pending || this.failure) return;
    const request = this.queue.shift();
    if (!request) return;
    const seq = ++this.sentSeq;
    const timer = setTimeout(() => {
      const partial = this.partialOutput(seq);
      this.settle(pending, new GuestError('VU_GUEST_TIMEOUT', `guest command did not finish within ${request.timeoutMs} ms: ${request.command}`, request.command, partial));
    }, request.timeoutMs);
    const pending: Pending = { ...request, seq, timer };
    this.pending = pending;
    this.writeLine(request.command);
  }

  // Completes the pending command once its BEGIN and DONE markers have both arrived.
  private consume(): void {
    const pending = this.pending;
    if (!pending) {
      // Nothing awaited: the next BEGIN can only follow a command not sent yet.
      this.buffer = '';
      return;
    }
    const begin = `__VU_BEGIN__ ${pending.seq}\n`;
    const at = this.buffer.indexOf(begin);
    if (at < 0) {
      this.buffer = this.buffer.slice(-(begin.length - 1)); // keep a marker cut between chunks
      return;
    }
    this.buffer = this.buffer.slice(at);
    const body = this.buffer.slice(begin.length);
    const done = DONE.exec(body);
    if (!done) return;
    this.buffer = body.slice(done.index + done[0].length);
    this.settle(pending, { code: Number(done[1]), output: body.slice(0, done.index) });
    this.consume();
  }

  private partialOutput(seq: number): string | undefined {
    const begin = `__VU_BEGIN__ ${seq}\n`;
    const at = this.buffer.indexOf(begin);
    return at < 0 ? undefined : this.buffer.slice(at + begin.length);
  }

  // Ends the pending command and sends the next queued one.
  private settle(pending: Pending, outcome: CommandResult | GuestError): void {
    if (this.pending !== pending) return;
    this.pending = undefined;
    clearTimeout(pending.timer);
    if (outcome instanceof GuestError) pending.reject(outcome);
    else pending.resolve(outcome);
    this.sendNext();
  }
}

function checkCommand(command: string): void {
  if (/[\r\n]/.test(command)) {
    throw new GuestError('VU_GUEST_BAD_COMMAND', 'a guest command must be one line', command);
  }
  if (Buffer.byteLength(command) > MAX_COMMAND_BYTES) {
    throw new GuestError('VU_GUEST_BAD_COMMAND', `a guest command must be at most ${MAX_COMMAND_BYTES} bytes`, command);
  }
}
