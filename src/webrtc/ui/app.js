// Trunkline channel page: join a channel with a client token, talk, see who is there, dial phones.
// Plain browser JavaScript, no build step. `window.trunkline` exposes the live state for debugging.
const $ = (id) => document.getElementById(id);
const API = "/api/v1/client";
// Where the channel lives: this node, or in a cluster its home (GET /home before joining), which every
// request and the event stream then go to.
let apiBase = new URL(API, location.href).href;

const state = {
  token: "",
  claims: undefined,
  clientId: undefined,
  pc: undefined,
  stream: undefined,
  ws: undefined,
  audio: undefined,
  micAnalyser: undefined,
  roomAnalyser: undefined,
  muted: false,
  joined: false,
  calls: new Map(),
  /** Level in dB of one frequency in what the channel sends us (used by tests and for debugging). */
  levelAt(hz) {
    const analyser = state.roomAnalyser;
    if (!analyser) return -Infinity;
    const bins = new Float32Array(analyser.frequencyBinCount);
    analyser.getFloatFrequencyData(bins);
    const bin = Math.round((hz / (state.audio.sampleRate / 2)) * bins.length);
    return Math.max(bins[bin - 1] ?? -Infinity, bins[bin] ?? -Infinity, bins[bin + 1] ?? -Infinity);
  },
};
window.trunkline = state;

function setStatus(text, kind = "") {
  const el = $("status");
  el.textContent = text;
  el.dataset.state = kind;
}

function decodeClaims(token) {
  try {
    const part = token.split(".")[1] ?? "";
    const json = atob(part.replace(/-/g, "+").replace(/_/g, "/"));
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(json, (c) => c.charCodeAt(0))));
  } catch {
    return undefined;
  }
}

function isExpired(claims) {
  return typeof claims.exp === "number" && claims.exp * 1000 <= Date.now();
}

/** getUserMedia's errors, in words a person can act on. */
function microphoneProblem(error) {
  if (error.name === "NotAllowedError") return "Microphone access was refused. Allow it in the browser and try again.";
  if (error.name === "NotFoundError") return "No microphone was found.";
  if (error.name === "NotReadableError") return "The microphone is in use by another program.";
  return undefined;
}

function describeToken() {
  const claims = decodeClaims($("token").value.trim());
  const info = $("token-info");
  if (!claims) {
    info.textContent = "The token decides which channel you join.";
    return;
  }
  const who = claims.userAlias || claims.userId || "anonymous";
  const when = new Date(claims.exp * 1000).toLocaleString();
  const expiry = isExpired(claims) ? `expired ${when} — ask your application for a new one` : `expires ${when}`;
  info.textContent = `Channel “${claims.channelId}” of application “${claims.applicationId}”, as ${who}; ${expiry}.`;
}

async function request(method, path, body) {
  const send = () =>
    fetch(apiBase + path, {
      method,
      headers: { authorization: `Bearer ${state.token}`, ...(body ? { "content-type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
  const res = await send();
  if (res.status === 204) return {};
  const json = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(json.error?.message ?? `${res.status} ${res.statusText}`);
  return json;
}

function iceGathered(pc, timeoutMs) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    const check = () => pc.iceGatheringState === "complete" && done();
    pc.addEventListener("icegatheringstatechange", check);
    setTimeout(done, timeoutMs);
  });
}

function analyserFor(stream) {
  const analyser = state.audio.createAnalyser();
  analyser.fftSize = 2048;
  analyser.smoothingTimeConstant = 0.3;
  state.audio.createMediaStreamSource(stream).connect(analyser);
  return analyser;
}

function meterValue(analyser) {
  if (!analyser) return 0;
  const samples = new Float32Array(analyser.fftSize);
  analyser.getFloatTimeDomainData(samples);
  let sum = 0;
  for (const s of samples) sum += s * s;
  const db = 10 * Math.log10(sum / samples.length + 1e-10);
  return Math.min(1, Math.max(0, (db + 60) / 60));
}

function drawMeters() {
  if (!state.joined) {
    $("mic-level").value = 0;
    $("room-level").value = 0;
    return;
  }
  $("mic-level").value = state.muted ? 0 : meterValue(state.micAnalyser);
  $("room-level").value = meterValue(state.roomAnalyser);
  requestAnimationFrame(drawMeters);
}

async function join() {
  state.token = $("token").value.trim();
  state.claims = decodeClaims(state.token);
  if (!state.claims) {
    setStatus("That does not look like a client token.", "error");
    $("token").focus();
    return;
  }
  if (isExpired(state.claims)) {
    setStatus("This token has expired. Ask your application for a new one.", "error");
    $("token").focus();
    return;
  }
  $("join").disabled = true;
  setStatus("Asking for your microphone…");
  try {
    // In a cluster the channel may live on another node: every request goes there.
    apiBase = new URL(API, location.href).href;
    const home = await request("GET", "/home");
    apiBase = new URL(API, home.url).href;
    state.stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true } });
    state.audio = new AudioContext();
    // Not awaited: Firefox keeps a context suspended until an audio output opens, for ever on a
    // machine without one. The meters wait for it; joining and talking must not.
    state.audio.resume().catch(() => {});
    state.micAnalyser = analyserFor(state.stream);

    const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
    state.pc = pc;
    pc.addTransceiver(state.stream.getAudioTracks()[0], { direction: "sendrecv", streams: [state.stream] });
    pc.addEventListener("track", (event) => {
      const remote = event.streams[0] ?? new MediaStream([event.track]);
      $("remote").srcObject = remote; // Chromium only feeds WebAudio from a remote stream that also plays
      state.roomAnalyser = analyserFor(remote);
    });
    pc.addEventListener("connectionstatechange", () => {
      if (pc !== state.pc) return;
      if (pc.connectionState === "connected") setStatus(`Connected to “${state.claims.channelId}”`, "connected");
      if (pc.connectionState === "failed") {
        setStatus("The audio connection failed. Leave and join again.", "error");
      }
    });

    setStatus("Connecting…");
    await pc.setLocalDescription(await pc.createOffer());
    await iceGathered(pc, 2000);
    const answer = await request("POST", "/join", { sdp: pc.localDescription.sdp });
    state.clientId = answer.clientId;
    await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
    state.joined = true;
    openEvents();
    updateControls();
    requestAnimationFrame(drawMeters);
  } catch (error) {
    setStatus(`Could not join: ${microphoneProblem(error) ?? error.message}`, "error");
    teardown();
  }
}

