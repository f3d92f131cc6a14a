// The RFC 6464 level read straight from a decrypted packet's header extension (RFC 8285), checked
// against packets werift itself serializes, as a client's werift or a browser sends them.
import { expect, test } from "bun:test";
import { RtpHeader, RtpPacket } from "werift";
import { audioLevelOf } from "../../src/webrtc/direct-rtp.ts";

const LEVEL_ID = 3;

function packet(extensions: { id: number; payload: Buffer }[], o: { twoByte?: boolean; csrc?: number[] } = {}): Buffer {
  const header = new RtpHeader({
    sequenceNumber: 7,
    timestamp: 960,
    ssrc: 0x1234,
    payloadType: 111,
    csrc: o.csrc ?? [],
    ...(extensions.length > 0 ? { extension: true, extensions, extensionProfile: o.twoByte ? 0x1000 : 0xbede } : {}),
  });
  return new RtpPacket(header, Buffer.of(0xf8, 0xff, 0xfe)).serialize();
}

test("the level of a one-byte element, alone or after others (a browser's abs-send-time, transport-cc), with the voice bit set or not", () => {
  expect(audioLevelOf(packet([{ id: LEVEL_ID, payload: Buffer.of(42) }]), LEVEL_ID)).toBe(42);
  expect(audioLevelOf(packet([{ id: LEVEL_ID, payload: Buffer.of(0x80 | 42) }]), LEVEL_ID)).toBe(42);
  const browserLike = [
    { id: 2, payload: Buffer.of(1, 2, 3) },
    { id: 5, payload: Buffer.of(0, 9) },
    { id: LEVEL_ID, payload: Buffer.of(0x80 | 127) },
  ];
  expect(audioLevelOf(packet(browserLike), LEVEL_ID)).toBe(127);
  expect(audioLevelOf(packet(browserLike, { csrc: [1, 2] }), LEVEL_ID)).toBe(127);
});

test("the level of a two-byte element (RFC 8285 §4.3)", () => {
  expect(audioLevelOf(packet([{ id: 20, payload: Buffer.alloc(17) }, { id: LEVEL_ID, payload: Buffer.of(0x80 | 30) }], { twoByte: true }), LEVEL_ID)).toBe(30);
});

test("no level: no extension, other elements only, another profile, an element past the extension's end", () => {
  expect(audioLevelOf(packet([]), LEVEL_ID)).toBeUndefined();
  expect(audioLevelOf(packet([{ id: 2, payload: Buffer.of(1, 2, 3) }]), LEVEL_ID)).toBeUndefined();
  const otherProfile = packet([{ id: LEVEL_ID, payload: Buffer.of(42) }]);
  otherProfile.writeUInt16BE(0xabcd, 12);
  expect(audioLevelOf(otherProfile, LEVEL_ID)).toBeUndefined();
  // The extension claims one word; the level element sits in a second one the length leaves out.
  const beyond = packet([{ id: 2, payload: Buffer.of(1, 2, 3) }, { id: LEVEL_ID, payload: Buffer.of(42) }]);
  beyond.writeUInt16BE(1, 14);
  expect(audioLevelOf(beyond, LEVEL_ID)).toBeUndefined();
});
