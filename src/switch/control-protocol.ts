/**
 * The switch's control protocol: JSON lines over a UNIX socket (`vhost-user-net ctl`).
 *
 *   request  {"id": 1, "cmd": "add-port", "args": {"name": "vm1", "path": "/run/vm1.sock"}}
 *            (add-port also takes "vlan": 1..4094, "mac": "52:54:…" and, with "mac", "ips":
 *            ["10.0.0.5", "fd00::5", …]; add-uplink "vlan")
 *   response {"id": 1, "ok": true, "result": {...}}
 *            {"id": 1, "ok": false, "error": {"code": "VU_ERR_BAD_ARGS", "message": "..."}}
 *
 * One request per line, one response line per request, in order. bigint counters travel as
 * decimal strings. `parseControlRequest` checks a request's syntax and arguments completely before
 * anything reaches the switch, so a bad request changes nothing.
 */
import { MacError, parseMac } from '../device/mac.ts';
import { parseLockedIp, PortSecurityError, withPortSecurity, type PortSecurity } from './port-security.ts';

/** One port of the switch, as the data path reports it. */
export interface PortInfo {
  id: number;
  name: string;
  kind: 'vhost-user' | 'tap' | 'stream';
  mac?: string;
  /** Port security: the port sends only from `mac`, and no other port does (`--port …,mac=`). */
  macLocked?: boolean;
  /** IP port security: the port sends IPv4, IPv6, ARP and neighbour discovery only from these, and no other port claims them (`,ip=`). */
  lockedIps?: string[];
  vlan?: number;
  state: 'connected' | 'waiting' | 'broken';
  rxFrames: bigint;
  txFrames: bigint;
  rxBytes: bigint;
  txBytes: bigint;
  /** Dropped frames by reason (e.g. `noRxBuffers`, `tooLong`). */
  drops: Record<string, bigint>;
}

/** One learned MAC address. */
export interface MacEntry {
  mac: string;
  portId: number;
  portName: string;
  vlan?: number;
  ageSeconds: number;
}

/**
 * What the control server asks of the switch (the switch implements it). A method that fails
 * throws an Error with a `code` (`VU_ERR_…`) and changes nothing.
 */
export interface SwitchControl {
  ports(): PortInfo[];
  macs(): MacEntry[];
  stats(): Record<string, bigint | number>;
  /** `vlan` 0: the untagged segment; `security`: the MAC and IP addresses the port is locked to. */
  addPort(name: string, socketPath: string, vlan?: number, security?: PortSecurity): PortInfo;
  removePort(name: string): void;
  addUplink(spec: string, vlan?: number): PortInfo;
  removeUplink(id: number): void;
}

export const CONTROL_COMMANDS = ['ports', 'macs', 'stats', 'add-port', 'remove-port', 'add-uplink', 'remove-uplink'] as const;
export type ControlCommand = (typeof CONTROL_COMMANDS)[number];

/** A request, its arguments checked. */
export type ControlRequest = { id: number } & (
  | { cmd: 'ports' | 'macs' | 'stats'; args: Record<string, never> }
  | { cmd: 'add-port'; args: { name: string; path: string; vlan?: number; security?: PortSecurity } }
  | { cmd: 'remove-port'; args: { name: string } }
  | { cmd: 'add-uplink'; args: { spec: string; vlan?: number } }
  | { cmd: 'remove-uplink'; args: { id: number } }
);

export type ControlErrorCode =
  /** Not a JSON object with a numeric `id` and a string `cmd`, or a line over MAX_REQUEST_BYTES. */
  | 'VU_ERR_BAD_REQUEST'
  /** `cmd` is not one of CONTROL_COMMANDS. */
  | 'VU_ERR_UNKNOWN_COMMAND'
  /** An argument is missing, of the wrong type, or malformed (port name, uplink spec, id). */
  | 'VU_ERR_BAD_ARGS'
  /** The switch failed with an error that carries no code of its own. */
  | 'VU_ERR_INTERNAL'
  /** The server's answer is not a response line (a client-side error). */
  | 'VU_ERR_BAD_RESPONSE'
  /** The control socket: another instance listens on it, it is not a socket, or nobody answers. */
  | 'VU_ERR_CONTROL_SOCKET';

export class ControlError extends Error {
  readonly code: ControlErrorCode;

  constructor(code: ControlErrorCode, message: string) {
    super(message);
    this.name = 'ControlError';
    this.code = code;
  }
}

export interface ControlErrorBody {
  code: string;
  message: string;
}

/** A response; `result` is JSON-ready (bigints already decimal strings). */
export type ControlResponse = { id: number | null } & ({ ok: true; result: unknown } | { ok: false; error: ControlErrorBody });

/** A request line is at most this long; a longer line is answered with an error and the connection closed. */
export const MAX_REQUEST_BYTES = 64 * 1024;

/** Port names: what fits a log line and a table column, and cannot be confused with an option. */
const PORT_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}$/;
/** Linux IFNAMSIZ is 16 with the NUL; no '/', no whitespace, not '.' or '..'. */
const IFNAME = /^(?!\.{1,2}$)[^/\s:]{1,15}$/;

