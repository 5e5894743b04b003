/**
 * Control results as aligned tables for people (`vhost-user-net ctl` without --json). Input is the
 * JSON result as it came over the socket: bigint counters are decimal strings there.
 */

type Align = 'left' | 'right';

export interface Column<Row> {
  header: string;
  align?: Align;
  value: (row: Row) => string;
}

/** Rows under a header line, each column as wide as its widest cell, two spaces apart. */
export function formatTable<Row>(columns: Column<Row>[], rows: Row[]): string {
  const cells = [columns.map((c) => c.header), ...rows.map((row) => columns.map((c) => c.value(row)))];
  const widths = columns.map((_, i) => Math.max(...cells.map((line) => line[i].length)));
  return cells
    .map((line) =>
      line
        .map((cell, i) => (columns[i].align === 'right' ? cell.padStart(widths[i]) : i === line.length - 1 ? cell : cell.padEnd(widths[i])))
        .join('  ')
        .trimEnd(),
    )
    .map((line) => `${line}\n`)
    .join('');
}

/** A PortInfo after JSON: counters as strings. */
interface PortRow {
  id: number;
  name: string;
  kind: string;
  mac?: string;
  macLocked?: boolean;
  lockedIps?: string[];
  vlan?: number;
  state: string;
  rxFrames: string;
  txFrames: string;
  rxBytes: string;
  txBytes: string;
  drops: Record<string, string>;
}

interface MacRow {
  mac: string;
  portId: number;
  portName: string;
  vlan?: number;
  ageSeconds: number;
}

const text = (value: unknown) => (value === undefined || value === null ? '-' : String(value));

function dropTotal(drops: Record<string, string>): string {
  return Object.values(drops ?? {})
    .reduce((sum, n) => sum + BigInt(n), 0n)
    .toString();
}

function dropReasons(drops: Record<string, string>): string {
  const nonZero = Object.entries(drops ?? {}).filter(([, n]) => n !== '0');
  return nonZero.length === 0 ? '-' : nonZero.map(([reason, n]) => `${reason}=${n}`).join(',');
}

const PORT_COLUMNS: Column<PortRow>[] = [
  { header: 'ID', align: 'right', value: (p) => text(p.id) },
  { header: 'NAME', value: (p) => text(p.name) },
  { header: 'KIND', value: (p) => text(p.kind) },
  { header: 'STATE', value: (p) => text(p.state) },
  { header: 'MAC', value: (p) => (p.macLocked ? `${p.mac} (locked)` : text(p.mac)) },
  { header: 'VLAN', align: 'right', value: (p) => text(p.vlan) },
  { header: 'RX-FRAMES', align: 'right', value: (p) => text(p.rxFrames) },
  { header: 'RX-BYTES', align: 'right', value: (p) => text(p.rxBytes) },
  { header: 'TX-FRAMES', align: 'right', value: (p) => text(p.txFrames) },
  { header: 'TX-BYTES', align: 'right', value: (p) => text(p.txBytes) },
  { header: 'DROPS', align: 'right', value: (p) => dropTotal(p.drops) },
  { header: 'DROP-REASONS', value: (p) => dropReasons(p.drops) },
];

const MAC_COLUMNS: Column<MacRow>[] = [
  { header: 'MAC', value: (m) => text(m.mac) },
  { header: 'VLAN', align: 'right', value: (m) => text(m.vlan) },
  { header: 'PORT', align: 'right', value: (m) => text(m.portId) },
  { header: 'PORT-NAME', value: (m) => text(m.portName) },
  { header: 'AGE(s)', align: 'right', value: (m) => text(m.ageSeconds) },
];

const STAT_COLUMNS: Column<[string, unknown]>[] = [
  { header: 'COUNTER', value: ([k]) => k },
  { header: 'VALUE', align: 'right', value: ([, v]) => text(v) },
];

/** Shown after MAC only when a port is locked to IP addresses (`,ip=`), which few are. */
const LOCKED_IPS_COLUMN: Column<PortRow> = { header: 'LOCKED-IPS', value: (p) => (p.lockedIps?.length ? p.lockedIps.join(',') : '-') };

/** `ports`, and the port that `add-port` / `add-uplink` created. */
export function formatPorts(ports: unknown): string {
  const rows = ports as PortRow[];
  if (!rows.some((p) => p.lockedIps?.length)) return formatTable(PORT_COLUMNS, rows);
  const afterMac = PORT_COLUMNS.findIndex((c) => c.header === 'MAC') + 1;
  return formatTable([...PORT_COLUMNS.slice(0, afterMac), LOCKED_IPS_COLUMN, ...PORT_COLUMNS.slice(afterMac)], rows);
}

export function formatMacs(macs: unknown): string {
  return formatTable(MAC_COLUMNS, macs as MacRow[]);
}

export function formatStats(stats: unknown): string {
  return formatTable(STAT_COLUMNS, Object.entries(stats as Record<string, unknown>));
}
