// Bun macro (imported `with { type: "macro" }`): runs when console.ts is transpiled or bundled, so
// the compiled binary carries the result as a string. It turns server modules the console shares
// into browser JavaScript: today the caller-ID template rules, so the form checks templates exactly
// as the API does when they are saved.
import { readFileSync } from "node:fs";
import { join } from "node:path";

export function callerIdTemplateModule(): string {
  const source = readFileSync(join(import.meta.dir, "../channels/callerIdTemplate.ts"), "utf8");
  const js = new Bun.Transpiler({ loader: "ts" }).transformSync(source);
  // The browser fetches this one file: a module it would have to import from is not there.
  if (/^\s*import\s/m.test(js)) throw new Error("src/channels/callerIdTemplate.ts must import nothing: the console serves it alone");
  return js;
}
