/**
 * `vhost-user-net`: parses the command line, opens the TAP, serves front-ends until SIGTERM/SIGINT
 * (then stops the workers, removes the socket file and exits 0).
 */
import { randomBytes } from 'node:crypto';
import { parseArgs, UsageError, USAGE, type BackendOptions } from './args.ts';
import { createLogger, type Logger } from '../log.ts';
import { formatMac, randomMac } from '../device/mac.ts';
import { NetDevice } from '../device/net-device.ts';
import { NativeDataPlane } from '../device/native-data-plane.ts';
import { BackendServer } from '../backend/server.ts';
import * as native from '../native.ts';

/** The spec's "Back-end program conventions": --print-capabilities prints the device type. */
const CAPABILITIES = { type: 'net' };

export async function main(argv: string[]): Promise<number> {
  const log = createLogger('vhost-user-net');
  let command;
  try {
    command = parseArgs(argv);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`vhost-user-net: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  if (command.mode === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  if (command.mode === 'print-capabilities') {
    process.stdout.write(`${JSON.stringify(CAPABILITIES, null, 2)}\n`);
    return 0;
  }
  try {
    return await runBackend(command, log);
  } catch (error) {
    const code = (error as { code?: string }).code;
    log.error((error as Error).message, { code });
    return 1;
  }
}

async function runBackend(options: BackendOptions, log: Logger): Promise<number> {
  const mac = options.mac ?? randomMac((n) => randomBytes(n));
  const device = new NetDevice({ queuePairs: options.queuePairs, mac, mtu: options.mtu });
  const nativeDevice = new native.NetDevice(options.tap, options.queuePairs, (event) => {
    if (event.kind === 'fault') log.error('guest broke a ring; queue pair stopped until the front-end resets it', { queuePair: event.queuePair, reason: event.message });
    else log.info(event.message);
  });
  const dataPlane = new NativeDataPlane(nativeDevice);
  if (options.mtu !== undefined) dataPlane.setMtu(options.mtu);
  log.info('TAP opened', { tap: nativeDevice.tapName, queuePairs: options.queuePairs, mac: formatMac(mac) });
  const server = new BackendServer({ ...options, device, dataPlane, log });
  server.start();
  await new Promise<void>((resolve) => {
    const shutdown = (signal: string) => {
      log.info('shutting down', { signal });
      server.stop();
      nativeDevice.close();
      resolve();
    };
    process.once('SIGTERM', () => shutdown('SIGTERM'));
    process.once('SIGINT', () => shutdown('SIGINT'));
  });
  return 0;
}
