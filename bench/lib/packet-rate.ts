/**
 * What the two packet-rate scenarios (TAP path, VM-to-VM) share: a testpmd generator feeds the
 * subject, so both report the same metrics and record a run the same way.
 */
import type { Testpmd } from '../../test/helpers/testpmd.ts';
import type { BenchBackend } from './backend.ts';
import { affinityText, SUBJECT_CPU, testpmdFeatureNames, testpmdPlacement } from './dpdk.ts';
import type { MetricSpec } from './results.ts';
import type { RunOutcome } from './scenario.ts';

/** The metrics: `ppsLabel` says where frames are counted, `offeredLabel` what the generator offers. */
export function packetRateMetrics(ppsLabel: string, offeredLabel: string): MetricSpec[] {
  return [
    { key: 'pps', label: ppsLabel, unit: 'pps', higherIsBetter: true },
    { key: 'cpuShare', label: 'subject CPU (1.0 = one core)', unit: 'CPU', higherIsBetter: false },
    { key: 'ppsPerCpu', label: 'frames per subject CPU-second', unit: 'pps/CPU', higherIsBetter: true },
    { key: 'generatorCpu', label: 'generator CPU', unit: 'CPU', higherIsBetter: false, context: true },
    { key: 'otherCpu', label: 'CPU used by other processes meanwhile (noise)', unit: 'CPU', higherIsBetter: false, context: true },
    { key: 'generatorTxPps', label: offeredLabel, unit: 'pps', higherIsBetter: true, context: true },
  ];
}

/** A run of this back-end, fed by `generator`. */
export function backendOutcome(figures: Record<string, number>, backend: BenchBackend, generator: Testpmd): RunOutcome {
  return {
    figures,
    commands: [backend.command, `dpdk-testpmd ${generator.args.join(' ')}`],
    features: { backend: backend.features(), generator: testpmdFeatureNames(generator).virtio ?? [] },
    placement: { backend: `taskset -c ${SUBJECT_CPU}; threads ${affinityText(backend.process.pid)}`, generator: testpmdPlacement(generator) },
    logs: [backend.process.logPath, generator.logPath],
  };
}

/** A run of the reference testpmd (its vhost socket `referenceSocket`), fed by `generator`. */
export function referenceOutcome(figures: Record<string, number>, reference: Testpmd, referenceSocket: string, generator: Testpmd): RunOutcome {
  return {
    figures,
    commands: [`dpdk-testpmd ${reference.args.join(' ')}`, `dpdk-testpmd ${generator.args.join(' ')}`],
    features: { reference: testpmdFeatureNames(reference, referenceSocket).virtio ?? [], generator: testpmdFeatureNames(generator).virtio ?? [] },
    placement: { reference: testpmdPlacement(reference), generator: testpmdPlacement(generator) },
    logs: [reference.logPath, generator.logPath],
  };
}
