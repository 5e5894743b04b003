/**
 * `vhost-user-net ctl [--control PATH] [--json] <command> [args]`: talks to a running switch over
 * its control socket. Tables for people; `--json` prints the result as the switch sent it.
 * Exit status: 0 done, 1 the switch refused (or cannot be reached), 2 bad command line.
 */
import { ControlClient } from '../switch/control-client.ts';
import { ControlError, checkPortName, parseUplinkSpec, type ControlCommand } from '../switch/control-protocol.ts';
import { formatMacs, formatPorts, formatStats } from '../switch/control-format.ts';
import { defaultControlPath } from '../switch/default-paths.ts';
import { formatMac } from '../device/mac.ts';
import { splitPortOptions, UsageError } from './args.ts';

export { defaultControlPath, defaultSocketPath } from '../switch/default-paths.ts';

export const CTL_USAGE = `Usage: vhost-user-net ctl [--control PATH] [--json] <command> [args]

Talks to a running vhost-user-net switch.

Commands:
  ports                          list ports with their state and counters
  macs                           show the learned MAC addresses
  stats                          switch-wide counters
  add-port NAME=PATH[,vlan=N][,mac=MAC[,ip=ADDR]…]
                                 add a vhost-user port listening on the socket PATH
                                 (access VLAN N; locked to MAC and IPv4/IPv6 ADDRs:
                                 port security)
  remove-port NAME               remove a port (its guest loses its link)
  add-uplink SPEC[,vlan=N]       add an uplink: tap:NAME, stream:unix:PATH or
                                 stream:tcp:HOST:PORT
  remove-uplink ID               remove an uplink by its port id

Options:
  --control PATH   the switch's control socket (default ${defaultControlPath()})
  --json           print the result as JSON instead of a table
  -h, --help       this text
`;

class CtlUsageError extends Error {}

/** `splitPortOptions` (the options after a port or uplink) with ctl's usage error. */
function portOptions(...args: Parameters<typeof splitPortOptions>): ReturnType<typeof splitPortOptions> {
  try {
    return splitPortOptions(...args);
  } catch (error) {
    throw error instanceof UsageError ? new CtlUsageError(error.message) : error;
  }
}

interface CtlCommand {
  controlPath: string;
  json: boolean;
  cmd: ControlCommand;
  args: Record<string, unknown>;
}

/** argv is what follows `ctl`. */
function parseCtlArgs(argv: string[]): CtlCommand | 'help' {
  let controlPath = defaultControlPath();
  let json = false;
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '-h' || arg === '--help') return 'help';
    else if (arg === '--json') json = true;
    else if (arg === '--control') {
      const value = argv[++i];
      if (value === undefined || value.length === 0) throw new CtlUsageError('--control needs a socket path');
      controlPath = value;
    } else if (arg.startsWith('--control=')) {
      controlPath = arg.slice('--control='.length);
      if (controlPath.length === 0) throw new CtlUsageError('--control needs a socket path');
    } else if (arg.startsWith('-') && positional.length === 0) throw new CtlUsageError(`unknown option ${arg}`);
    else positional.push(arg);
  }
  const [cmd, ...rest] = positional;
  if (cmd === undefined) throw new CtlUsageError('which command? (ports, macs, stats, add-port, remove-port, add-uplink, remove-uplink)');
  const expect = (count: number, form: string) => {
    if (rest.length !== count) throw new CtlUsageError(`usage: ctl ${cmd}${form ? ` ${form}` : ''}`);
  };
  try {
    switch (cmd) {
      case 'ports':
      case 'macs':
      case 'stats':
        expect(0, '');
        return { controlPath, json, cmd, args: {} };
      case 'add-port': {
        expect(1, 'NAME=PATH[,vlan=N][,mac=MAC[,ip=ADDR]…]');
        const { body, vlan, security } = portOptions(rest[0], 'add-port', ['vlan', 'mac', 'ip']);
        const eq = body.indexOf('=');
        if (eq <= 0 || eq === body.length - 1) throw new CtlUsageError(`add-port: '${body}' is not NAME=PATH`);
        const options = { ...(vlan && { vlan }), ...(security && { mac: formatMac(security.mac) }), ...(security?.ips.length && { ips: security.ips }) };
        return { controlPath, json, cmd, args: { name: checkPortName(body.slice(0, eq)), path: body.slice(eq + 1), ...options } };
      }
      case 'remove-port':
        expect(1, 'NAME');
        return { controlPath, json, cmd, args: { name: checkPortName(rest[0]) } };
      case 'add-uplink': {
        expect(1, 'tap:NAME|stream:unix:PATH|stream:tcp:HOST:PORT[,vlan=N]');
        const { body, vlan } = portOptions(rest[0], 'add-uplink', ['vlan']);
        parseUplinkSpec(body);
        return { controlPath, json, cmd, args: { spec: body, ...(vlan && { vlan }) } };
      }
      case 'remove-uplink':
        expect(1, 'ID');
        if (!/^[0-9]{1,15}$/.test(rest[0])) throw new CtlUsageError(`remove-uplink: '${rest[0]}' is not a port id`);
        return { controlPath, json, cmd, args: { id: Number(rest[0]) } };
      default:
        throw new CtlUsageError(`unknown command '${cmd}'`);
    }
  } catch (error) {
    if (error instanceof ControlError) throw new CtlUsageError(error.message);
    throw error;
  }
}

/** The human form of a command's result. */
function formatResult(cmd: ControlCommand, result: unknown): string {
  switch (cmd) {
    case 'ports':
      return formatPorts(result);
    case 'macs':
      return formatMacs(result);
    case 'stats':
      return formatStats(result);
    case 'add-port':
    case 'add-uplink':
      return formatPorts([result]);
    case 'remove-port':
      return `removed port ${(result as { removed: string }).removed}\n`;
    case 'remove-uplink':
      return `removed uplink ${(result as { removed: number }).removed}\n`;
  }
}

/**
 * Runs one ctl command (argv: the arguments after `ctl`); returns the exit status. Output goes to
 * `out` (default stdout), messages to `err` (default stderr).
 */
export async function ctlMain(argv: string[], out: (s: string) => void = (s) => process.stdout.write(s), err: (s: string) => void = (s) => process.stderr.write(s)): Promise<number> {
  let command: CtlCommand | 'help';
  try {
    command = parseCtlArgs(argv);
  } catch (error) {
    if (!(error instanceof CtlUsageError)) throw error;
    err(`vhost-user-net ctl: ${error.message}\n`);
    return 2;
  }
  if (command === 'help') {
    out(CTL_USAGE);
    return 0;
  }
  let client: ControlClient | undefined;
  try {
    client = await ControlClient.connect(command.controlPath);
    const response = await client.request(command.cmd, command.args);
    if (!response.ok) {
      err(`vhost-user-net ctl: ${command.cmd}: ${response.error.message} (${response.error.code})\n`);
      return 1;
    }
    out(command.json ? `${JSON.stringify(response.result, null, 2)}\n` : formatResult(command.cmd, response.result));
    return 0;
  } catch (error) {
    if (!(error instanceof ControlError)) throw error;
    err(`vhost-user-net ctl: ${error.message} (${error.code})\n`);
    return 1;
  } finally {
    client?.close();
  }
}
