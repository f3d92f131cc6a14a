// Compiled alone by binary.test.ts: proves @evan/opus still loads inside a `bun build --compile`
// executable that has no node_modules beside it.
import { Decoder, Encoder } from "@evan/opus";

const encoder = new Encoder({ channels: 1, sample_rate: 48000, application: "voip" });
const packet = encoder.encode(new Uint8Array(960 * 2));
const decoded = new Decoder({ channels: 1, sample_rate: 48000 }).decode(packet);
console.log(JSON.stringify({ packetBytes: packet.length, decodedBytes: decoded.length }));
