// Feature words are 64-bit bigints; feature tables are numeric enums (bit number → name).

/** A bit-number → name table; a TypeScript numeric enum object is one. */
export type FeatureNameTable = { readonly [bit: number]: string | undefined };

/** The mask with the given bit numbers set. */
export function featureMask(...bits: number[]): bigint {
  let mask = 0n;
  for (const bit of bits) {
    if (!Number.isInteger(bit) || bit < 0 || bit > 63) throw new RangeError(`feature bit ${bit} out of 0..63`);
    mask |= 1n << BigInt(bit);
  }
  return mask;
}

/** True if bit number `bit` is set in `bits`. */
export function hasFeature(bits: bigint, bit: number): boolean {
  return (bits & featureMask(bit)) !== 0n;
}

/** describeFeatures() - names of the set bits, lowest first; bits the table lacks as `bit<N>`. For logs. */
export function describeFeatures(bits: bigint, table: FeatureNameTable): string[] {
  const names: string[] = [];
  for (let bit = 0; bit < 64; bit++) {
    if ((bits >> BigInt(bit)) & 1n) names.push(table[bit] ?? `bit${bit}`);
  }
  return names;
}