export type UplinkSpec = { kind: 'tap'; name: string } | { kind: 'stream-unix'; path: string } | { kind: 'stream-tcp'; host: string; port: number };

/**
 * `tap:NAME`, `stream:unix:PATH`, `stream:tcp:HOST:PORT` (HOST may be `[v6]`). Throws ControlError
 * VU_ERR_BAD_ARGS with the accepted forms for anything else.
 */
export function parseUplinkSpec(spec: string): UplinkSpec {
  const fail = (why: string): never => {
    throw new ControlError('VU_ERR_BAD_ARGS', `uplink '${spec}': ${why}; expected tap:NAME, stream:unix:PATH or stream:tcp:HOST:PORT`);
  };
  if (spec.startsWith('tap:')) {
    const name = spec.slice(4);
    if (!IFNAME.test(name)) fail('not an interface name (1-15 characters, no / : or spaces)');
    return { kind: 'tap', name };
  }
  if (spec.startsWith('stream:unix:')) {
    const path = spec.slice('stream:unix:'.length);
    if (path.length === 0 || path.includes('\0')) fail('empty or invalid socket path');
    return { kind: 'stream-unix', path };
  }
  if (spec.startsWith('stream:tcp:')) {
    const match = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})$/.exec(spec.slice('stream:tcp:'.length));
    if (!match) return fail('not HOST:PORT');
    const port = Number(match[2]);
    if (port < 1 || port > 65535) fail(`port ${port} is not 1-65535`);
    return { kind: 'stream-tcp', host: match[1].replace(/^\[(.*)\]$/, '$1'), port };
  }
  return fail('unknown kind');
}

/** Checks a port name (`--port NAME=PATH`, `ctl add-port`); throws ControlError VU_ERR_BAD_ARGS. */
export function checkPortName(name: string): string {
  if (!PORT_NAME.test(name)) throw new ControlError('VU_ERR_BAD_ARGS', `port name '${name}': use 1-32 letters, digits, '_', '.', '-', not starting with '.' or '-'`);
  return name;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The optional access VLAN of add-port / add-uplink: an integer 1..4094 (absent: the untagged segment). */
function vlanArg(args: Record<string, unknown>, cmd: string): { vlan?: number } {
  if (args.vlan === undefined) return {};
  const vlan = args.vlan;
  if (!Number.isSafeInteger(vlan) || (vlan as number) < 1 || (vlan as number) > 4094) throw new ControlError('VU_ERR_BAD_ARGS', `${cmd}: argument 'vlan' must be an integer 1..4094`);
  return { vlan: vlan as number };
}

/**
 * The optional port security of add-port: a unicast MAC like 52:54:00:12:34:56 ("mac"), and with
 * it IPv4 and IPv6 addresses ("ips": ["10.0.0.5", "fd00::5", …]; see `withPortSecurity`).
 */
function securityArg(args: Record<string, unknown>, cmd: string): { security?: PortSecurity } {
  if (args.mac === undefined) {
    if (args.ips !== undefined) throw new ControlError('VU_ERR_BAD_ARGS', `${cmd}: argument 'ips' needs 'mac' too`);
    return {};
  }
  const ips = args.ips ?? [];
  if (!Array.isArray(ips) || ips.some((ip) => typeof ip !== 'string')) throw new ControlError('VU_ERR_BAD_ARGS', `${cmd}: argument 'ips' must be an array of IP addresses`);
  try {
    const mac = parseMac(stringArg(args, 'mac', cmd));
    const parsed = (ips as string[]).map(parseLockedIp);
    if (new Set(parsed).size !== parsed.length) throw new PortSecurityError('an address is listed twice');
    return { security: withPortSecurity(mac, parsed) };
  } catch (error) {
    if (error instanceof ControlError) throw error;
    throw new ControlError('VU_ERR_BAD_ARGS', `${cmd}: argument '${error instanceof MacError ? 'mac' : 'ips'}': ${(error as Error).message}`);
  }
}

function stringArg(args: Record<string, unknown>, key: string, cmd: string): string {
  const value = args[key];
  if (typeof value !== 'string' || value.length === 0) throw new ControlError('VU_ERR_BAD_ARGS', `${cmd}: argument '${key}' must be a non-empty string`);
  return value;
}

/** The `id` of a request line if one can be read, for the error response of a bad request. */
export function requestIdOf(line: string): number | null {
  try {
    const value: unknown = JSON.parse(line);
    return isObject(value) && Number.isSafeInteger(value.id) ? (value.id as number) : null;
  } catch {
    return null;
  }
}

/** One request line → a checked request; throws ControlError (BAD_REQUEST, UNKNOWN_COMMAND, BAD_ARGS). */
export function parseControlRequest(line: string): ControlRequest {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    throw new ControlError('VU_ERR_BAD_REQUEST', `not JSON: ${(error as Error).message}`);
  }
  if (!isObject(value)) throw new ControlError('VU_ERR_BAD_REQUEST', 'a request is a JSON object {"id", "cmd", "args"}');
  const { id, cmd } = value;
  if (!Number.isSafeInteger(id)) throw new ControlError('VU_ERR_BAD_REQUEST', '"id" must be an integer');
  if (typeof cmd !== 'string') throw new ControlError('VU_ERR_BAD_REQUEST', '"cmd" must be a string');
  if (!(CONTROL_COMMANDS as readonly string[]).includes(cmd)) throw new ControlError('VU_ERR_UNKNOWN_COMMAND', `unknown command '${cmd}'; commands: ${CONTROL_COMMANDS.join(', ')}`);
  const args = value.args ?? {};
  if (!isObject(args)) throw new ControlError('VU_ERR_BAD_ARGS', `${cmd}: "args" must be an object`);
  const known: Record<ControlCommand, string[]> = { ports: [], macs: [], stats: [], 'add-port': ['name', 'path', 'vlan', 'mac', 'ips'], 'remove-port': ['name'], 'add-uplink': ['spec', 'vlan'], 'remove-uplink': ['id'] };
  const extra = Object.keys(args).filter((k) => !known[cmd as ControlCommand].includes(k));
  if (extra.length > 0) throw new ControlError('VU_ERR_BAD_ARGS', `${cmd}: unknown argument(s) ${extra.map((k) => `'${k}'`).join(', ')}`);
  const request = { id: id as number };
  switch (cmd as ControlCommand) {
    case 'ports':
    case 'macs':
    case 'stats':
      return { ...request, cmd: cmd as 'ports' | 'macs' | 'stats', args: {} };
    case 'add-port': {
      const name = checkPortName(stringArg(args, 'name', cmd));
      const path = stringArg(args, 'path', cmd);
      if (path.includes('\0')) throw new ControlError('VU_ERR_BAD_ARGS', `${cmd}: the socket path contains a NUL byte`);
      return { ...request, cmd: 'add-port', args: { name, path, ...vlanArg(args, cmd), ...securityArg(args, cmd) } };
    }
    case 'remove-port':
      return { ...request, cmd: 'remove-port', args: { name: checkPortName(stringArg(args, 'name', cmd)) } };
    case 'add-uplink': {
      const spec = stringArg(args, 'spec', cmd);
      parseUplinkSpec(spec);
      return { ...request, cmd: 'add-uplink', args: { spec, ...vlanArg(args, cmd) } };
    }
    case 'remove-uplink': {
      const uplinkId = args.id;
      if (!Number.isSafeInteger(uplinkId) || (uplinkId as number) < 0) throw new ControlError('VU_ERR_BAD_ARGS', `${cmd}: argument 'id' must be a port id (an integer ≥ 0)`);
      return { ...request, cmd: 'remove-uplink', args: { id: uplinkId as number } };
    }
  }
}

