// Serializer: SipRequest/SipResponse → wire bytes (RFC 3261 §7). Content-Length always states
// body.length (§20.14), replacing any value in place or appended last when absent.

import { SipRequest, type SipResponse } from "./message.ts";
import { formatUri } from "./uri.ts";

const encoder = new TextEncoder();

export function serializeMessage(msg: SipRequest | SipResponse): Uint8Array {
  let text = msg instanceof SipRequest
    ? `${msg.method} ${formatUri(msg.uri)} SIP/2.0\r\n`
    : `SIP/2.0 ${msg.status} ${msg.reason}\r\n`;
  let wroteLength = false;
  for (const f of msg.headerFields) {
    if (f.key === "content-length") {
      if (wroteLength) continue;
      text += `Content-Length: ${msg.body.length}\r\n`;
      wroteLength = true;
    } else {
      text += `${f.name}: ${f.value}\r\n`;
    }
  }
  if (!wroteLength) text += `Content-Length: ${msg.body.length}\r\n`;
  text += "\r\n";
  const head = encoder.encode(text);
  if (msg.body.length === 0) return head;
  const out = new Uint8Array(head.length + msg.body.length);
  out.set(head, 0);
  out.set(msg.body, head.length);
  return out;
}