function openEvents() {
  const url = `${apiBase.replace(/^http/, "ws")}/events`;
  const ws = new WebSocket(url);
  state.ws = ws;
  ws.addEventListener("open", () => ws.send(JSON.stringify({ type: "auth", token: state.token })));
  ws.addEventListener("message", (message) => {
    const data = JSON.parse(message.data);
    if (data.type === "participants") renderPeople(data.participants);
    if (data.type === "event") onEvent(data.event);
  });
  ws.addEventListener("close", () => {
    if (state.joined && state.ws === ws) setTimeout(() => state.joined && state.ws === ws && openEvents(), 2000);
  });
}

/** "sip:+15551234567@carrier.example;user=phone" → "+15551234567"; anything else as it is. */
function phoneNumber(address) {
  const match = /^(?:sips?:|tel:)?([^@;]+)/i.exec(String(address ?? "").replace(/^.*<|>.*$/g, ""));
  return match ? decodeURIComponent(match[1]) : String(address ?? "");
}

function personName(p) {
  if (p.userAlias) return p.userAlias;
  if (p.kind === "sip") return phoneNumber(p.address || p.userId);
  return p.userId;
}

const PHONE_ICON =
  '<svg viewBox="0 0 24 24" width="16" height="16" aria-hidden="true" fill="currentColor"><path d="M6.6 10.8a15.1 15.1 0 0 0 6.6 6.6l2.2-2.2c.3-.3.7-.4 1-.2 1.1.4 2.3.6 3.6.6.6 0 1 .4 1 1V20c0 .6-.4 1-1 1C10.6 21 3 13.4 3 4c0-.6.4-1 1-1h3.5c.6 0 1 .4 1 1 0 1.3.2 2.5.6 3.6.1.3 0 .7-.2 1l-2.3 2.2z"/></svg>';

function initials(name) {
  const words = String(name ?? "").replace(/[^\p{L}\p{N} ]/gu, " ").trim().split(/\s+/).filter(Boolean);
  return (words.slice(0, 2).map((w) => w[0]).join("") || "?").toUpperCase();
}

function renderPeople(participants) {
  const list = $("people");
  list.replaceChildren();
  $("people-count").textContent = String(participants.length);
  if (participants.length === 0) {
    const li = document.createElement("li");
    li.className = "empty";
    li.textContent = "Nobody yet.";
    list.append(li);
    return;
  }
  for (const p of participants) {
    const li = document.createElement("li");
    const avatar = document.createElement("span");
    avatar.className = `avatar ${p.kind}`;
    avatar.setAttribute("aria-hidden", "true");
    if (p.kind === "sip") avatar.innerHTML = PHONE_ICON;
    else avatar.textContent = initials(personName(p));
    const who = document.createElement("div");
    who.className = "who";
    const name = document.createElement("strong");
    name.textContent = personName(p);
    const kind = document.createElement("span");
    kind.textContent = p.kind === "sip" ? "Phone" : "Browser";
    who.append(name, kind);
    li.append(avatar, who);
    if (p.clientId && p.clientId === state.clientId) {
      const you = document.createElement("span");
      you.className = "badge";
      you.textContent = "you";
      li.append(you);
    }
    list.append(li);
  }
}

