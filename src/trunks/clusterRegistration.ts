// Registration once per cluster (cluster.front set): what the trunk manager needs to register each
// registering trunk from one node at a time, with a Contact at the front so the carrier's calls
// reach the front, which dispatches them to any node.
//   - RegistrationLeases: the lease table (src/store/registrations.ts implements it).
//   - contactAtFront(port, front): the SIP port the registration client uses, its Contact at the front.
// The manager claims (or renews) every lease it wants after each heartbeat (TrunkManager.syncLeases).
import { NO_PARAMS, NO_URI_HEADERS, type NameAddr, type SipUri } from "../sip/message.ts";
import type { TrunkSipPort } from "./exchange.ts";
import type { RegistrationStatus } from "./registration.ts";

export interface RegistrationLeaseRow {
  trunkId: string;
  nodeId: string;
  /** Lease time left by the database's clock; 0 or less: lapsed. */
  remainingMs: number;
  status: { state: string; expiresAt: string | null; lastError: string | null; lastStatusCode: number | null };
}

export interface RegistrationLeases {
  /** Takes or renews the trunk's lease for ttlMs; true when this node holds it now. */
  claim(o: { trunkId: string; nodeId: string; ttlMs: number; status: RegistrationStatus }): Promise<boolean>;
  /** The holder's registration state changed (written only while `nodeId` holds the lease). */
  report(trunkId: string, nodeId: string, status: RegistrationStatus): Promise<void>;
  release(trunkId: string, nodeId: string): Promise<void>;
  list(): Promise<RegistrationLeaseRow[]>;
}

export interface ClusterRegistration {
  /** This node (cluster.nodeId). */
  nodeId: string;
  leases: RegistrationLeases;
  /** A holder that stops renewing loses its lease this long after its last renewal (cluster.deadAfterMs). */
  leaseMs: number;
  /** The front's address: every node's binding Contact names it. */
  front: { address: string; port: number };
}

/** The same port, but the Contact it gives the registration client is at the front (same user, transport). */
export function contactAtFront(port: TrunkSipPort, front: { address: string; port: number }): TrunkSipPort {
  return {
    send: (req, target, o) => port.send(req, target, o),
    contact(user, transport): NameAddr {
      const params = new Map<string, string | null>();
      if (transport !== "udp") params.set("transport", transport);
      const uri: SipUri = { scheme: "sip", host: front.address, port: front.port, params, headers: NO_URI_HEADERS };
      if (user) uri.user = user;
      return { uri, params: NO_PARAMS };
    },
    get localHost() {
      return port.localHost;
    },
  };
}
