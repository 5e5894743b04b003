// Host-side network plumbing for the real-peer tests: network namespaces and TAP devices with
// names unique to this test process (`vu-<pid>-<n>`), private /24 subnets, and commands run inside
// a namespace. Everything created here is removed when the test ends, also when it fails.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { atExit, mustRun, run, spawnLogged, type LoggedProcess, type RunOptions, type RunResult, type Teardown } from './proc.ts';

let nameSeq = 0;

/**
 * A name no other test process uses: `<prefix>-<pid>-<n>`. Interface names are limited to 15
 * characters, which a 2-character prefix keeps to for any Linux PID (at most 7 digits).
 */
export function uniqueName(prefix = 'vu'): string {
  const name = `${prefix}-${process.pid}-${++nameSeq}`;
  if (name.length > 15) throw new Error(`name ${name} is longer than an interface name may be`);
  return name;
}

/** Addresses of a private /24 shared by the host end (.1) and one guest (.2). */
export interface Subnet {
  hostIp: string;
  guestIp: string;
  prefixLength: 24;
  /** `hostIp/24`, for `ip addr add`. */
  hostCidr: string;
  /** `guestIp/24`, for the guest's `vu.ip=`. */
  guestCidr: string;
}

let subnetSeq = 0;

/**
 * The next 10.77.<n>.0/24 of this process. The subnet only ever exists inside namespaces the test
 * creates (the host end of the link is moved into one), so other processes using the same numbers
 * do not collide with it.
 */
export function privateSubnet(): Subnet {
  const third = (subnetSeq++ % 250) + 1;
  const hostIp = `10.77.${third}.1`;
  const guestIp = `10.77.${third}.2`;
  return { hostIp, guestIp, prefixLength: 24, hostCidr: `${hostIp}/24`, guestCidr: `${guestIp}/24` };
}

/** A network namespace of this test; deleted (with every interface in it) when the test ends. */
export class NetNs {
  private deleted = false;
  /** Links moved in: deleted explicitly before the namespace, because a TAP that a process still
   * holds open would otherwise move back to the root namespace when the namespace goes. */
  private readonly movedLinks: string[] = [];
  private readonly unregisterAtExit: () => void;

  private constructor(readonly name: string) {
    this.unregisterAtExit = atExit(() => execFileSync('ip', ['netns', 'delete', name], { stdio: 'ignore' }));
  }

  /** Creates a fresh namespace with its loopback up. */
  static async create(t: Teardown): Promise<NetNs> {
    const name = uniqueName('vu');
    await mustRun('ip', ['netns', 'add', name]);
    const ns = new NetNs(name);
    t.teardown(() => ns.delete());
    await mustRun('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    return ns;
  }

  /** Moves `ifname` from the root namespace into this one (also works while QEMU holds a TAP open). */
  async moveLink(ifname: string): Promise<void> {
    await mustRun('ip', ['link', 'set', ifname, 'netns', this.name]);
    this.movedLinks.push(ifname);
  }

  /** Adds `cidr` (e.g. 10.77.1.1/24) to `ifname` and brings the link up. */
  async configure(ifname: string, cidr: string): Promise<void> {
    await mustRun('ip', ['-n', this.name, 'addr', 'add', cidr, 'dev', ifname]);
    await mustRun('ip', ['-n', this.name, 'link', 'set', ifname, 'up']);
  }

  /** Runs `cmd args` inside the namespace to completion (`ip netns exec`). */
  exec(cmd: string, args: string[], options?: RunOptions): Promise<RunResult> {
    return run('ip', ['netns', 'exec', this.name, cmd, ...args], options);
  }

  /** Starts a background process inside the namespace (e.g. `iperf3 -s`), stopped when the test ends. */
  spawn(cmd: string, args: string[], name: string, t: Teardown): Promise<LoggedProcess> {
    return spawnLogged('ip', ['netns', 'exec', this.name, cmd, ...args], { name, teardown: t });
  }

  /** Deletes the namespace; the kernel destroys the virtual interfaces (TAPs included) in it. */
  async delete(): Promise<void> {
    if (this.deleted) return;
    this.deleted = true;
    this.unregisterAtExit();
    for (const link of this.movedLinks) await run('ip', ['-n', this.name, 'link', 'delete', link]);
    await mustRun('ip', ['netns', 'delete', this.name]);
  }
}

/**
 * Creates a persistent TAP device in the root namespace, removed when the test ends. A TAP that
 * was moved into a namespace has gone with that namespace by then; that is not an error.
 */
export async function createTap(t: Teardown, name = uniqueName('vt')): Promise<string> {
  await mustRun('ip', ['tuntap', 'add', 'dev', name, 'mode', 'tap']);
  const unregisterAtExit = atExit(() => execFileSync('ip', ['link', 'delete', name], { stdio: 'ignore' }));
  t.teardown(async () => {
    unregisterAtExit();
    const result = await run('ip', ['link', 'delete', name]);
    if (result.code !== 0 && !/Cannot find device/.test(result.stderr)) {
      throw new Error(`ip link delete ${name}: ${result.stderr.trim()}`);
    }
  });
  return name;
}

/** A macvtap in the root namespace and the link it sits on. */
export interface Macvtap {
  /** Its device node, `/dev/tapN` (N: its ifindex), for `--tap`. */
  node: string;
  /** The other end of the veth pair the macvtap sits on: the network (move it into a NetNs). */
  peer: string;
}

/**
 * Creates a veth pair and a bridge-mode macvtap with address `mac` on one end (the guest's MAC:
 * a macvtap takes in only frames to its own address), all removed when the test ends.
 */
export async function createMacvtap(t: Teardown, mac: string): Promise<Macvtap> {
  const lower = uniqueName('vl');
  const peer = uniqueName('vp');
  const macvtap = uniqueName('vm');
  await mustRun('ip', ['link', 'add', lower, 'type', 'veth', 'peer', 'name', peer]);
  // Deleting one end of the pair deletes the other (wherever it is) and the macvtap on it; the
  // namespace the peer was moved into may have done so already.
  const unregisterAtExit = atExit(() => execFileSync('ip', ['link', 'delete', lower], { stdio: 'ignore' }));
  t.teardown(async () => {
    unregisterAtExit();
    const result = await run('ip', ['link', 'delete', lower]);
    if (result.code !== 0 && !/Cannot find device/.test(result.stderr)) throw new Error(`ip link delete ${lower}: ${result.stderr.trim()}`);
  });
  await mustRun('ip', ['link', 'add', 'link', lower, 'name', macvtap, 'address', mac, 'type', 'macvtap', 'mode', 'bridge']);
  for (const link of [lower, macvtap]) await mustRun('ip', ['link', 'set', link, 'up']);
  const ifindex = readFileSync(`/sys/class/net/${macvtap}/ifindex`, 'utf8').trim();
  return { node: `/dev/tap${ifindex}`, peer };
}
