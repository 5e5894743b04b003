/** One line per event on stderr: `<iso time> <level> <scope>: <message> key=value …`. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const LEVEL_ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  child(scope: string): Logger;
}

function formatValue(value: unknown): string {
  if (typeof value === 'bigint') return `0x${value.toString(16)}`;
  if (typeof value === 'string') return /\s/.test(value) ? JSON.stringify(value) : value;
  return String(value);
}

export function createLogger(scope: string, minLevel: LogLevel = envLevel(), write: (line: string) => unknown = (line) => process.stderr.write(line)): Logger {
  const emit = (level: LogLevel, message: string, fields?: Record<string, unknown>) => {
    if (LEVEL_ORDER[level] < LEVEL_ORDER[minLevel]) return;
    const extra = fields ? Object.entries(fields).filter(([, v]) => v !== undefined).map(([k, v]) => ` ${k}=${formatValue(v)}`).join('') : '';
    write(`${new Date().toISOString()} ${level.padEnd(5)} ${scope}: ${message}${extra}\n`);
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (sub) => createLogger(`${scope}/${sub}`, minLevel, write),
  };
}

function envLevel(): LogLevel {
  const level = process.env.VHOST_USER_NET_LOG;
  return level && level in LEVEL_ORDER ? (level as LogLevel) : 'info';
}
