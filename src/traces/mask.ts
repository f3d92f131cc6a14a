// A SIP message as text with its secrets masked the way the logs mask them (src/log.ts redactText):
// Authorization/Proxy-Authorization credentials, SDES keys (a=crypto inline:), DTMF in INFO bodies.
// When masking changes the body, Content-Length is set to the new body's length so the message
// still parses (tshark reads the pcap by it).
import { redactText } from "../log.ts";

const decoder = new TextDecoder();

export function maskedMessage(data: Uint8Array): string {
  const text = decoder.decode(data);
  const split = text.indexOf("\r\n\r\n");
  if (split < 0) return redactText(text);
  const head = redactText(text.slice(0, split));
  const body = text.slice(split + 4);
  const maskedBody = redactText(body);
  if (maskedBody === body) return `${head}\r\n\r\n${body}`;
  const length = Buffer.byteLength(maskedBody);
  // RFC 3261 §20.14 Content-Length, compact form "l" (§7.3.3).
  const fixedHead = head.replace(/^((?:content-length|l)[ \t]*:[ \t]*)\d+/im, `$1${length}`);
  return `${fixedHead}\r\n\r\n${maskedBody}`;
}
