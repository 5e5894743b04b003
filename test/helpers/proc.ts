// Child processes for the real-peer tests: spawn with the output captured to a log file under
// .test-artifacts/logs, stop by PID (SIGTERM, then SIGKILL), run a command to completion, and make
// sure that whatever a test started is stopped when the test ends, also when it fails.

import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where tests leave what CI keeps: the guest image, process logs. */
export const artifactsDir = fileURLToPath(new URL('../../.test-artifacts', import.meta.url));
export const logDir = join(artifactsDir, 'logs');

/** Something that runs cleanup functions when a test ends, last registered first: ava's `t`. */
export interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

export type ProcErrorCode =
  | 'VU_PROC_SPAWN' // the executable could not be started
  | 'VU_PROC_FAILED' // a command exited non-zero where success was required
  | 'VU_PROC_TIMEOUT'; // a command or an awaited output did not come in time

export class ProcError extends Error {
  constructor(
    readonly code: ProcErrorCode,
    message: string,
    readonly command: string,
    readonly logPath?: string,
  ) {
    super(logPath === undefined ? message : `${message} (log: ${logPath})`);
    this.name = 'ProcError';
  }
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

// Last-resort cleanups, run synchronously if the test process exits with resources still alive.
const exitCleanups = new Set<() => void>();
process.on('exit', () => {
  for (const fn of exitCleanups) {
    try {
      fn();
    } catch {
      // The process is exiting: nothing more can be done about a failed cleanup.
    }
  }
});

/** Registers `fn` to run synchronously at process exit; returns the function that unregisters it. */
export function atExit(fn: () => void): () => void {
  exitCleanups.add(fn);
  return () => exitCleanups.delete(fn);
}

let logSeq = 0;

/** A log file path that no other process of this run uses: <logDir>/<name>.<pid>.<n>.log */
export function uniqueLogPath(name: string): string {
  mkdirSync(logDir, { recursive: true });
  const safe = name.replace(/[^A-Za-z0-9_.-]+/g, '_');
  return join(logDir, `${safe}.${process.pid}.${++logSeq}.log`);
}

const TAIL_CHARS = 64 * 1024;

/** A running child whose stdout and stderr go to a log file; the last 64 KiB are kept in memory. */
export class LoggedProcess {
  readonly pid: number;
  readonly exited: Promise<ExitStatus>;
  private status: ExitStatus | undefined;
  private tailText = '';
  private readonly listeners = new Set<(text: string) => void>();
  private readonly unregisterAtExit: () => void;

  constructor(
    readonly command: string,
    readonly child: ChildProcess,
    readonly logPath: string,
    private readonly log: WriteStream,
  ) {
    if (child.pid === undefined) throw new Error('LoggedProcess needs a spawned child');
    this.pid = child.pid;
    const pid = child.pid;
    this.unregisterAtExit = atExit(() => process.kill(pid, 'SIGKILL'));
    const onData = (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      log.write(chunk);
      this.tailText = (this.tailText + text).slice(-TAIL_CHARS);
      for (const listener of this.listeners) listener(text);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    // Writing to a child that has just died (a guest's QEMU exiting on a panic) fails with EPIPE.
    // Unhandled, that error would end the whole test worker; the death itself is reported
    // through `exited`, so the error is only logged.
    child.stdin?.on('error', (error) => {
      if (this.status === undefined) log.write(`\n[${new Date().toISOString()}] writing to stdin failed: ${error.message}\n`);
    });
    this.exited = new Promise((resolve) => {
      child.on('close', (code, signal) => {
        this.status = { code, signal };
        this.unregisterAtExit();
        log.end(`\n[${new Date().toISOString()}] exited: code=${code} signal=${signal}\n`);
        resolve(this.status);
      });
    });
  }

  /** The exit status once the process has exited and its output is drained. */
  get exitStatus(): ExitStatus | undefined {
    return this.status;
  }

  /** The last `maxChars` characters of output (stdout and stderr interleaved). */
  tail(maxChars = 4000): string {
    return this.tailText.slice(-maxChars);
  }

  /** Calls `listener` with every later chunk of output; returns the function that removes it. */
  onOutput(listener: (text: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Writes to the child's stdin (spawned with `stdin: 'pipe'`). */
  write(text: string): void {
    if (!this.child.stdin) throw new Error(`${this.command}: stdin is not a pipe`);
    this.child.stdin.write(text);
  }

  /** Resolves with the output seen so far once it matches `pattern` (output before the call counts). */
  waitForOutput(pattern: RegExp, timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      let seen = this.tailText;
      let done = false;
      const finish = (error?: Error) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        remove();
        if (error) reject(error);
        else resolve(seen);
      };
      const remove = this.onOutput((text) => {
        seen += text;
        if (pattern.test(seen)) finish();
      });
      const timer = setTimeout(
        () => finish(new ProcError('VU_PROC_TIMEOUT', `no output matching ${pattern} within ${timeoutMs} ms`, this.command, this.logPath)),
        timeoutMs,
      );
      void this.exited.then((status) =>
        finish(new ProcError('VU_PROC_FAILED', `exited (${describeExit(status)}) before output matching ${pattern}`, this.command, this.logPath)),
      );
      if (pattern.test(seen)) finish();
    });
  }

