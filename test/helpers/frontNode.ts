// A scripted stand-in for a Trunkline node behind the Kamailio front (deploy/kamailio/kamailio.cfg):
// a UDP socket on a loopback address that answers the front's OPTIONS probes and INVITEs the way a
// test says (answer, 503, silence, 302 to another node), answers ACK with nothing and BYE with 200,
// and keeps every request it received. Kamailio is the peer under test; this plays its nodes.
//
//   const node = await startFrontNode("127.0.0.2");
//   node.invites = "503";                 // or "answer" (default), "silent", { redirectTo: "sip:…" }
//   node.options = 503;                   // what the probes get (default 200)
//   node.received.filter((r) => r.method === "INVITE")
//
// It also plays a carrier behind the front (outbound calls): `receivedFrom` keeps each request's
// source address and port.
import { createResponse, parseMessage, serializeMessage, type SipRequest } from "../../src/sip/message.ts";

export type InviteBehaviour = "answer" | "503" | "silent" | { redirectTo: string };

export interface FrontNode {
  readonly address: string;
  readonly port: number;
  /** The dispatcher list entry for this node. */
  readonly uri: string;
  invites: InviteBehaviour;
  options: number;
  readonly received: SipRequest[];
  /** "address:port" each request of `received` came from. */
  readonly receivedFrom: string[];
  /** INVITEs received (retransmissions included only once, by branch). */
  invitesReceived(): SipRequest[];
  close(): void;
}

export async function startFrontNode(address: string): Promise<FrontNode> {
  const received: SipRequest[] = [];
  const receivedFrom: string[] = [];
  let node: FrontNode;
  const socket = await Bun.udpSocket({
    hostname: address,
    port: 0,
    binaryType: "uint8array",
    socket: {
      data(sock, data, port, from) {
        const parsed = parseMessage(data, "datagram");
        if (!parsed.ok || "status" in parsed.message) return;
        const req = parsed.message;
        received.push(req);
        receivedFrom.push(`${from}:${port}`);
        const reply = (status: number, headers: [string, string][] = [], reason?: string) =>
          void sock.send(serializeMessage(createResponse(req, status, reason, { toTag: `node${node.port}`, headers })), port, from);
        if (req.method === "OPTIONS") reply(node.options);
        else if (req.method === "BYE") reply(200);
        else if (req.method === "INVITE") {
          const behaviour = node.invites;
          if (behaviour === "silent") return;
          if (behaviour === "503") return reply(503, [], "Draining");
          if (typeof behaviour === "object") return reply(302, [["Contact", `<${behaviour.redirectTo}>`]]);
          // RFC 3261 §12.1.1: the 2xx copies the Record-Route of the request.
          const recordRoute = req.getHeaders("Record-Route").map((v): [string, string] => ["Record-Route", v]);
          reply(200, [...recordRoute, ["Contact", `<sip:node@${address}:${node.port}>`]]);
        }
      },
    },
  });
  const invitesReceived = () => {
    const seen = new Set<string>();
    return received.filter((r) => {
      if (r.method !== "INVITE") return false;
      const branch = r.vias[0]?.params.get("branch") ?? "";
      if (seen.has(branch)) return false;
      seen.add(branch);
      return true;
    });
  };
  node = {
    address,
    port: socket.port,
    uri: `sip:${address}:${socket.port}`,
    invites: "answer",
    options: 200,
    received,
    receivedFrom,
    invitesReceived,
    close: () => socket.close(),
  };
  return node;
}
