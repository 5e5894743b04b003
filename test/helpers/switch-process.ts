/**
 * The `vhost-user-net` switch as a separate process for the real-peer tests: started on a
 * temporary socket and control socket, driven with `ctl --json`, and QEMU guests booted on it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bootGuest, type Guest } from './guest.ts';
import { CLI } from './backend-process.ts';
import { mustRun, spawnLogged, type LoggedProcess, type Teardown } from './proc.ts';

export interface SwitchProcess {
  process: LoggedProcess;
  socketPath: string;
  controlPath: string;
}

/** A switch port as `ctl --json ports` prints it: counters are decimal strings. */
export interface CtlPort {
  id: number;
  name: string;
  kind: 'vhost-user' | 'tap' | 'stream';
  mac?: string;
  /** Port security: the port is locked to `mac` (`--port …,mac=`). */
  macLocked?: boolean;
  /** Port security: the IP addresses it is locked to (`--port …,ip=`). */
  lockedIps?: string[];
  state: string;
  rxFrames: string;
  txFrames: string;
  rxBytes: string;
  txBytes: string;
  /** By reason, only the non-zero ones: noBuffer, notReady, runt, tooBig, tagged, spoofed, portError, badOffload. */
  drops: Record<string, string>;
}

/** Starts `vhost-user-net --socket-path … --control … --dhcp 10.79.0.0/24 …extraArgs` and waits until it is ready. */
export async function startSwitch(t: Teardown, extraArgs: string[] = []): Promise<SwitchProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'vu-switch-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const socketPath = join(dir, 'switch.sock');
  const controlPath = join(dir, 'switch.ctl');
  const dhcp = extraArgs.includes('--dhcp') ? [] : ['--dhcp', '10.79.0.0/24'];
  const proc = await spawnLogged(process.execPath, [CLI, '--socket-path', socketPath, '--control', controlPath, ...dhcp, ...extraArgs], {
    name: 'switch',
    teardown: t,
  });
  await proc.waitForOutput(/switch ready/, 30_000);
  return { process: proc, socketPath, controlPath };
}

/** `vhost-user-net ctl --json …args` against the switch; the parsed result. */
export async function ctl(sw: SwitchProcess, ...args: string[]): Promise<unknown> {
  return JSON.parse(await mustRun(process.execPath, [CLI, 'ctl', '--control', sw.controlPath, '--json', ...args]));
}

export async function ctlPorts(sw: SwitchProcess): Promise<CtlPort[]> {
  return (await ctl(sw, 'ports')) as CtlPort[];
}

/**
 * A QEMU guest on the switch's shared socket, or on `socketPath` (a named port), with vhost-user
 * and INTx (see DESIGN.md); DHCP on eth0.
 */
export async function bootOnSwitch(t: Teardown, sw: SwitchProcess, name: string, mac: string, socketPath = sw.socketPath): Promise<Guest> {
  const guest = await bootGuest({
    name,
    netdevArgs: ['-chardev', `socket,id=c0,path=${socketPath}`, '-netdev', 'vhost-user,id=n0,chardev=c0'],
    deviceArgs: `virtio-net-pci,netdev=n0,mac=${mac},vectors=0`,
    guestIp: 'dhcp',
    teardown: t,
  });
  await guest.ready();
  return guest;
}

/** eth0's IPv4 address in the guest. */
export async function addressOf(guest: Guest): Promise<string> {
  const out = await guest.mustRun('ip -4 -o addr show dev eth0');
  const match = /inet (\d+\.\d+\.\d+\.\d+)\//.exec(out);
  if (!match) throw new Error(`no IPv4 address on eth0: ${out}`);
  return match[1];
}

/** `ping -c count` from the guest, at most 15 s. */
export { pingFromGuest as ping } from './ping.ts';
