// The services of the real process, in start order (stopped in reverse). Each area adds its
// service here; see the Service interface in src/app.ts.
import type { ComposeServices } from "./app.ts";

export const composeServices: ComposeServices = () => [];