  /** Stops the process: SIGTERM, then SIGKILL after `graceMs`. Safe to call more than once. */
  async stop(graceMs = 3000): Promise<ExitStatus> {
    if (this.status) return this.status;
    signalPid(this.pid, 'SIGTERM');
    const timer = setTimeout(() => signalPid(this.pid, 'SIGKILL'), graceMs);
    const status = await this.exited;
    clearTimeout(timer);
    return status;
  }
}

function signalPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

export function describeExit(status: ExitStatus): string {
  return status.signal === null ? `code ${status.code}` : `signal ${status.signal}`;
}

export interface SpawnOptions {
  /** Names the log file. */
  name: string;
  /** 'pipe' to write to the child with `write()`; default 'ignore'. */
  stdin?: 'pipe' | 'ignore';
  env?: NodeJS.ProcessEnv;
  /** When given, the process is stopped when the test ends. */
  teardown?: Teardown;
}

/** Starts `cmd args`, logging its output; resolves once the process is running. */
export async function spawnLogged(cmd: string, args: string[], options: SpawnOptions): Promise<LoggedProcess> {
  const commandLine = [cmd, ...args].join(' ');
  const logPath = uniqueLogPath(options.name);
  const log = createWriteStream(logPath);
  log.write(`[${new Date().toISOString()}] ${commandLine}\n`);
  const child = spawn(cmd, args, {
    stdio: [options.stdin ?? 'ignore', 'pipe', 'pipe'],
    env: options.env ?? process.env,
  });
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', (error) => {
      log.end(`spawn failed: ${error.message}\n`);
      reject(new ProcError('VU_PROC_SPAWN', `cannot start: ${error.message}`, commandLine, logPath));
    });
  });
  const proc = new LoggedProcess(commandLine, child, logPath, log);
  options.teardown?.teardown(async () => {
    await proc.stop();
  });
  return proc;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Killed with SIGKILL after this long; default 60 s. */
  timeoutMs?: number;
  /** Written to stdin, which is then closed. */
  input?: string;
  env?: NodeJS.ProcessEnv;
}

/** Runs `cmd args` to completion. Never throws for a non-zero exit: look at `code`. */
export function run(cmd: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  const commandLine = [cmd, ...args].join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: options.env ?? process.env });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.stdin.on('error', () => undefined); // the child may exit without reading its input
    child.stdin.end(options.input ?? '');
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs ?? 60_000);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new ProcError('VU_PROC_SPAWN', `cannot start: ${error.message}`, commandLine));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) {
        reject(new ProcError('VU_PROC_TIMEOUT', `killed after ${options.timeoutMs ?? 60_000} ms`, commandLine));
        return;
      }
      resolve({
        code,
        signal,
        stdout: Buffer.concat(stdout).toString('utf8'),
        stderr: Buffer.concat(stderr).toString('utf8'),
      });
    });
  });
}

/** Runs `cmd args` and returns its stdout; throws ProcError (VU_PROC_FAILED) unless it exits 0. */
export async function mustRun(cmd: string, args: string[], options: RunOptions = {}): Promise<string> {
  const result = await run(cmd, args, options);
  if (result.code !== 0) {
    throw new ProcError('VU_PROC_FAILED', `exited (${describeExit(result)}): ${result.stderr.trim() || result.stdout.trim()}`, [cmd, ...args].join(' '));
  }
  return result.stdout;
}
