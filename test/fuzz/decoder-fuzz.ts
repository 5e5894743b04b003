/**
 * Fuzz case for the message decoder: a hostile message either decodes to a Request or is refused
 * with a ProtocolError; anything else (TypeError, RangeError from a DataView, a hang) is a bug.
 */
import { decodeRequest } from '../../src/protocol/decode.ts';
import { ProtocolError } from '../../src/protocol/errors.ts';
import { hostileMessage } from './mutate.ts';
import { Rng } from './rng.ts';

/** Messages decoded per case. */
const MESSAGES_PER_CASE = 64;

export function decoderCase(seed: bigint): void {
  const rng = new Rng(seed);
  for (let i = 0; i < MESSAGES_PER_CASE; i++) {
    const { bytes, fdCount } = hostileMessage(rng);
    try {
      decodeRequest(bytes, fdCount);
    } catch (error) {
      if (!(error instanceof ProtocolError)) {
        throw new Error(`decodeRequest threw ${(error as Error)?.name} on message ${i} (${Buffer.from(bytes).toString('hex')}, ${fdCount} fds): ${(error as Error)?.message}`, { cause: error });
      }
    }
  }
}
