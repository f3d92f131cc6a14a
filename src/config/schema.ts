// A small schema builder: one definition validates input (YAML config and API bodies), yields the
// TypeScript type through `Infer<>`, and emits JSON Schema (2020-12, as OpenAPI 3.1 uses).
//
//   const Trunk = s.object({ id: s.string(), port: s.integer({ min: 1 }).optional() });
//   type Trunk = Infer<typeof Trunk>;
//   const result = validate(Trunk, input);   // { ok: true, value } | { ok: false, issues }
//   Trunk.toJsonSchema();
//
// Objects are strict: unknown keys are issues. Every issue is collected, none stops validation.

export type Path = (string | number)[];
export interface Issue {
  path: Path;
  message: string;
  /** The issue is about the key itself (an unknown key), not its value. */
  onKey?: boolean;
}
export type JsonSchema = Record<string, unknown>;

export abstract class Schema<T> {
  /** Phantom field carrying the output type for `Infer<>`. */
  declare readonly _output: T;
  protected meta: { description?: string; writeOnly?: boolean; example?: unknown } = {};

  /** Returns the validated (and defaulted) value, or undefined after pushing issues. */
  abstract check(input: unknown, path: Path, issues: Issue[]): T | undefined;
  protected abstract baseJsonSchema(): JsonSchema;

  toJsonSchema(): JsonSchema {
    const out = this.baseJsonSchema();
    if (this.meta.description !== undefined) out.description = this.meta.description;
    if (this.meta.writeOnly) out.writeOnly = true;
    if (this.meta.example !== undefined) out.examples = [this.meta.example];
    return out;
  }

  describe(description: string): this {
    const copy = this.clone();
    copy.meta = { ...this.meta, description };
    return copy;
  }

  /** Marks a secret: accepted on input, documented as write-only, never part of a response. */
  writeOnly(): this {
    const copy = this.clone();
    copy.meta = { ...this.meta, writeOnly: true };
    return copy;
  }

  example(example: T): this {
    const copy = this.clone();
    copy.meta = { ...this.meta, example };
    return copy;
  }

  optional(): OptionalSchema<T> {
    return new OptionalSchema(this);
  }

  default(value: T): DefaultSchema<T> {
    return new DefaultSchema(this, value);
  }

  /**
   * Adds a rule on the validated value; `rule` returns undefined when satisfied, else a message
   * about the whole value or one about a part of it (`at` is relative to this value).
   */
  refine(rule: (value: T) => string | { at: Path; message: string } | undefined): Schema<T> {
    return new RefinedSchema(this, rule);
  }

  private clone(): this {
    return Object.assign(Object.create(Object.getPrototypeOf(this)), this);
  }
}

export type Infer<S> = S extends Schema<infer T> ? T : never;

export class OptionalSchema<T> extends Schema<T | undefined> {
  constructor(readonly inner: Schema<T>) {
    super();
  }
  check(input: unknown, path: Path, issues: Issue[]): T | undefined {
    return input === undefined ? undefined : this.inner.check(input, path, issues);
  }
  protected baseJsonSchema(): JsonSchema {
    return this.inner.toJsonSchema();
  }
}

export class DefaultSchema<T> extends Schema<T> {
  constructor(
    readonly inner: Schema<T>,
    readonly defaultValue: T,
  ) {
    super();
  }
  check(input: unknown, path: Path, issues: Issue[]): T | undefined {
    // The default runs through the inner schema too, so an object default of {} fills nested defaults.
    return this.inner.check(input === undefined ? structuredClone(this.defaultValue) : input, path, issues);
  }
  protected baseJsonSchema(): JsonSchema {
    return { ...this.inner.toJsonSchema(), default: this.defaultValue };
  }
}

class RefinedSchema<T> extends Schema<T> {
  constructor(
    private readonly inner: Schema<T>,
    private readonly rule: (value: T) => string | { at: Path; message: string } | undefined,
  ) {
    super();
  }
  check(input: unknown, path: Path, issues: Issue[]): T | undefined {
    const value = this.inner.check(input, path, issues);
    if (value === undefined) return undefined;
    const failure = this.rule(value);
    if (failure === undefined) return value;
    issues.push(typeof failure === "string" ? { path, message: failure } : { path: [...path, ...failure.at], message: failure.message });
    return undefined;
  }
  protected baseJsonSchema(): JsonSchema {
    return this.inner.toJsonSchema();
  }
}

