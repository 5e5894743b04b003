// The QEMU command line of a test guest. Pure, so that what the harness boots can be read and
// checked without starting QEMU.

export interface QemuGuestConfig {
  kernel: string;
  initrd: string;
  memoryMiB: number;
  cpus: number;
  /**
   * The `-cpu` model; default 'max'. Live migration needs a migratable model: with 'max', QEMU 7.2
   * under TCG corrupts the guest's memory on the destination (seen with and without vhost-user).
   */
  cpuModel?: string;
  /**
   * One TCG thread for all vCPUs (`-accel tcg,thread=single`), for a guest that live-migrates. With
   * QEMU 7.2's default (a thread per vCPU) the destination guest crashed after 20 of 45 migration
   * test attempts here (slab, hrtimer and page-allocator corruption; also with QEMU's own tap, see
   * migration-retry.ts); with one TCG thread after 13 of 43. Crashes come in bursts (four in a row
   * with one thread too), so this is weak evidence, but the setting costs nothing the tests measure.
   */
  singleThreadedTcg?: boolean;
  /** The kernel command line after `console=ttyS0 panic=-1 no_timer_check`. */
  kernelArgs: string[];
  /** The netdev and whatever it needs, e.g. ['-netdev', 'tap,id=n0,…'] or ['-chardev', …, '-netdev', 'vhost-user,…']. */
  netdevArgs: string[];
  /** The `-device` value, e.g. 'virtio-net-pci,netdev=n0,mac=…' (with vhost-user under TCG: add vectors=0). */
  deviceArgs: string;
}

/**
 * Arguments for qemu-system-x86_64: TCG (no KVM here), no default devices, the serial console on
 * stdio (the command agent's channel), no reboot (a guest panic or poweroff ends QEMU). Guest memory
 * is always a shared memfd as one NUMA node: a vhost-user back-end must map it, and it is harmless
 * for QEMU's own netdevs.
 */
export function qemuGuestArgs(config: QemuGuestConfig): string[] {
  return [
    '-accel', config.singleThreadedTcg ? 'tcg,thread=single' : 'tcg',
    '-cpu', config.cpuModel ?? 'max',
    '-smp', String(config.cpus),
    '-m', `${config.memoryMiB}M`,
    // Names QEMU's threads: the vCPU threads are `CPU <n>/TCG` (the bench measures them apart).
    '-name', 'guest,debug-threads=on',
    '-object', `memory-backend-memfd,id=mem,size=${config.memoryMiB}M,share=on`,
    '-numa', 'node,memdev=mem',
    '-nodefaults',
    '-no-user-config',
    '-nographic',
    '-chardev', 'stdio,id=console,signal=off',
    '-serial', 'chardev:console',
    '-no-reboot',
    '-kernel', config.kernel,
    '-initrd', config.initrd,
    // no_timer_check: under TCG on a loaded host the kernel's IO-APIC timer check can fail and panic
    // the boot ("IO-APIC + timer doesn't work"); the check proves nothing for an emulated guest.
    '-append', ['console=ttyS0', 'panic=-1', 'no_timer_check', ...config.kernelArgs].join(' '),
    ...config.netdevArgs,
    '-device', config.deviceArgs,
  ];
}
