import { describe, expect, test } from "bun:test";
import {
  buildOffer, formatSdp, negotiateAnswer, parseSdp, processAnswer, directionOf, rtpMapOf,
  type LocalMediaOptions, type Sdp, type SdpCodec,
} from "../../src/media/sdp.ts";

const PCMU: SdpCodec = { name: "PCMU", staticPayloadType: 0, rtpClockRate: 8000 };
const PCMA: SdpCodec = { name: "PCMA", staticPayloadType: 8, rtpClockRate: 8000 };
const G722: SdpCodec = { name: "G722", staticPayloadType: 9, rtpClockRate: 8000 };
const OPUS: SdpCodec = { name: "opus", rtpClockRate: 48000, sdpChannels: 2 };

const local: LocalMediaOptions = { address: "203.0.113.5", port: 40000, codecs: [OPUS, G722, PCMU, PCMA] };

function sdpOf(text: string): Sdp {
  const r = parseSdp(text);
  if (!r.ok) throw new Error(r.error.message);
  return r.sdp;
}

const carrierOffer = [
  "v=0",
  "o=carrier 123456 654321 IN IP4 198.51.100.7",
  "s=call",
  "c=IN IP4 198.51.100.7",
  "t=0 0",
  "m=audio 30000 RTP/AVP 8 0 18 96",
  "a=rtpmap:8 PCMA/8000",
  "a=rtpmap:18 G729/8000",
  "a=rtpmap:96 telephone-event/8000",
  "a=fmtp:96 0-15",
  "a=ptime:30",
  "a=sendrecv",
  "",
].join("\r\n");

describe("parseSdp", () => {
  test("reads session and media lines, static payload types resolve without rtpmap", () => {
    const sdp = sdpOf(carrierOffer);
    expect(sdp.origin.sessionId).toBe("123456");
    expect(sdp.connection?.address).toBe("198.51.100.7");
    const m = sdp.media[0]!;
    expect(m.port).toBe(30000);
    expect(m.formats).toEqual(["8", "0", "18", "96"]);
    expect(rtpMapOf(m, 0)).toEqual({ encoding: "PCMU", clockRate: 8000 });
    expect(rtpMapOf(m, 96)?.encoding).toBe("telephone-event");
  });

  test("round-trips through formatSdp", () => {
    const once = formatSdp(sdpOf(carrierOffer));
    expect(formatSdp(sdpOf(once))).toBe(once);
    expect(once.endsWith("\r\n")).toBe(true);
  });

  test("accepts bare LF line ends", () => {
    expect(parseSdp(carrierOffer.replaceAll("\r\n", "\n")).ok).toBe(true);
  });

  test.each([
    ["empty", ""],
    ["no v= first", "o=x 1 1 IN IP4 1.2.3.4\r\nv=0\r\n"],
    ["garbage", "hello world"],
    ["bad m= port", "v=0\r\no=x 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio abc RTP/AVP 0\r\n"],
    ["m= without formats", "v=0\r\no=x 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 4000 RTP/AVP\r\n"],
    ["missing c=", "v=0\r\no=x 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"],
    ["bad c=", "v=0\r\no=x 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IPX 1.2.3.4\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"],
    ["short o=", "v=0\r\no=x 1 IN IP4 1.2.3.4\r\ns=-\r\n"],
    ["binary", "\u0000\u0001\u0002=\u00ff"],
  ])("bad SDP (%s) is a typed error, not a throw", (_name, text) => {
    const r = parseSdp(text);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.kind).toBe("sdp");
      expect(r.error.message.length).toBeGreaterThan(0);
    }
  });

  test("random bytes never throw", () => {
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
    const base = new TextEncoder().encode(carrierOffer);
    for (let i = 0; i < 2000; i++) {
      const bytes = base.slice();
      for (let k = 0; k < 5; k++) bytes[rnd() % bytes.length] = rnd();
      const r = parseSdp(bytes);
      if (r.ok) negotiateAnswer(r.sdp, local);
    }
  });
});

