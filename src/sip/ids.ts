// Identifiers with enough randomness to be globally unique (RFC 3261 §8.1.1.4, §8.1.1.7, §19.3).

export const BRANCH_COOKIE = "z9hG4bK";

/**
 * One flat string: a tag lives as long as its dialog and transactions, and one built by `+=` stays a
 * JavaScriptCore rope of a node per byte, which serializing never flattens.
 */
function randomHex(bytes: number): string {
  return crypto.getRandomValues(Buffer.allocUnsafe(bytes)).toString("hex");
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
