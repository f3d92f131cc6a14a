// Reads the YAML config: syntax, duplicate keys, ${ENV} substitution and schema issues are all
// collected and reported at once as `FILE:LINE:COL: key.path: message`.
import { LineCounter, isAlias, isMap, isScalar, isSeq, parseDocument, type Document, type Node } from "yaml";
import { configSchema, type Config } from "./config.ts";
import { formatPath, validate, type Issue, type Path } from "./schema.ts";

export type LoadResult = { ok: true; config: Config } | { ok: false; errors: string[] };

export interface LoadOptions {
  env?: Record<string, string | undefined>;
}

export async function loadConfigFile(file: string, options: LoadOptions = {}): Promise<LoadResult> {
  let text: string;
  try {
    text = await Bun.file(file).text();
  } catch (err) {
    return { ok: false, errors: [`${file}:1:1: (file): cannot read: ${(err as Error).message}`] };
  }
  return parseConfigText(text, file, options);
}

interface Located {
  keyOffset?: number;
  valueOffset: number;
}

export function parseConfigText(text: string, file: string, options: LoadOptions = {}): LoadResult {
  const env = options.env ?? process.env;
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: false, prettyErrors: false });
  const at = (offset: number) => {
    const { line, col } = lineCounter.linePos(offset);
    return `${file}:${line}:${col}`;
  };

  const errors: { offset: number; line: string }[] = [];
  for (const err of doc.errors) errors.push({ offset: err.pos[0], line: `${at(err.pos[0])}: (syntax): ${err.message.split("\n")[0]}` });
  if (errors.length > 0) return { ok: false, errors: errors.map((e) => e.line) };

  const locations = new Map<string, Located>();
  const walkIssues: Issue[] = [];
  const plain = toPlain(doc, doc.contents, [], locations, walkIssues, env) ?? {};
  const validation = validate(configSchema, plain);
  // A failed ${ENV} already explains the value at that path; the schema's complaint about it is noise.
  const walkPaths = new Set(walkIssues.map((issue) => formatPath(issue.path)));
  const schemaIssues = validation.ok ? [] : validation.issues.filter((issue) => !walkPaths.has(formatPath(issue.path)));
  const issues = [...walkIssues, ...schemaIssues];
  if (issues.length === 0 && validation.ok) return { ok: true, config: validation.value };

  for (const issue of issues) {
    const offset = locate(issue, locations);
    const key = formatPath(issue.path) || "(root)";
    errors.push({ offset, line: `${at(offset)}: ${key}: ${issue.message}` });
  }
  errors.sort((a, b) => a.offset - b.offset);
  return { ok: false, errors: errors.map((e) => e.line) };
}

/** The offset of the node an issue is about; a missing key points at the mapping that lacks it. */
function locate(issue: Issue, locations: Map<string, Located>): number {
  const exact = locations.get(formatPath(issue.path));
  if (exact) return issue.onKey ? (exact.keyOffset ?? exact.valueOffset) : exact.valueOffset;
  for (let n = issue.path.length - 1; n >= 0; n--) {
    const parent = locations.get(formatPath(issue.path.slice(0, n)));
    if (parent) return parent.valueOffset;
  }
  return 0;
}

// ${NAME} or ${NAME:-fallback} (fallback used when NAME is unset or empty, as in the shell).
const envReference = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

function toPlain(
  doc: Document,
  node: unknown,
  path: Path,
  locations: Map<string, Located>,
  issues: Issue[],
  env: Record<string, string | undefined>,
  keyOffset?: number,
): unknown {
  if (node === null || node === undefined) return undefined;
  const resolved = isAlias(node) ? (node.resolve(doc) ?? null) : node;
  const offset = (resolved as Node).range?.[0] ?? (node as Node).range?.[0] ?? 0;
  locations.set(formatPath(path), { keyOffset, valueOffset: offset });

  if (isMap(resolved)) {
    const out: Record<string, unknown> = {};
    for (const pair of resolved.items) {
      const keyNode = pair.key;
      const keyStart = (keyNode as Node | null)?.range?.[0] ?? offset;
      const key = isScalar(keyNode) ? keyNode.value : undefined;
      if (typeof key !== "string" && typeof key !== "number") {
        locations.set(formatPath([...path, "?"]), { valueOffset: keyStart });
        issues.push({ path: [...path, "?"], message: "keys must be plain strings" });
        continue;
      }
      const name = String(key);
      if (Object.hasOwn(out, name)) {
        locations.set(formatPath([...path, name]), { keyOffset: keyStart, valueOffset: keyStart });
        issues.push({ path: [...path, name], message: "duplicate key", onKey: true });
        continue;
      }
      out[name] = toPlain(doc, pair.value, [...path, name], locations, issues, env, keyStart);
    }
    return out;
  }
  if (isSeq(resolved)) {
    return resolved.items.map((item, i) => toPlain(doc, item, [...path, i], locations, issues, env));
  }
  if (isScalar(resolved)) {
    const value = resolved.value;
    if (value === null) return undefined;
    if (typeof value !== "string") return value;
    return value.replace(envReference, (_match, name: string, fallback: string | undefined) => {
      const replacement = env[name];
      if (fallback !== undefined && (replacement === undefined || replacement === "")) return fallback;
      if (replacement === undefined) {
        issues.push({ path, message: `environment variable ${name} is not set` });
        return "";
      }
      return replacement;
    });
  }
  return undefined;
}
