// Structured JSON logs on stdout, one object per line. Secrets never reach the output: values of
// fields named like secrets are replaced by REDACTED, and string values are scrubbed of secret
// patterns (bearer tokens, JWTs, SIP credentials, SDES keys, DTMF in SIP INFO bodies, URL
// passwords). Only lines that pass the level filter are scrubbed and serialized, so the scrubbing
// costs nothing for filtered lines and one cheap test per key and per string for the rest
// (bench/log.bench.ts).
export type LogLevel = "debug" | "info" | "warn" | "error";

export const REDACTED = "[redacted]";

const levelRank: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
let threshold: number = levelRank.info;
let write: (line: string) => void = (line) => process.stdout.write(line + "\n");

export function setLogLevel(level: LogLevel): void {
  threshold = levelRank[level];
}

/** Whether lines at `level` are written: a caller skips building a line's fields when not. */
export function logsAt(level: LogLevel): boolean {
  return levelRank[level] >= threshold;
}

/** Redirects log output (tests capture lines with this). */
export function setLogSink(sink: (line: string) => void): void {
  write = sink;
}

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  /**
   * A logger with more fixed fields, under this component or `component`: a lower layer logging
   * about the same subject (a call's media leg or dialog) keeps its own component name.
   */
  child(fields: Record<string, unknown>, component?: string): Logger;
}

/**
 * A logger whose fixed fields can grow after it was handed out (an outbound call learns its SIP
 * Call-ID only when its INVITE is built); its children carry the new fields too.
 */
export interface ContextLogger extends Logger {
  /** Adds (or replaces) fixed fields of this logger and of every child made from it. */
  assign(fields: Record<string, unknown>): void;
}

/** The fixed fields of a logger, already scrubbed; the same object until they change. */
type FixedFields = () => Record<string, unknown>;

/**
 * Its methods live on the prototype: a call makes a few loggers (its own, its media leg's, its
 * dialog's) and a SIP transaction keeps its call's for 64*T1, so a logger is one object and its
 * fields, not a closure per level.
 */
class FieldLogger implements Logger {
  constructor(
    private readonly component: string,
    private readonly fixed: FixedFields,
  ) {}

  debug(msg: string, fields?: Record<string, unknown>): void {
    this.emit("debug", msg, fields);
  }

  info(msg: string, fields?: Record<string, unknown>): void {
    this.emit("info", msg, fields);
  }

  warn(msg: string, fields?: Record<string, unknown>): void {
    this.emit("warn", msg, fields);
  }

  error(msg: string, fields?: Record<string, unknown>): void {
    this.emit("error", msg, fields);
  }

  child(fields: Record<string, unknown>, component = this.component): Logger {
    return new FieldLogger(component, extend(this.fixed, fields));
  }

  private emit(level: LogLevel, msg: string, fields?: Record<string, unknown>): void {
    if (levelRank[level] < threshold) return;
    const safeFields = fields && (scrub(fields, 0) as Record<string, unknown>);
    write(JSON.stringify({ time: new Date().toISOString(), level, component: this.component, msg: redactText(msg), ...this.fixed(), ...safeFields }));
  }
}

/** The parent's fields and `own`: scrubbed once, merged again only when the parent's change. */
function extend(parent: FixedFields, own: Record<string, unknown>): FixedFields {
  const safeOwn = scrub(own, 0) as Record<string, unknown>;
  let seen: Record<string, unknown> | undefined;
  let merged = safeOwn;
  return () => {
    const current = parent();
    if (current !== seen) {
      seen = current;
      merged = { ...current, ...safeOwn };
    }
    return merged;
  };
}

export function createLogger(component: string, base: Record<string, unknown> = {}): Logger {
  // A child's fixed fields are scrubbed once, not per line.
  const safeBase = scrub(base, 0) as Record<string, unknown>;
  return new FieldLogger(component, () => safeBase);
}

