// Bare SipStacks in tests serve their loopback peers as a trunk would be served: a stack drops
// every request from a source it was not told to know (`isKnownSource`), and these tests are about
// something else than that screen.
export const loopbackIsTrunk = (address: string): boolean => address === "::1" || address.startsWith("127.");
