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
import { BackendServer, singleDevice } from '../backend/server.ts';
import * as native from '../native.ts';
import { SwitchMode } from '../switch/switch-mode.ts';
import { ctlMain } from './ctl.ts';

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
  if (command.mode === 'ctl') return ctlMain(command.argv);
  try {
    return command.tap === undefined ? await runSwitch(command, log) : await runBackend(command, command.tap, log);
  } catch (error) {
    const code = (error as { code?: string }).code;
    log.error((error as Error).message, { code });
    return 1;
  }
}

/** Resolves on the first SIGTERM or SIGINT, after `stop` ran. */
function untilSignal(log: Logger, stop: () => Promise<void> | void): Promise<void> {
  return new Promise<void>((resolve) => {
    const shutdown = async (signal: string) => {
      log.info('shutting down', { signal });
      await stop();
      resolve();
    };
    process.once('SIGTERM', () => void shutdown('SIGTERM'));
    process.once('SIGINT', () => void shutdown('SIGINT'));
  });
}

async function runSwitch(options: BackendOptions, log: Logger): Promise<number> {
  const switchMode = new SwitchMode(options, log);
  await switchMode.start();
  await untilSignal(log, () => switchMode.stop());
  return 0;
}

async function runBackend(options: BackendOptions, tap: string, log: Logger): Promise<number> {
  const mac = options.mac ?? randomMac((n) => randomBytes(n));
  const device = new NetDevice({ queuePairs: options.queuePairs, mac, mtu: options.mtu, guestAnnounce: options.announce === 'guest' });
  const nativeDevice = new native.NetDevice(tap, options.queuePairs, (event) => {
    if (event.kind === 'fault') log.error('guest broke a ring; queue pair stopped until the front-end resets it', { queuePair: event.queuePair, reason: event.message });
    else if (event.kind === 'host-failure') log.error('queue pair stopped by a failure on this host until the front-end resets it', { queuePair: event.queuePair, reason: event.message });
    else log.info(event.message);
  });
  nativeDevice.setBusyPoll(options.busyPollUs);
  const dataPlane = new NativeDataPlane(nativeDevice);
  if (options.mtu !== undefined) dataPlane.setMtu(options.mtu);
  log.info('TAP opened', { tap: nativeDevice.tapName, queuePairs: options.queuePairs, mac: formatMac(mac) });
  const attach = singleDevice(nativeDevice.tapName, device, dataPlane, 'this TAP back-end serves one guest at a time');
  const server = new BackendServer({ ...options, attach, log });
  server.start();
  await untilSignal(log, () => {
    server.stop();
    nativeDevice.close();
  });
  return 0;
}