function describeType(input: unknown): string {
  if (input === null) return "null";
  if (Array.isArray(input)) return "a list";
  if (typeof input === "object") return "a mapping";
  return `a ${typeof input}`;
}

export interface StringRules {
  minLength?: number;
  maxLength?: number;
  pattern?: RegExp;
  /** Human description of the pattern, used in the error message. */
  patternHint?: string;
  format?: "uri";
}

class StringSchema extends Schema<string> {
  constructor(private readonly rules: StringRules) {
    super();
  }
  check(input: unknown, path: Path, issues: Issue[]): string | undefined {
    if (typeof input !== "string") {
      issues.push({ path, message: `must be a string, got ${describeType(input)}` });
      return undefined;
    }
    const { minLength, maxLength, pattern, patternHint, format } = this.rules;
    if (minLength !== undefined && input.length < minLength) {
      issues.push({ path, message: minLength === 1 ? "must not be empty" : `must be at least ${minLength} characters` });
      return undefined;
    }
    if (maxLength !== undefined && input.length > maxLength) {
      issues.push({ path, message: `must be at most ${maxLength} characters` });
      return undefined;
    }
    if (pattern && !pattern.test(input)) {
      issues.push({ path, message: `must be ${patternHint ?? `a string matching ${pattern.source}`}` });
      return undefined;
    }
    if (format === "uri" && !isHttpUrl(input)) {
      issues.push({ path, message: "must be an http:// or https:// URL" });
      return undefined;
    }
    return input;
  }
  protected baseJsonSchema(): JsonSchema {
    const out: JsonSchema = { type: "string" };
    if (this.rules.minLength !== undefined) out.minLength = this.rules.minLength;
    if (this.rules.maxLength !== undefined) out.maxLength = this.rules.maxLength;
    if (this.rules.pattern) out.pattern = this.rules.pattern.source;
    if (this.rules.format) out.format = this.rules.format;
    return out;
  }
}

function isHttpUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return url.protocol === "http:" || url.protocol === "https:";
  } catch {
    return false;
  }
}

class IntegerSchema extends Schema<number> {
  constructor(private readonly rules: { min?: number; max?: number }) {
    super();
  }
  check(input: unknown, path: Path, issues: Issue[]): number | undefined {
    const { min, max } = this.rules;
    if (typeof input !== "number" || !Number.isInteger(input)) {
      issues.push({ path, message: `must be an integer, got ${describeType(input)}` });
      return undefined;
    }
    if ((min !== undefined && input < min) || (max !== undefined && input > max)) {
      const range = max === undefined ? `at least ${min}` : min === undefined ? `at most ${max}` : `between ${min} and ${max}`;
      issues.push({ path, message: `must be ${range}` });
      return undefined;
    }
    return input;
  }
  protected baseJsonSchema(): JsonSchema {
    const out: JsonSchema = { type: "integer" };
    if (this.rules.min !== undefined) out.minimum = this.rules.min;
    if (this.rules.max !== undefined) out.maximum = this.rules.max;
    return out;
  }
}

class BooleanSchema extends Schema<boolean> {
  check(input: unknown, path: Path, issues: Issue[]): boolean | undefined {
    if (typeof input === "boolean") return input;
    issues.push({ path, message: `must be true or false, got ${describeType(input)}` });
    return undefined;
  }
  protected baseJsonSchema(): JsonSchema {
    return { type: "boolean" };
  }
}

class EnumSchema<const V extends string> extends Schema<V> {
  constructor(private readonly values: readonly V[]) {
    super();
  }
  check(input: unknown, path: Path, issues: Issue[]): V | undefined {
    if (typeof input === "string" && (this.values as readonly string[]).includes(input)) return input as V;
    issues.push({ path, message: `must be one of ${this.values.map((v) => JSON.stringify(v)).join(", ")}` });
    return undefined;
  }
  protected baseJsonSchema(): JsonSchema {
    return { type: "string", enum: [...this.values] };
  }
}