/** Runs a checked request against the switch; returns the JSON-ready result. Switch errors propagate. */
export function dispatchControlRequest(control: SwitchControl, request: ControlRequest): unknown {
  switch (request.cmd) {
    case 'ports':
      return toJsonValue(control.ports());
    case 'macs':
      return toJsonValue(control.macs());
    case 'stats':
      return toJsonValue(control.stats());
    case 'add-port':
      return toJsonValue(control.addPort(request.args.name, request.args.path, request.args.vlan, request.args.security));
    case 'remove-port':
      control.removePort(request.args.name);
      return { removed: request.args.name };
    case 'add-uplink':
      return toJsonValue(control.addUplink(request.args.spec, request.args.vlan));
    case 'remove-uplink':
      control.removeUplink(request.args.id);
      return { removed: request.args.id };
  }
}

/** A copy of `value` with every bigint as a decimal string. */
export function toJsonValue(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)));
}

/** The error body of anything thrown: its own `VU_ERR_…` code if it has one, else VU_ERR_INTERNAL. */
export function errorBody(error: unknown): ControlErrorBody {
  const code = isObject(error) && typeof error.code === 'string' && error.code.startsWith('VU_ERR_') ? error.code : 'VU_ERR_INTERNAL';
  const message = error instanceof Error ? error.message : String(error);
  return { code, message };
}

export function encodeControlResponse(response: ControlResponse): string {
  return `${JSON.stringify(response)}\n`;
}

export function encodeControlRequest(id: number, cmd: ControlCommand, args: Record<string, unknown> = {}): string {
  return `${JSON.stringify({ id, cmd, args })}\n`;
}

/** A response line from the server; throws ControlError VU_ERR_BAD_RESPONSE if it is not one. */
export function parseControlResponse(line: string): ControlResponse {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new ControlError('VU_ERR_BAD_RESPONSE', `the server answered something that is not JSON: ${line.slice(0, 80)}`);
  }
  if (!isObject(value) || typeof value.ok !== 'boolean' || (value.id !== null && !Number.isSafeInteger(value.id))) {
    throw new ControlError('VU_ERR_BAD_RESPONSE', `the server answered something that is not a response: ${line.slice(0, 80)}`);
  }
  if (value.ok) return { id: value.id as number | null, ok: true, result: value.result };
  const error = isObject(value.error) ? value.error : {};
  return { id: value.id as number | null, ok: false, error: { code: String(error.code ?? 'VU_ERR_INTERNAL'), message: String(error.message ?? '') } };
}
