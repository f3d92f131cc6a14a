// Caller-ID templates: "{userAlias}-{userId}" rendered from the calling client's info.
// Variables per the reference behaviour (spec/README.md reading 2); a variable without a value
// renders as "", an unknown variable is rejected when the template is saved (parseTemplate).

export const CALLER_ID_VARIABLES = ["id", "deviceId", "deviceAlias", "userId", "userAlias", "tag", "roles", "region"] as const;
export type CallerIdVariable = (typeof CALLER_ID_VARIABLES)[number];

export interface CallerIdClientInfo {
  id?: string;
  deviceId?: string;
  deviceAlias?: string;
  userId?: string;
  userAlias?: string;
  tag?: string;
  roles?: string[];
  region?: string;
}

export type TemplatePart = { text: string } | { variable: CallerIdVariable };
export type ParsedTemplate = { ok: true; parts: TemplatePart[] } | { ok: false; error: string };

const known = new Set<string>(CALLER_ID_VARIABLES);

export function parseTemplate(template: string): ParsedTemplate {
  const parts: TemplatePart[] = [];
  let i = 0;
  while (i < template.length) {
    const open = template.indexOf("{", i);
    const strayClose = template.indexOf("}", i);
    if (strayClose !== -1 && (open === -1 || strayClose < open)) {
      return { ok: false, error: `unmatched "}" at position ${strayClose}` };
    }
    if (open === -1) {
      parts.push({ text: template.slice(i) });
      break;
    }
    if (open > i) parts.push({ text: template.slice(i, open) });
    const close = template.indexOf("}", open);
    if (close === -1) return { ok: false, error: `unclosed "{" at position ${open}` };
    const name = template.slice(open + 1, close);
    if (!known.has(name)) {
      return { ok: false, error: `unknown variable {${name}}; known variables: ${CALLER_ID_VARIABLES.map((v) => `{${v}}`).join(" ")}` };
    }
    parts.push({ variable: name as CallerIdVariable });
    i = close + 1;
  }
  return { ok: true, parts };
}

export function renderTemplate(parts: TemplatePart[], client: CallerIdClientInfo): string {
  return parts
    .map((part) => {
      if ("text" in part) return part.text;
      const value = client[part.variable];
      if (value === undefined) return "";
      return Array.isArray(value) ? value.join(",") : value;
    })
    .join("");
}

/** Schema refinement helper: an error message for an invalid template, else undefined. */
export function templateError(template: string): string | undefined {
  const parsed = parseTemplate(template);
  return parsed.ok ? undefined : parsed.error;
}
