import { describe, expect, test } from "bun:test";
import { parseTemplate, renderTemplate } from "../../src/channels/callerIdTemplate.ts";
import { trunkSchema } from "../../src/config/entities.ts";
import { s, validate, type Infer } from "../../src/config/schema.ts";

describe("schema builder", () => {
  const schema = s.object({
    name: s.string({ minLength: 1 }),
    port: s.integer({ min: 1, max: 10 }).default(5),
    tags: s.array(s.string()).optional(),
    secret: s.string().writeOnly(),
  });

  test("validates, fills defaults and leaves absent optionals out", () => {
    const result = validate(schema, { name: "x", secret: "s" });
    expect(result).toEqual({ ok: true, value: { name: "x", port: 5, secret: "s" } });
    const typed: Infer<typeof schema> = result.ok ? result.value : { name: "", port: 0, secret: "" };
    expect(typed.port).toBe(5);
  });

  test("collects every issue with its path", () => {
    const result = validate(schema, { name: "", port: 11, tags: ["a", 2], extra: true });
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.issues.map((i) => [i.path.join("."), i.message])).toEqual([
        ["extra", "unknown key"],
        ["name", "must not be empty"],
        ["port", "must be between 1 and 10"],
        ["tags.1", "must be a string, got a number"],
        ["secret", "is required"],
      ]);
    }
  });

  test("partial() makes every key optional without defaults (PATCH bodies)", () => {
    expect(validate(schema.partial(), {})).toEqual({ ok: true, value: {} });
    expect(validate(schema.partial(), { bogus: 1 }).ok).toBe(false);
  });

  test("emits strict JSON Schema with required keys, defaults and writeOnly secrets", () => {
    expect(schema.toJsonSchema()).toEqual({
      type: "object",
      properties: {
        name: { type: "string", minLength: 1 },
        port: { type: "integer", minimum: 1, maximum: 10, default: 5 },
        tags: { type: "array", items: { type: "string" } },
        secret: { type: "string", writeOnly: true },
      },
      additionalProperties: false,
      required: ["name", "secret"],
    });
  });

  test("the trunk schema documents the password as write-only", () => {
    const json = trunkSchema.toJsonSchema() as { properties: Record<string, { writeOnly?: boolean }>; required: string[] };
    expect(json.properties.password?.writeOnly).toBe(true);
    expect(json.required).toEqual(["id", "domain"]);
  });
});

describe("caller-ID templates", () => {
  test("renders variables, roles joined with commas, missing values as empty strings", () => {
    const parsed = parseTemplate("{userAlias}-{userId} [{roles}]{region}");
    if (!parsed.ok) throw new Error(parsed.error);
    expect(renderTemplate(parsed.parts, { userAlias: "ann", userId: "u1", roles: ["dial", "admin"] })).toBe("ann-u1 [dial,admin]");
  });

  test("rejects unknown variables and unbalanced braces", () => {
    expect(parseTemplate("{userName}")).toMatchObject({ ok: false, error: expect.stringContaining("unknown variable {userName}") });
    expect(parseTemplate("{id")).toMatchObject({ ok: false, error: 'unclosed "{" at position 0' });
    expect(parseTemplate("id}")).toMatchObject({ ok: false, error: 'unmatched "}" at position 2' });
  });
});