function onEvent(event) {
  const callId = event.data.callId;
  if (!callId || !event.type.startsWith("call.")) return;
  const inbound = event.data.direction === "inbound";
  const call = state.calls.get(callId) ?? { id: callId, to: phoneNumber((inbound ? event.data.from : event.data.to) ?? "call"), inbound };
  call.state = event.type.slice("call.".length);
  if (event.type === "call.ended") {
    call.reason = event.data.reason;
    setTimeout(() => {
      state.calls.delete(callId);
      renderCalls();
    }, 4000);
  }
  state.calls.set(callId, call);
  renderCalls();
}

function renderCalls() {
  const list = $("calls");
  list.replaceChildren();
  for (const call of state.calls.values()) {
    const li = document.createElement("li");
    const num = document.createElement("span");
    num.className = "num";
    num.textContent = call.to;
    const dir = document.createElement("span");
    dir.className = "dir";
    dir.textContent = call.inbound ? "in" : "out";
    dir.title = call.inbound ? "Incoming call" : "Outgoing call";
    const st = document.createElement("span");
    st.className = `state ${call.state}`;
    st.textContent = call.state === "ended" && call.reason ? `ended (${call.reason.replace(/_/g, " ")})` : call.state;
    li.append(dir, num, st);
    if (call.state !== "ended") {
      const hang = document.createElement("button");
      hang.type = "button";
      hang.className = "danger";
      hang.textContent = "Hang up";
      hang.setAttribute("aria-label", `Hang up ${call.to}`);
      hang.addEventListener("click", () => hangUp(call.id));
      li.append(hang);
    }
    list.append(li);
  }
}

async function dial(event) {
  event.preventDefault();
  const to = $("number").value.trim();
  if (!to) {
    $("number").focus();
    return;
  }
  try {
    const call = await request("POST", "/calls", { to, clientId: state.clientId });
    state.calls.set(call.id, { id: call.id, to, state: state.calls.get(call.id)?.state ?? "dialing" });
    renderCalls();
    $("dial-hint").textContent = "During a call the dial pad sends tones.";
  } catch (error) {
    $("dial-hint").textContent = `Could not call: ${error.message}`;
  }
}

async function hangUp(id) {
  try {
    await request("DELETE", `/calls/${encodeURIComponent(id)}`);
  } catch (error) {
    $("dial-hint").textContent = `Could not hang up: ${error.message}`;
  }
}

function answeredCall() {
  for (const call of state.calls.values()) if (call.state === "answered") return call;
  return undefined;
}

async function padKey(key) {
  const call = answeredCall();
  if (!call) {
    $("number").value += key;
    return;
  }
  try {
    await request("POST", `/calls/${encodeURIComponent(call.id)}/dtmf`, { digits: key });
  } catch (error) {
    $("dial-hint").textContent = `Could not send the tone: ${error.message}`;
  }
}

function toggleMute() {
  state.muted = !state.muted;
  for (const track of state.stream?.getAudioTracks() ?? []) track.enabled = !state.muted;
  $("mute").textContent = state.muted ? "Unmute" : "Mute";
  $("mute").setAttribute("aria-pressed", String(state.muted));
}

function updateControls() {
  $("join").disabled = state.joined;
  $("leave").disabled = !state.joined;
  $("mute").disabled = !state.joined;
  $("call").disabled = !state.joined;
  $("token").readOnly = state.joined;
  $("dial-hint").textContent = state.joined
    ? "Enter a number and press Call. During a call the dial pad sends tones."
    : "Join a channel first. Calling needs the “dial” role in your token.";
}

function teardown() {
  state.joined = false;
  state.pc?.close();
  state.pc = undefined;
  for (const track of state.stream?.getTracks() ?? []) track.stop();
  state.stream = undefined;
  const ws = state.ws;
  state.ws = undefined;
  ws?.close();
  state.audio?.close();
  state.audio = undefined;
  state.micAnalyser = state.roomAnalyser = undefined;
  state.muted = false;
  $("mute").textContent = "Mute";
  $("mute").setAttribute("aria-pressed", "false");
  updateControls();
}

async function leave() {
  const clientId = state.clientId;
  teardown();
  state.calls.clear();
  renderCalls();
  renderPeople([]);
  setStatus("Not connected");
  if (clientId) await request("DELETE", `/connections/${encodeURIComponent(clientId)}`).catch(() => {});
  state.clientId = undefined;
}

$("token").addEventListener("input", describeToken);
$("join").addEventListener("click", join);
$("leave").addEventListener("click", leave);
$("mute").addEventListener("click", toggleMute);
$("dial-form").addEventListener("submit", dial);
for (const button of document.querySelectorAll(".pad button")) button.addEventListener("click", () => padKey(button.dataset.key));
window.addEventListener("pagehide", () => {
  if (state.clientId && state.joined)
    fetch(`${apiBase}/connections/${encodeURIComponent(state.clientId)}`, { method: "DELETE", keepalive: true, headers: { authorization: `Bearer ${state.token}` } });
});

const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
if (fromHash) {
  $("token").value = fromHash;
  history.replaceState(null, "", location.pathname + location.search); // keep the token out of history
}
describeToken();