class ArraySchema<T> extends Schema<T[]> {
  constructor(
    private readonly item: Schema<T>,
    private readonly rules: { minItems?: number; maxItems?: number; uniqueBy?: (item: T) => string; uniqueLabel?: string },
  ) {
    super();
  }
  check(input: unknown, path: Path, issues: Issue[]): T[] | undefined {
    if (!Array.isArray(input)) {
      issues.push({ path, message: `must be a list, got ${describeType(input)}` });
      return undefined;
    }
    const { minItems, maxItems, uniqueBy, uniqueLabel } = this.rules;
    if (minItems !== undefined && input.length < minItems) {
      issues.push({ path, message: `must have at least ${minItems} item${minItems === 1 ? "" : "s"}` });
      return undefined;
    }
    if (maxItems !== undefined && input.length > maxItems) {
      issues.push({ path, message: `must have at most ${maxItems} items` });
      return undefined;
    }
    const before = issues.length;
    const out = input.map((element, i) => this.item.check(element, [...path, i], issues));
    if (issues.length > before) return undefined;
    const values = out as T[];
    if (uniqueBy) {
      const seen = new Set<string>();
      values.forEach((value, i) => {
        const key = uniqueBy(value);
        if (seen.has(key)) issues.push({ path: [...path, i], message: `duplicate ${uniqueLabel ?? "item"} ${JSON.stringify(key)}` });
        seen.add(key);
      });
      if (issues.length > before) return undefined;
    }
    return values;
  }
  protected baseJsonSchema(): JsonSchema {
    const out: JsonSchema = { type: "array", items: this.item.toJsonSchema() };
    if (this.rules.minItems !== undefined) out.minItems = this.rules.minItems;
    if (this.rules.maxItems !== undefined) out.maxItems = this.rules.maxItems;
    return out;
  }
}

class RecordSchema<T> extends Schema<Record<string, T>> {
  constructor(
    private readonly key: Schema<string>,
    private readonly value: Schema<T>,
  ) {
    super();
  }
  check(input: unknown, path: Path, issues: Issue[]): Record<string, T> | undefined {
    if (!isPlainObject(input)) {
      issues.push({ path, message: `must be a mapping, got ${describeType(input)}` });
      return undefined;
    }
    const before = issues.length;
    const out: Record<string, T> = {};
    for (const [k, v] of Object.entries(input)) {
      const keyIssues: Issue[] = [];
      this.key.check(k, [...path, k], keyIssues);
      for (const issue of keyIssues) issues.push({ ...issue, message: `key ${issue.message}`, onKey: true });
      const value = this.value.check(v, [...path, k], issues);
      if (value !== undefined) out[k] = value;
    }
    return issues.length > before ? undefined : out;
  }
  protected baseJsonSchema(): JsonSchema {
    return { type: "object", propertyNames: this.key.toJsonSchema(), additionalProperties: this.value.toJsonSchema() };
  }
}

export type Shape = Record<string, Schema<unknown>>;
type OptionalKeys<S extends Shape> = { [K in keyof S]: S[K] extends OptionalSchema<unknown> ? K : never }[keyof S];
type RequiredKeys<S extends Shape> = Exclude<keyof S, OptionalKeys<S>>;
type Flatten<T> = { [K in keyof T]: T[K] } & {};
export type InferShape<S extends Shape> = Flatten<
  { [K in RequiredKeys<S>]: Infer<S[K]> } & { [K in OptionalKeys<S>]?: Exclude<Infer<S[K]>, undefined> }
>;
type PartialShape<S extends Shape> = { [K in keyof S]: OptionalSchema<Exclude<Infer<S[K]>, undefined>> };

