// Runs baresip (Debian's baresip-core, headless) as a second, independent SIP user agent: its own
// config dir, a sine tone as microphone (ausine, 48 kHz stereo as that module requires), the
// decoded audio it receives dumped to a WAV file (sndfile), auto-answer, quit after `seconds`
// (hanging up with BYE). `caFile` is the PEM bundle its TLS client trusts (`sip_cafile`), for
// dialling `sip:…;transport=tls`; `certificate` (joined into the one PEM `sip_certificate` wants)
// is what its TLS listener presents; baresip puts that listener on `port + 1`. `mediaenc` loads its
// srtp module (SDES): "srtp-mand" offers and accepts only RTP/SAVP with a=crypto, "srtp" offers
// RTP/AVP with a=crypto (best effort).
import { expect } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { relayTotals } from "../../src/media/relay.ts";
import { workerTotal } from "../../src/media/worker-totals.ts";
import { callUntil, phoneCaller, type CallsApp } from "./callsApp.ts";
import { toneShareOf } from "./rtpPeer.ts";
import { freePort } from "./sipp.ts";
import { until } from "./until.ts";

export interface BaresipResult {
  exitCode: number;
  output: string;
  /** What baresip decoded from the call, first channel. */
  received: Int16Array;
  sampleRate: number;
}

export interface BaresipRun {
  port: number;
  done: Promise<BaresipResult>;
}

export async function startBaresip(o: {
  toneHz: number;
  seconds: number;
  dial?: string;
  port?: number;
  caFile?: string;
  certificate?: { certFile: string; keyFile: string };
  mediaenc?: "srtp" | "srtp-mand";
}): Promise<BaresipRun> {
  const dir = mkdtempSync(join(tmpdir(), "baresip-"));
  const port = o.port ?? (await freePort());
  writeFileSync(
    join(dir, "config"),
    [
      "poll_method epoll",
      `sip_listen 127.0.0.1:${port}`,
      "audio_player aubridge,play",
      `audio_source ausine,${o.toneHz}`,
      "audio_alert aubridge,alert",
      "ausrc_srate 48000",
      "auplay_srate 48000",
      "ausrc_channels 2",
      "auplay_channels 2",
      "module_path /usr/lib/baresip/modules",
      "module g711.so",
      "module ausine.so",
      "module aubridge.so",
      "module sndfile.so",
      ...(o.mediaenc ? ["module srtp.so"] : []),
      "module_app account.so",
      "module_app menu.so",
      `snd_path ${dir}`,
      ...(o.caFile ? [`sip_cafile ${o.caFile}`] : []),
      ...(o.certificate ? [`sip_certificate ${join(dir, "sip-cert.pem")}`] : []),
      "",
    ].join("\n"),
  );
  if (o.certificate) writeFileSync(join(dir, "sip-cert.pem"), readFileSync(o.certificate.certFile, "utf8") + readFileSync(o.certificate.keyFile, "utf8"));
  writeFileSync(join(dir, "accounts"), `<sip:baresip@127.0.0.1>;regint=0;answermode=auto${o.mediaenc ? `;mediaenc=${o.mediaenc}` : ""}\n`);
  const args = ["baresip", "-f", dir, "-t", String(o.seconds), ...(o.dial ? ["-e", `/dial ${o.dial}`] : [])];
  const proc = Bun.spawn(args, { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const hardKill = setTimeout(() => proc.kill("SIGKILL"), (o.seconds + 10) * 1000);
  const done = (async (): Promise<BaresipResult> => {
    const [stdout, stderr, exitCode] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    clearTimeout(hardKill);
    const dump = readdirSync(dir).find((f) => f.endsWith("-dec.wav"));
    const wav = dump ? readWav(readFileSync(join(dir, dump))) : { samples: new Int16Array(0), sampleRate: 8000 };
    rmSync(dir, { recursive: true, force: true });
    return { exitCode, output: stdout + stderr, received: wav.samples, sampleRate: wav.sampleRate };
  })();
  // Dialled over TLS, a listener not up yet refuses the connection and fails the call at once (over
  // UDP the INVITE is retransmitted): return once baresip's TLS listener accepts connections.
  if (o.certificate) await until(() => acceptsTcp(port + 1), { pollMs: 20, what: () => `baresip does not listen on TLS port ${port + 1}` });
  return { port, done };
}

function acceptsTcp(port: number): Promise<boolean> {
  return Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } }).then(
    (socket) => {
      socket.end();
      return true;
    },
    () => false,
  );
}

