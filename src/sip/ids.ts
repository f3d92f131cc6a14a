// Identifiers with enough randomness to be globally unique (RFC 3261 §8.1.1.4, §8.1.1.7, §19.3).

export const BRANCH_COOKIE = "z9hG4bK";

function randomHex(bytes: number): string {
  const buf = new Uint8Array(bytes);
  crypto.getRandomValues(buf);
  let out = "";
  for (const b of buf) out += b.toString(16).padStart(2, "0");
  return out;
}

/** Via branch with the RFC 3261 magic cookie (§8.1.1.7). */
export function newBranch(): string {
  return BRANCH_COOKIE + randomHex(12);
}

/** From/To tag: at least 32 bits of randomness (§19.3). */
export function newTag(): string {
  return randomHex(8);
}

export function newCallId(host: string): string {
  return `${randomHex(16)}@${host}`;
}