export class ObjectSchema<S extends Shape> extends Schema<InferShape<S>> {
  constructor(readonly shape: S) {
    super();
  }
  check(input: unknown, path: Path, issues: Issue[]): InferShape<S> | undefined {
    if (!isPlainObject(input)) {
      issues.push({ path, message: `must be a mapping, got ${describeType(input)}` });
      return undefined;
    }
    const before = issues.length;
    for (const key of Object.keys(input)) {
      if (!Object.hasOwn(this.shape, key)) {
        issues.push({ path: [...path, key], message: `unknown key${suggestion(key, Object.keys(this.shape))}`, onKey: true });
      }
    }
    const out: Record<string, unknown> = {};
    for (const [key, schema] of Object.entries(this.shape)) {
      const raw = input[key];
      if (raw === undefined && !(schema instanceof OptionalSchema) && !(schema instanceof DefaultSchema)) {
        issues.push({ path: [...path, key], message: "is required" });
        continue;
      }
      const value = schema.check(raw, [...path, key], issues);
      if (value !== undefined) out[key] = value;
    }
    return issues.length > before ? undefined : (out as InferShape<S>);
  }
  protected baseJsonSchema(): JsonSchema {
    const properties: Record<string, JsonSchema> = {};
    const required: string[] = [];
    for (const [key, schema] of Object.entries(this.shape)) {
      properties[key] = schema.toJsonSchema();
      if (!(schema instanceof OptionalSchema) && !(schema instanceof DefaultSchema)) required.push(key);
    }
    const out: JsonSchema = { type: "object", properties, additionalProperties: false };
    if (required.length > 0) out.required = required;
    return out;
  }

  /** Every key optional and without defaults: the body of a PATCH. */
  partial(): ObjectSchema<PartialShape<S>> {
    const shape: Record<string, Schema<unknown>> = {};
    for (const [key, schema] of Object.entries(this.shape)) {
      const base = schema instanceof OptionalSchema || schema instanceof DefaultSchema ? schema.inner : schema;
      shape[key] = base.optional();
    }
    return new ObjectSchema(shape as PartialShape<S>);
  }

  /** The same object without some keys (e.g. a path parameter that is not part of the body). */
  omit<K extends keyof S & string>(...keys: K[]): ObjectSchema<Omit<S, K>> {
    const shape: Record<string, Schema<unknown>> = { ...this.shape };
    for (const key of keys) delete shape[key];
    return new ObjectSchema(shape as Omit<S, K>);
  }

  extend<E extends Shape>(extra: E): ObjectSchema<Omit<S, keyof E> & E> {
    return new ObjectSchema({ ...this.shape, ...extra } as Omit<S, keyof E> & E);
  }
}

function isPlainObject(input: unknown): input is Record<string, unknown> {
  return typeof input === "object" && input !== null && !Array.isArray(input);
}

function suggestion(key: string, known: string[]): string {
  const close = known.find((k) => k.toLowerCase() === key.toLowerCase() || editDistance(k, key) <= 2);
  return close ? ` (did you mean "${close}"?)` : "";
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!;
      row[j] = Math.min(above + 1, row[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length]!;
}

export const s = {
  string: (rules: StringRules = {}) => new StringSchema(rules),
  integer: (rules: { min?: number; max?: number } = {}) => new IntegerSchema(rules),
  boolean: () => new BooleanSchema(),
  enum: <const V extends string>(values: readonly V[]) => new EnumSchema<V>(values),
  array: <T>(item: Schema<T>, rules: { minItems?: number; maxItems?: number; uniqueBy?: (item: T) => string; uniqueLabel?: string } = {}) =>
    new ArraySchema(item, rules),
  record: <T>(key: Schema<string>, value: Schema<T>) => new RecordSchema(key, value),
  object: <S extends Shape>(shape: S) => new ObjectSchema(shape),
  /** An object that may be absent: absent means {}, so every nested default applies. */
  defaulted: <T extends object>(schema: Schema<T>) => new DefaultSchema<T>(schema, {} as T),
};

export type ValidationResult<T> = { ok: true; value: T } | { ok: false; issues: Issue[] };

export function validate<T>(schema: Schema<T>, input: unknown, path: Path = []): ValidationResult<T> {
  const issues: Issue[] = [];
  const value = schema.check(input, path, issues);
  if (issues.length > 0 || value === undefined) return { ok: false, issues };
  return { ok: true, value };
}

/** `trunks[0].domain` — the way paths are printed in config errors and API error fields. */
export function formatPath(path: Path): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out === "" ? part : `.${part}`;
  }
  return out;
}
