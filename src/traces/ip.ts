// IP literals as the bytes pcap and HEP headers carry.

/** An IPv4 literal's 4 bytes; zeros for anything else. */
export function ipv4Bytes(address: string): Uint8Array {
  const parts = address.split(".").map(Number);
  return parts.length === 4 && parts.every((p) => p >= 0 && p <= 255) ? Uint8Array.from(parts) : new Uint8Array(4);
}

/** An IPv6 literal's 16 bytes (an IPv4-mapped peer of a v6 socket written as ::ffff:a.b.c.d). */
export function ipv6Bytes(address: string): Uint8Array {
  const out = new Uint8Array(16);
  if (!address.includes(":")) {
    out[10] = 0xff;
    out[11] = 0xff;
    out.set(ipv4Bytes(address), 12);
    return out;
  }
  let text = address.replace(/%.*$/, "");
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4?.[1]) {
    const b = ipv4Bytes(v4[1]);
    text = text.slice(0, -v4[1].length) + `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head = "", tail] = text.split("::");
  const headGroups = head ? head.split(":") : [];
  const tailGroups = tail ? tail.split(":") : [];
  const groups = tail === undefined ? headGroups : [...headGroups, ...Array<string>(8 - headGroups.length - tailGroups.length).fill("0"), ...tailGroups];
  groups.slice(0, 8).forEach((g, i) => {
    const n = parseInt(g, 16) || 0;
    out[i * 2] = n >> 8;
    out[i * 2 + 1] = n & 0xff;
  });
  return out;
}
