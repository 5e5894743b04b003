/**
 * What the kernel says about a process and an interface: CPU time (utime + stime of all threads,
 * /proc/<pid>/stat, or of the threads with a given name), resident memory (/proc/<pid>/status
 * VmRSS), CPU affinity, and an interface's packet counters read inside a network namespace.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

/** USER_HZ: the unit of utime/stime in /proc/<pid>/stat (100 on every Linux/x86 build). */
const CLOCK_TICKS_PER_SECOND = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

/** CPU seconds (user + system, all threads) the process `pid` has used so far. */
export function cpuSeconds(pid: number): number {
  return parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8')).cpuSeconds;
}

/** CPU seconds used so far by the threads of `pid` whose name (comm) matches `name`. */
export function threadCpuSeconds(pid: number, name: RegExp): number {
  let total = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let stat;
    try {
      stat = parseStat(readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8'));
    } catch {
      continue; // the thread ended meanwhile
    }
    if (name.test(stat.comm)) total += stat.cpuSeconds;
  }
  return total;
}

/** The name and CPU seconds (utime + stime) in a /proc/<pid>/stat or /proc/<pid>/task/<tid>/stat line. */
export function parseStat(stat: string): { comm: string; cpuSeconds: number } {
  // The name may hold spaces and parentheses: it ends at the last ')'.
  const close = stat.lastIndexOf(')');
  const fields = stat.slice(close + 2).split(' ');
  // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return { comm: stat.slice(stat.indexOf('(') + 1, close), cpuSeconds: (utime + stime) / CLOCK_TICKS_PER_SECOND };
}

/** Resident set size of `pid` in KiB. */
export function rssKiB(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`/proc/${pid}/status has no VmRSS`);
  return Number(match[1]);
}

/** The CPUs every thread of `pid` may run on, e.g. { "1234": "1", "1240": "1" } (thread id → list). */
export function threadAffinity(pid: number): Record<string, string> {
  const out = execFileSync('taskset', ['-a', '-p', '-c', String(pid)], { encoding: 'utf8' });
  const result: Record<string, string> = {};
  for (const match of out.matchAll(/pid (\d+)'s current affinity list: (\S+)/g)) result[match[1]] = match[2];
  return result;
}

/** A counter of `/sys/class/net/<ifname>/statistics/<counter>`, read inside namespace `netns`. */
export function ifCounter(ifname: string, counter: 'rx_packets' | 'rx_bytes' | 'rx_dropped' | 'tx_packets', netns?: string): number {
  const file = `/sys/class/net/${ifname}/statistics/${counter}`;
  const text =
    netns === undefined ? readFileSync(file, 'utf8') : execFileSync('ip', ['netns', 'exec', netns, 'cat', file], { encoding: 'utf8' });
  return Number(text.trim());
}

/** A sample of a process's CPU time at a point in time. */
export interface CpuSample {
  atMs: number;
  cpuSeconds: number;
}

export function sampleCpu(pid: number): CpuSample {
  return { atMs: performance.now(), cpuSeconds: cpuSeconds(pid) };
}

/** Share of one CPU the process used between two samples (1.0 = one core busy). */
export function cpuShare(from: CpuSample, to: CpuSample): number {
  return (to.cpuSeconds - from.cpuSeconds) / ((to.atMs - from.atMs) / 1000);
}

/** CPU seconds all CPUs of the machine spent busy so far (/proc/stat: everything but idle and iowait). */
export function machineBusySeconds(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
  // cpu  user nice system idle iowait irq softirq steal guest guest_nice (guest time is inside user)
  const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
  return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS_PER_SECOND;
}

/**
 * CPU accounting over a measurement window: the subject's share, the generator's, and what every
 * other process on this shared machine used meanwhile (the contamination of the figure).
 */
export class CpuWindow {
  private readonly subject: CpuSample;
  private readonly generator?: CpuSample;
  private readonly involved: number;
  private readonly machine: number;

  /** `involvedPids`: other processes of the measurement (e.g. an iperf3 server), not counted as noise. */
  constructor(
    private readonly subjectPid: number,
    private readonly generatorPid?: number,
    private readonly involvedPids: number[] = [],
  ) {
    this.subject = sampleCpu(subjectPid);
    this.generator = generatorPid === undefined ? undefined : sampleCpu(generatorPid);
    this.involved = this.involvedSeconds();
    this.machine = machineBusySeconds();
  }

  private involvedSeconds(): number {
    return this.involvedPids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
  }

  /** Shares of one CPU (1.0 = one core busy for the whole window). */
  end(): { cpuShare: number; generatorCpu: number; otherCpu: number } {
    const subject = sampleCpu(this.subjectPid);
    const generator = this.generatorPid === undefined ? undefined : sampleCpu(this.generatorPid);
    const seconds = (subject.atMs - this.subject.atMs) / 1000;
    const involved = (this.involvedSeconds() - this.involved) / seconds;
    const machine = (machineBusySeconds() - this.machine) / seconds;
    const cpuShareValue = cpuShare(this.subject, subject);
    const generatorCpu = generator && this.generator ? cpuShare(this.generator, generator) : 0;
    return { cpuShare: cpuShareValue, generatorCpu, otherCpu: Math.max(0, machine - cpuShareValue - generatorCpu - involved) };
  }
}