export function createContextLogger(component: string, base: Record<string, unknown> = {}): ContextLogger {
  let current = scrub(base, 0) as Record<string, unknown>;
  return Object.assign(new FieldLogger(component, () => current), {
    assign(fields: Record<string, unknown>): void {
      current = { ...current, ...(scrub(fields, 0) as Record<string, unknown>) };
    },
  });
}

/**
 * Field names whose values are secrets wherever they appear: credentials, tokens, webhook and
 * application secrets, SRTP keys, DTMF digits (PINs, card numbers). `tokenTtlSec` or `secretSet`
 * are not matched: the name must end with the secret word.
 */
const secretField =
  /^(?:digits?|dtmf|signal|.*(?:password|passwd|secret|token|credentials?|authori[sz]ation|api[-_]?key|cookie|(?:master|srtp|crypto|private|session)[-_]?key|key[-_]?params?))$/i;

/** One cheap test deciding whether a string needs the rewrites below. */
const mayHoldSecret = /bearer|authori[sz]ation|response\s*=|inline:|eyJ|:\/\/[^\s/@]*@|[?&][\w-]*(?:token|secret|password|key)=|signal\s*=/i;

const scrubs: [RegExp, string][] = [
  // Authorization / Proxy-Authorization header lines (SIP or HTTP text): the whole value.
  [/\b((?:proxy-)?authori[sz]ation[ \t]*:[ \t]*)[^\r\n]*/gi, `$1${REDACTED}`],
  [/\b(bearer[ \t]+)[A-Za-z0-9._~+/=-]+/gi, `$1${REDACTED}`],
  // Digest credentials outside a header line (RFC 2617 §3.2.2 response, cnonce).
  [/\b((?:response|cnonce)[ \t]*=[ \t]*)(?:"[^"]*"|[^\s,]+)/gi, `$1${REDACTED}`],
  // SDES key-params (RFC 4568 §6.1): inline:<key||salt>[|lifetime][|MKI:length].
  [/(inline:)[^\s;"]+/gi, `$1${REDACTED}`],
  // Compact JWTs (client tokens).
  [/\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g, REDACTED],
  // Passwords in URLs (scheme://user:password@host).
  [/(:\/\/[^\s/:@]*:)[^\s/@]+@/g, `$1${REDACTED}@`],
  [/([?&][\w-]*(?:token|secret|password|key)=)[^&\s#"]+/gi, `$1${REDACTED}`],
  // DTMF in SIP INFO bodies (application/dtmf-relay).
  [/\b(signal[ \t]*=[ \t]*)[^\s]+/gi, `$1${REDACTED}`],
];

/** `value` with every secret pattern replaced by REDACTED. */
export function redactText(value: string): string {
  if (!mayHoldSecret.test(value)) return value;
  let out = value;
  for (const [pattern, replacement] of scrubs) out = out.replace(pattern, replacement);
  return out;
}

const MAX_DEPTH = 16;

/**
 * `value` with secrets replaced and errors as { name, message }; parts without secrets are the
 * same objects (copied only where something changes). A walk before JSON.stringify costs about
 * half of what a replacer function does, which takes JSON.stringify off its fast path.
 */
function scrub(value: unknown, depth: number): unknown {
  if (typeof value === "string") return redactText(value);
  if (typeof value !== "object" || value === null) return value;
  if (value instanceof Error) return { name: value.name, message: redactText(value.message) };
  if (depth >= MAX_DEPTH) return REDACTED;
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      const safe = scrub(item, depth + 1);
      if (safe !== item) (copy ??= value.slice())[i] = safe;
    }
    return copy ?? value;
  }
  if (typeof (value as { toJSON?: unknown }).toJSON === "function") return value;
  let copy: Record<string, unknown> | undefined;
  for (const key of Object.keys(value)) {
    const field = (value as Record<string, unknown>)[key];
    const safe = field !== undefined && field !== null && secretField.test(key) ? REDACTED : scrub(field, depth + 1);
    if (safe !== field) (copy ??= { ...value })[key] = safe;
  }
  return copy ?? value;
}
