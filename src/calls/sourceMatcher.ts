// Which trunk an inbound request comes from, by its source address: the trunk's resolved addresses
// or its `allowedAddresses` (addresses or CIDR blocks). Built once per trunk/DNS change so that a
// request from anywhere else (a scanner) costs one Map lookup and a short range scan.

export interface TrunkSources {
  trunkId: string;
  /** Addresses the trunk's domain resolved to (RFC 3263). */
  resolvedAddresses: readonly string[];
  /** Operator-given addresses or CIDR blocks. */
  allowedAddresses: readonly string[];
}

interface Range {
  trunkId: string;
  v6: boolean;
  network: bigint;
  mask: bigint;
}

/** An IPv4 block as unsigned 32-bit numbers: the lookup every request's source takes stays cheap. */
interface V4Range {
  trunkId: string;
  network: number;
  mask: number;
}

export type SourceMatcher = (address: string) => string | undefined;

/**
 * Returns the id of the first trunk (in the given order) the address belongs to. An IPv4 source
 * (the usual case, and a scanner's) costs a scan of its characters and a Map lookup, plus the CIDR
 * blocks when there are any; IPv6 takes the general path.
 */
export function createSourceMatcher(trunks: readonly TrunkSources[]): SourceMatcher {
  const exactV4 = new Map<number, string>();
  const v4Ranges: V4Range[] = [];
  const exactV6 = new Map<string, string>();
  const v6Ranges: Range[] = [];
  const addExact = (address: string, trunkId: string) => {
    const key = normalise(address);
    if (key === undefined) return;
    const value = toBigInt(key)!;
    if (value.v6) {
      if (!exactV6.has(key)) exactV6.set(key, trunkId);
    } else if (!exactV4.has(Number(value.value))) {
      exactV4.set(Number(value.value), trunkId);
    }
  };
  for (const trunk of trunks) {
    for (const address of trunk.resolvedAddresses) addExact(address, trunk.trunkId);
    for (const entry of trunk.allowedAddresses) {
      const range = parseCidr(entry, trunk.trunkId);
      if (!range) continue;
      const full = range.v6 ? 128 : 32;
      if (range.mask === prefixMask(full, full)) addExact(entry.split("/")[0]!, trunk.trunkId);
      else if (range.v6) v6Ranges.push(range);
      else v4Ranges.push({ trunkId: range.trunkId, network: Number(range.network), mask: Number(range.mask) });
    }
  }
  const matchV4 = (value: number): string | undefined => {
    const hit = exactV4.get(value);
    if (hit !== undefined) return hit;
    for (const range of v4Ranges) if (((value & range.mask) >>> 0) === range.network) return range.trunkId;
    return undefined;
  };
  return (address) => {
    const v4 = dottedQuad(address);
    if (v4 !== undefined) return matchV4(v4);
    const key = normalise(address);
    if (key === undefined) return undefined;
    const parsed = toBigInt(key)!;
    if (!parsed.v6) return matchV4(Number(parsed.value));
    const hit = exactV6.get(key);
    if (hit !== undefined) return hit;
    for (const range of v6Ranges) if ((parsed.value & range.mask) === range.network) return range.trunkId;
    return undefined;
  };
}

/** "a.b.c.d", or "::ffff:a.b.c.d" as a dual-stack socket reports it, as a 32-bit number; else undefined. */
function dottedQuad(address: string): number | undefined {
  let i = address.length > 7 && address.charCodeAt(0) === 58 && /^::ffff:/i.test(address) ? 7 : 0;
  let value = 0;
  for (let octet = 0; octet < 4; octet++) {
    if (octet > 0) {
      if (address.charCodeAt(i) !== 46) return undefined; // "."
      i++;
    }
    let n = 0;
    const start = i;
    for (let c = address.charCodeAt(i); c >= 48 && c <= 57 && i - start < 3; c = address.charCodeAt(++i)) n = n * 10 + (c - 48);
    if (i === start || n > 255) return undefined;
    value = value * 256 + n;
  }
  return i === address.length ? value : undefined;
}

/** Canonical text of an IP address ("::ffff:1.2.3.4" → "1.2.3.4", brackets and zone dropped), or undefined. */
function normalise(address: string): string | undefined {
  let a = address.trim();
  if (a.startsWith("[") && a.endsWith("]")) a = a.slice(1, -1);
  const zone = a.indexOf("%");
  if (zone !== -1) a = a.slice(0, zone);
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(a);
  if (mapped) a = mapped[1]!;
  const value = toBigInt(a);
  if (!value) return undefined;
  return value.v6 ? `v6:${value.value.toString(16)}` : `v4:${value.value.toString(16)}`;
}

function toBigInt(address: string): { v6: boolean; value: bigint } | undefined {
  if (address.startsWith("v4:")) return { v6: false, value: BigInt(`0x${address.slice(3)}`) };
  if (address.startsWith("v6:")) return { v6: true, value: BigInt(`0x${address.slice(3)}`) };
  const v4 = parseV4(address);
  if (v4 !== undefined) return { v6: false, value: v4 };
  const v6 = parseV6(address);
  return v6 === undefined ? undefined : { v6: true, value: v6 };
}

function parseV4(address: string): bigint | undefined {
  const parts = address.split(".");
  if (parts.length !== 4) return undefined;
  let value = 0n;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part) || Number(part) > 255) return undefined;
    value = (value << 8n) | BigInt(Number(part));
  }
  return value;
}

function parseV6(address: string): bigint | undefined {
  if (!/^[0-9a-fA-F:.]+$/.test(address)) return undefined;
  let text = address;
  // An embedded IPv4 tail ("::ffff:1.2.3.4", "64:ff9b::1.2.3.4") becomes two hex groups.
  const tail = /(\d{1,3}(?:\.\d{1,3}){3})$/.exec(text);
  if (tail) {
    const v4 = parseV4(tail[1]!);
    if (v4 === undefined) return undefined;
    text = `${text.slice(0, tail.index)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const head = halves[0] ? halves[0].split(":") : [];
  const rest = halves.length === 2 && halves[1] ? halves[1].split(":") : [];
  const missing = 8 - head.length - rest.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const groups = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill("0"), ...rest];
  let value = 0n;
  for (const group of groups) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(group)) return undefined;
    value = (value << 16n) | BigInt(`0x${group}`);
  }
  return value;
}

function prefixMask(bits: number, width: number): bigint {
  return bits === 0 ? 0n : ((1n << BigInt(bits)) - 1n) << BigInt(width - bits);
}

function parseCidr(entry: string, trunkId: string): Range | undefined {
  const [address, prefix] = entry.trim().split("/");
  if (address === undefined) return undefined;
  const key = normalise(address);
  const value = key === undefined ? undefined : toBigInt(key);
  if (!value) return undefined;
  const width = value.v6 ? 128 : 32;
  const bits = prefix === undefined ? width : Number(prefix);
  if (!Number.isInteger(bits) || bits < 0 || bits > width) return undefined;
  const mask = prefixMask(bits, width);
  return { trunkId, v6: value.v6, network: value.value & mask, mask };
}
