// Runs the calls app as its own process (for kill -9 tests): `bun test/helpers/callsProcess.ts CONFIG`.
// Prints one JSON line {"sipPort","url"} once it is up, then serves until killed.
import { startApp } from "../../src/app.ts";
import { composeCalls } from "./callsApp.ts";

const configPath = process.argv[2];
if (!configPath) throw new Error("usage: callsProcess.ts CONFIG");
const composed = composeCalls();
const app = await startApp({ configPath, env: {}, compose: composed.compose });
console.log(JSON.stringify({ sipPort: composed.sipPort(), url: app.url }));
process.on("SIGTERM", () => void app.stop().then(() => process.exit(0)));