describe("negotiateAnswer", () => {
  test("first codec in the offerer's order that we support; telephone-event keeps its number", () => {
    const r = negotiateAnswer(sdpOf(carrierOffer), local);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.media).toMatchObject({
      codec: { name: "PCMA" }, payloadType: 8, telephoneEventPayloadType: 96, remoteAddress: "198.51.100.7",
      remotePort: 30000, remoteRtcpPort: 30001, rtcpMux: false, ptime: 30,
    });
    const text = formatSdp(r.answer);
    expect(text).toContain("c=IN IP4 203.0.113.5");
    expect(text).toContain("m=audio 40000 RTP/AVP 8 96\r\n");
    expect(text).toContain("a=rtpmap:96 telephone-event/8000");
    expect(text).toContain("a=sendrecv");
    expect(text).not.toContain("rtcp-mux");
  });

  test("configured preference: our order wins when preferLocalOrder is set", () => {
    const r = negotiateAnswer(sdpOf(carrierOffer), { ...local, codecs: [PCMU, PCMA], preferLocalOrder: true });
    expect(r.ok && r.media.codec.name).toBe("PCMU");
  });

  test("opus with dynamic payload type, rtcp-mux honoured, telephone-event at the codec clock rate", () => {
    const offer = sdpOf([
      "v=0", "o=- 1 1 IN IP6 ::1", "s=-", "c=IN IP6 ::1", "t=0 0",
      "m=audio 5004 RTP/AVP 111 0 101 110",
      "a=rtpmap:111 opus/48000/2", "a=fmtp:111 minptime=10;useinbandfec=1",
      "a=rtpmap:101 telephone-event/8000", "a=rtpmap:110 telephone-event/48000", "a=rtcp-mux", "",
    ].join("\r\n"));
    const r = negotiateAnswer(offer, { ...local, address: "::1" });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.media).toMatchObject({ codec: { name: "opus" }, payloadType: 111, telephoneEventPayloadType: 110, rtcpMux: true, remoteRtcpPort: 5004 });
    const text = formatSdp(r.answer);
    expect(text).toContain("c=IN IP6 ::1");
    expect(text).toContain("a=rtpmap:111 opus/48000/2");
    expect(text).toContain("a=rtcp-mux");
  });

  test.each([
    ["sendrecv", "sendrecv"],
    ["sendonly", "recvonly"],
    ["recvonly", "sendonly"],
    ["inactive", "inactive"],
  ])("offer %s → answer %s (hold)", (offered, answered) => {
    const r = negotiateAnswer(sdpOf(carrierOffer.replace("a=sendrecv", `a=${offered}`)), local);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.media.direction).toBe(answered as typeof r.media.direction);
    expect(directionOf(r.answer, r.answer.media[0]!)).toBe(answered as typeof r.media.direction);
  });

  test("no common codec → 488 with a 305 warning", () => {
    const r = negotiateAnswer(sdpOf(carrierOffer), { ...local, codecs: [OPUS] });
    expect(r).toEqual({ ok: false, status: 488, warning: { code: 305, text: expect.stringContaining("codec") } });
  });

  test("only video / SRTP offered → 488", () => {
    const video = sdpOf(carrierOffer.replace("m=audio", "m=video"));
    expect(negotiateAnswer(video, local)).toMatchObject({ ok: false, status: 488, warning: { code: 304 } });
    const srtp = sdpOf(carrierOffer.replace("RTP/AVP", "RTP/SAVP"));
    expect(negotiateAnswer(srtp, local)).toMatchObject({ ok: false, status: 488, warning: { code: 305 } });
  });

  test("extra streams are rejected with port 0, in order", () => {
    const offer = sdpOf(carrierOffer.replace("t=0 0", "t=0 0\r\nm=video 30002 RTP/AVP 96\r\na=rtpmap:96 H264/90000"));
    const r = negotiateAnswer(offer, local);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.answer.media.map((m) => [m.type, m.port])).toEqual([["video", 0], ["audio", 40000]]);
  });

  test("a=rtcp gives the RTCP destination (RFC 3605)", () => {
    const r = negotiateAnswer(sdpOf(carrierOffer.replace("a=ptime:30", "a=rtcp:30011 IN IP4 198.51.100.8")), local);
    expect(r.ok && [r.media.remoteRtcpAddress, r.media.remoteRtcpPort]).toEqual(["198.51.100.8", 30011]);
  });
});

describe("offer / processAnswer (delayed offer: offer in 200 OK, answer in ACK)", () => {
  test("offer lists our codecs in order with telephone-event and rtcp-mux", () => {
    const text = formatSdp(buildOffer(local));
    expect(text).toContain("m=audio 40000 RTP/AVP 96 9 0 8 101 97\r\n");
    expect(text).toContain("a=rtpmap:96 opus/48000/2");
    expect(text).toContain("a=rtpmap:101 telephone-event/8000");
    expect(text).toContain("a=rtpmap:97 telephone-event/48000");
    expect(text).toContain("a=rtcp-mux");
    expect(parseSdp(text).ok).toBe(true);
  });

  test("answer picks the codec; our own offer negotiated against itself is consistent", () => {
    const offer = buildOffer(local);
    const peer = negotiateAnswer(offer, { address: "198.51.100.9", port: 22000, codecs: [PCMU, G722] });
    expect(peer.ok).toBe(true);
    if (!peer.ok) return;
    const r = processAnswer(offer, sdpOf(formatSdp(peer.answer)), local);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.media.codec.name).toBe("G722");
    expect(r.media.payloadType).toBe(9);
    expect(r.media.telephoneEventPayloadType).toBe(101);
    expect(r.media.remotePort).toBe(22000);
    expect(r.media.rtcpMux).toBe(true);
  });

  test("answer that rejects audio → 488", () => {
    const offer = buildOffer(local);
    const answer = sdpOf("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n");
    expect(processAnswer(offer, answer, local)).toMatchObject({ ok: false, status: 488 });
  });
});
