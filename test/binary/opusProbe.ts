// Compiled alone by binary.test.ts: proves Opus (libopus's WebAssembly module from @evan/opus,
// embedded in the executable) still loads inside a `bun build --compile` executable that has no
// node_modules beside it.
import { opus } from "../../src/media/opus.ts";

const packet = opus.createEncoder().encode(new Int16Array(960));
const decoded = opus.createDecoder().decode(packet);
console.log(JSON.stringify({ packetBytes: packet.length, decodedBytes: decoded.byteLength }));
