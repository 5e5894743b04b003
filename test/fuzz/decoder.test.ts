/** Short fuzz run of the message decoder (fixed seed; `npm run fuzz` runs it long). */
import test from 'ava';
import { describeFailure, runCampaign } from './campaign.ts';
import { decoderCase } from './decoder-fuzz.ts';

test('decoder: mutated and random messages decode or fail with ProtocolError only', async (t) => {
  const result = await runCampaign('decoder', decoderCase, 0x5eedn, 2000);
  t.log(describeFailure(result));
  t.is(result.failure, undefined, describeFailure(result));
  t.true(result.cases >= 50, `only ${result.cases} cases ran`);
});
