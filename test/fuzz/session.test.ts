/**
 * Short fuzz runs of the session state machine (fixed seeds; `npm run fuzz` runs them long): on
 * the recording data plane, and on the real Rust data plane over memfd guest memory.
 */
import test from 'ava';
import { setImmediate as yieldToEvents } from 'node:timers/promises';
import { describeFailure, runCampaign } from './campaign.ts';
import { NativeSessionFuzzer, recordingSessionCase } from './session-fuzz.ts';
import { uniqueName } from '../helpers/netns.ts';

test('session on the recording data plane: never throws, one reply at most, every fd closed once', async (t) => {
  const result = await runCampaign('session', recordingSessionCase, 0x5e55n, 3000);
  t.log(describeFailure(result));
  t.is(result.failure, undefined, describeFailure(result));
  t.true(result.cases >= 50, `only ${result.cases} cases ran`);
});

test('session on the native data plane: lying regions and garbage rings, no crash, no fd leaked', async (t) => {
  const fuzzer = new NativeSessionFuzzer(uniqueName('vf'));
  t.teardown(() => fuzzer.close());
  const result = await runCampaign('session-native', async (seed) => {
    await fuzzer.runCase(seed);
    await yieldToEvents(); // let device events in
  }, 0x9a71n, 4000);
  t.log(describeFailure(result), `device events: ${fuzzer.events.filter((e) => e.kind === 'fault').length} faults`);
  t.is(result.failure, undefined, describeFailure(result));
  t.true(result.cases >= 5, `only ${result.cases} cases ran`);
});