/**
 * A SIPp phone (1000 Hz tone) is in channel "lobby" (route "1000") while `during` puts baresip
 * (started with toneHz 440) in a call with the channel and returns baresip's result; then baresip
 * must have heard the phone and the phone baresip.
 */
export async function baresipAndPhoneHearEachOther(app: CallsApp, during: () => Promise<BaresipResult>): Promise<BaresipResult> {
  const phone = await phoneCaller(app, { service: "1000", toneHz: 1000, holdMs: 5000 });
  try {
    // The phone is in the channel once the channel's audio reaches it (it sends its tone back from then on).
    await until(() => phone.peer.packetsReceived > 0, { what: () => "the phone caller never got the channel's RTP" });
    const relayedBefore = relayedPacketsNow();
    const result = await during();
    expect(result.output).toContain("Call established");
    expect(toneShareOf(result.received.subarray(result.sampleRate), result.sampleRate, 1000)).toBeGreaterThan(0.5);
    expect((await phone.run).exitCode).toBe(0);
    expect(toneShareOf(phone.peer.received(), 8000, 440)).toBeGreaterThan(0.3);
    // Two PCMU phones alone in the channel: they heard each other through the two-party relay, not the mix.
    await until(() => relayedPacketsNow() - relayedBefore >= 100, { what: () => ({ relayed: relayedPacketsNow() - relayedBefore }) });
    return result;
  } finally {
    phone.peer.close();
  }
}

/**
 * The channel "lobby" dials sip:baresip@127.0.0.1 through `trunkId` while a phone is in it; baresip
 * (already started, toneHz 440) answers, both hear each other, and baresip's BYE ends the call.
 * Returns the ended call record.
 */
export async function channelDialsBaresip(app: CallsApp, baresip: BaresipRun, trunkId: string): Promise<any> {
  let callId = "";
  await baresipAndPhoneHearEachOther(app, async () => {
    const res = await app.harness.call("POST", "/api/v1/applications/app1/channels/lobby/calls", { to: "sip:baresip@127.0.0.1", client: { id: "web-1" } });
    expect(res.status, res.text).toBe(201);
    callId = res.json.id;
    const answered = await callUntil(app, callId, (c) => c.state === "answered");
    expect(answered.trunkId).toBe(trunkId);
    return baresip.done;
  });
  const ended = await callUntil(app, callId, (c) => c.state === "ended");
  expect(ended.endReason).toBe("remote_bye");
  return ended;
}

/** 16-bit PCM WAV → first channel. A header left unfinished by the writer reads to the file's end. */
function readWav(buf: Buffer): { samples: Int16Array; sampleRate: number } {
  let sampleRate = 8000;
  let channels = 1;
  let at = 12;
  while (at + 8 <= buf.length) {
    const id = buf.toString("ascii", at, at + 4);
    const size = buf.readUInt32LE(at + 4);
    if (id === "fmt ") {
      channels = buf.readUInt16LE(at + 10);
      sampleRate = buf.readUInt32LE(at + 12);
    } else if (id === "data") {
      const end = size === 0 || at + 8 + size > buf.length ? buf.length : at + 8 + size;
      const frames = Math.floor((end - at - 8) / (2 * channels));
      const samples = new Int16Array(frames);
      for (let i = 0; i < frames; i++) samples[i] = buf.readInt16LE(at + 8 + i * 2 * channels);
      return { samples, sampleRate };
    }
    at += 8 + size + (size % 2);
  }
  return { samples: new Int16Array(0), sampleRate };
}

/** RTP packets relayed between the two legs of two-party channels so far, media workers included. */
function relayedPacketsNow(): number {
  return relayTotals.packets + workerTotal("relayedPackets");
}
