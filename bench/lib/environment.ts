/** Versions and machine facts recorded with every benchmark result. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';

function firstLine(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).split('\n')[0].trim();
  } catch (error) {
    return `unavailable (${(error as Error).message.split('\n')[0]})`;
  }
}

function debianVersion(pkg: string): string {
  return firstLine('dpkg-query', ['-W', '-f=${Version}', pkg]);
}

export interface Environment {
  date: string;
  hostname: string;
  kernel: string;
  cpuModel: string;
  cpus: number;
  memoryMiB: number;
  node: string;
  qemu: string;
  dpdk: string;
  iperf3: string;
  backendCommit: string;
  /** Other processes' CPU use when the run started (this machine is shared). */
  loadAverage: number[];
}

export function collectEnvironment(repoDir: string): Environment {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  return {
    date: new Date().toISOString(),
    hostname: os.hostname(),
    kernel: `${os.release()} ${os.version()}`,
    cpuModel: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? 'unknown',
    cpus: os.cpus().length,
    memoryMiB: Math.round(os.totalmem() / 2 ** 20),
    node: process.version,
    qemu: firstLine('qemu-system-x86_64', ['--version']),
    dpdk: `dpdk-dev ${debianVersion('dpdk-dev')} (Debian package holding dpdk-testpmd)`,
    iperf3: firstLine('iperf3', ['--version']),
    backendCommit: firstLine('git', ['-C', repoDir, 'describe', '--always', '--dirty']),
    loadAverage: os.loadavg(),
  };
}
