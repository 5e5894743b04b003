// The test guest's kernel and initramfs, built (or found up to date) by test/guest/build-image.sh.

import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { artifactsDir, mustRun } from './proc.ts';

export interface GuestImage {
  kernel: string;
  initrd: string;
}

const buildScript = fileURLToPath(new URL('../guest/build-image.sh', import.meta.url));
const imageDir = join(artifactsDir, 'guest');
let building: Promise<GuestImage> | undefined;

/**
 * Runs build-image.sh once per test process; it returns at once when the image is up to date and
 * may install host packages with apt-get on a fresh machine (hence the long timeout).
 */
export function ensureGuestImage(): Promise<GuestImage> {
  building ??= mustRun('bash', [buildScript, imageDir], { timeoutMs: 15 * 60_000 }).then(() => ({
    kernel: join(imageDir, 'vmlinuz'),
    initrd: join(imageDir, 'initramfs.cpio.gz'),
  }));
  return building;
}
