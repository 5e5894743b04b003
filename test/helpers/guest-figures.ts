// Figures out of the measuring tools the tests run: ping (busybox or iputils) and `iperf3 -J`.

export interface PingFigures {
  transmitted: number;
  received: number;
  /** Average round trip; undefined when no reply came back. */
  avgMs: number | undefined;
  /** Median of the replies' round trips (per-reply lines); undefined when none is printed. */
  medianMs: number | undefined;
}

/**
 * Reads the summary of a ping run:
 *   busybox: "3 packets transmitted, 3 packets received, 0% packet loss"
 *            "round-trip min/avg/max = 0.512/0.640/0.801 ms"
 *   iputils: "3 packets transmitted, 3 received, 0% packet loss, time 2003ms"
 *            "rtt min/avg/max/mdev = 0.512/0.640/0.801/0.120 ms"
 */
export function parsePing(output: string): PingFigures {
  const counts = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(output);
  if (!counts) throw new Error(`no ping summary in: ${output.slice(-500)}`);
  const rtt = /min\/avg\/max(?:\/mdev)? = [\d.]+\/([\d.]+)\//.exec(output);
  const times = [...output.matchAll(/ time=([\d.]+) ms/g)].map((m) => Number(m[1])).sort((a, b) => a - b);
  const middle = times.length >> 1;
  return {
    transmitted: Number(counts[1]),
    received: Number(counts[2]),
    avgMs: rtt ? Number(rtt[1]) : undefined,
    medianMs: times.length === 0 ? undefined : times.length % 2 ? times[middle] : (times[middle - 1] + times[middle]) / 2,
  };
}

export interface Iperf3Figures {
  /** Goodput as measured by the receiving side. */
  bitsPerSecond: number;
  /** TCP retransmits of the sending side; undefined when iperf3 does not report them (UDP). */
  retransmits: number | undefined;
}

interface Iperf3Sum {
  bits_per_second?: number;
  retransmits?: number;
}

interface Iperf3Report {
  error?: string;
  end?: { sum_received?: Iperf3Sum; sum_sent?: Iperf3Sum; sum?: Iperf3Sum };
}

/** Reads the end summary of `iperf3 -J` output (client side, either direction); throws on an iperf3 error. */
export function parseIperf3Json(json: string): Iperf3Figures {
  const start = json.indexOf('{');
  const end = json.lastIndexOf('}');
  if (start < 0 || end < start) throw new Error(`no iperf3 JSON in: ${json.slice(0, 500)}`);
  const report = JSON.parse(json.slice(start, end + 1)) as Iperf3Report;
  if (report.error !== undefined) throw new Error(`iperf3: ${report.error}`);
  const received = report.end?.sum_received ?? report.end?.sum;
  if (received?.bits_per_second === undefined) throw new Error('iperf3 JSON has no end.sum_received.bits_per_second');
  return {
    bitsPerSecond: received.bits_per_second,
    retransmits: report.end?.sum_sent?.retransmits,
  };
}
