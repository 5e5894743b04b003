import test from 'ava';
import { parseIperf3Json, parsePing } from './guest-figures.ts';

test('parsePing reads busybox output', (t) => {
  const output = [
    'PING 10.77.1.1 (10.77.1.1): 56 data bytes',
    '64 bytes from 10.77.1.1: seq=0 ttl=64 time=0.390 ms',
    '64 bytes from 10.77.1.1: seq=1 ttl=64 time=0.070 ms',
    '',
    '--- 10.77.1.1 ping statistics ---',
    '2 packets transmitted, 2 packets received, 0% packet loss',
    'round-trip min/avg/max = 0.070/0.230/0.390 ms',
  ].join('\n');
  t.deepEqual(parsePing(output), { transmitted: 2, received: 2, avgMs: 0.23, medianMs: 0.23 });
});

test('parsePing reads iputils output', (t) => {
  const output = '3 packets transmitted, 3 received, 0% packet loss, time 2003ms\nrtt min/avg/max/mdev = 0.512/0.640/0.801/0.120 ms\n';
  t.deepEqual(parsePing(output), { transmitted: 3, received: 3, avgMs: 0.64, medianMs: undefined });
});

test('parsePing without replies has no average', (t) => {
  const output = '--- 10.77.1.1 ping statistics ---\n1 packets transmitted, 0 packets received, 100% packet loss\n';
  t.deepEqual(parsePing(output), { transmitted: 1, received: 0, avgMs: undefined, medianMs: undefined });
});

test('parsePing takes the median of the reply lines, which one slow reply does not move', (t) => {
  const times = [0.7, 0.9, 0.8, 9.5, 0.75];
  const output = [
    ...times.map((ms, seq) => `64 bytes from 10.77.1.1: seq=${seq} ttl=64 time=${ms.toFixed(3)} ms`),
    '5 packets transmitted, 5 packets received, 0% packet loss',
    'round-trip min/avg/max = 0.700/2.530/9.500 ms',
  ].join('\n');
  t.like(parsePing(output), { avgMs: 2.53, medianMs: 0.8 });
});

test('parsePing rejects output without a summary', (t) => {
  t.throws(() => parsePing('ping: sendto: Network unreachable'), { message: /no ping summary/ });
});

test('parseIperf3Json takes the receiver rate and the sender retransmits', (t) => {
  const report = {
    start: {},
    intervals: [],
    end: {
      sum_sent: { bits_per_second: 1.3e9, retransmits: 4 },
      sum_received: { bits_per_second: 1.25e9 },
    },
  };
  t.deepEqual(parseIperf3Json(`noise before\n${JSON.stringify(report, null, 2)}\n`), { bitsPerSecond: 1.25e9, retransmits: 4 });
});

test('parseIperf3Json reports an iperf3 error', (t) => {
  t.throws(() => parseIperf3Json('{"start":{},"error":"unable to connect to server: Connection refused"}'), {
    message: 'iperf3: unable to connect to server: Connection refused',
  });
});
