// Message framing on TCP/TLS byte streams (RFC 3261 §18.3): the header section ends at the first
// empty line and Content-Length, mandatory on streams, says how many body bytes follow.
// Keep-alives (RFC 5626 §3.5.1): "\r\n\r\n" ping, "\r\n" pong, seen as CR/LF bytes between messages.

const CR = 13;
const LF = 10;

/** Number of CR/LF bytes at the start of buf (keep-alive pings/pongs or padding between messages). */
export function keepAlivePrefix(buf: Uint8Array): number {
  let i = 0;
  while (i < buf.length && (buf[i] === CR || buf[i] === LF)) i++;
  return i;
}

/**
 * Length in bytes of the first complete message in buf (leading CR/LF bytes included, so the
 * caller can slice buf[0, n) and hand it to parseMessage(…, "stream")), "incomplete" when more
 * bytes are needed, or an error when the stream cannot be framed (the connection should be closed
 * after answering, if possible).
 */
export function nextMessageLength(
  buf: Uint8Array,
  maxSize: number,
): number | "incomplete" | { error: string; status: 400 | 413 } {
  const start = keepAlivePrefix(buf);
  if (start === buf.length) return "incomplete";
  let lineStart = start;
  let contentLength: number | undefined;
  for (;;) {
    const lf = buf.indexOf(LF, lineStart);
    if (lf < 0) {
      return buf.length - start > maxSize ? { error: "Message too large", status: 413 } : "incomplete";
    }
    if (lf - start > maxSize) return { error: "Message too large", status: 413 };
    const line = lineStart === start ? undefined : headerLength(buf, lineStart, lf);
    if (line !== undefined) {
      if (line === "malformed") return { error: "Malformed Content-Length header", status: 400 };
      if (contentLength !== undefined && contentLength !== line) {
        return { error: "Multiple Content-Length headers", status: 400 };
      }
      contentLength = line;
    }
    let bodyStart = -1;
    if (buf[lf + 1] === LF) bodyStart = lf + 2;
    else if (buf[lf + 1] === CR && buf[lf + 2] === LF) bodyStart = lf + 3;
    else if (lf + 2 >= buf.length) return "incomplete"; // cannot tell yet whether the empty line follows
    if (bodyStart >= 0) {
      if (contentLength === undefined) return { error: "Missing Content-Length header", status: 400 };
      const total = bodyStart + contentLength;
      if (total - start > maxSize) return { error: "Message too large", status: 413 };
      return buf.length >= total ? total : "incomplete";
    }
    lineStart = lf + 1;
  }
}

/**
 * The value of a Content-Length ("l" compact form) header on line buf[from, to), undefined for
 * other headers. Folded Content-Length values are not supported on streams.
 */
function headerLength(buf: Uint8Array, from: number, to: number): number | "malformed" | undefined {
  const first = buf[from] ?? 0;
  let i: number;
  if (first === 108 || first === 76) {
    // "l" or "L" followed by optional whitespace and ":"
    i = from + 1;
    if (!isNameEnd(buf, i)) {
      if (!matchesName(buf, from, "content-length")) return undefined;
      i = from + 14;
      if (!isNameEnd(buf, i)) return undefined;
    }
  } else if (first === 99 || first === 67) {
    if (!matchesName(buf, from, "content-length")) return undefined;
    i = from + 14;
    if (!isNameEnd(buf, i)) return undefined;
  } else {
    return undefined;
  }
  while (buf[i] === 32 || buf[i] === 9) i++;
  i++; // ":"
  while (i < to && (buf[i] === 32 || buf[i] === 9)) i++;
  let n = 0;
  let digits = 0;
  while (i < to) {
    const c = buf[i] ?? 0;
    if (c < 48 || c > 57) break;
    n = n * 10 + (c - 48);
    if (n > 0xffffffff) return "malformed";
    digits++;
    i++;
  }
  while (i < to && (buf[i] === 32 || buf[i] === 9 || buf[i] === CR)) i++;
  return digits === 0 || i !== to ? "malformed" : n;
}

function isNameEnd(buf: Uint8Array, i: number): boolean {
  while (buf[i] === 32 || buf[i] === 9) i++;
  return buf[i] === 58;
}

function matchesName(buf: Uint8Array, from: number, lower: string): boolean {
  for (let k = 0; k < lower.length; k++) {
    const c = buf[from + k] ?? 0;
    if ((c | 0x20) !== lower.charCodeAt(k) && c !== lower.charCodeAt(k)) return false;
  }
  return true;
}
