/** A 6-byte Ethernet MAC address. */
export type MacAddress = Uint8Array;

export class MacError extends Error {
  readonly code = 'VU_ERR_BAD_MAC';
}

export function parseMac(text: string): MacAddress {
  const parts = text.split(':');
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) throw new MacError(`'${text}' is not a MAC address like 52:54:00:12:34:56`);
  const mac = Uint8Array.from(parts.map((p) => parseInt(p, 16)));
  if (mac[0] & 1) throw new MacError(`'${text}' is a multicast address; a NIC needs a unicast MAC`);
  return mac;
}

export function formatMac(mac: MacAddress): string {
  return Array.from(mac, (b) => b.toString(16).padStart(2, '0')).join(':');
}

/** A locally administered unicast address (52:54:00 is QEMU's prefix; we use 02:… to stay distinct). */
export function randomMac(random: (n: number) => Uint8Array): MacAddress {
  const mac = random(6);
  mac[0] = (mac[0] & 0xfc) | 0x02;
  return mac;
}
