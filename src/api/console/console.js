// Trunkline admin console: a plain browser module on the public admin API (/api/v1) only. The admin
// token lives in sessionStorage (this tab, until log-out) and travels in the Authorization header,
// never in a URL. Live screens poll the API; tables are updated row by row so a poll never steals
// the operator's focus or selection. Served by src/api/console.ts.
import { CALLER_ID_VARIABLES, parseTemplate, renderTemplate } from "./callerIdTemplate.js";

const TOKEN_KEY = "trunkline.adminToken";
const API = "/api/v1";
const POLL_MS = 1500;
const READONLY_REASON = "managed by config.yaml";
const READONLY_TITLE = "Declared in the YAML config file: read-only here. Edit the file and reload (SIGHUP).";

// ---------------------------------------------------------------- DOM helpers

/** h("td", { class: "num", onclick }, "text", child, ...) */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "value") el.value = value;
    else if (key === "checked") el.checked = Boolean(value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

const pill = (text, tone = "") => h("span", { class: `pill ${tone}` }, text);

/** "sip:+15550001111@10.0.0.1:5060;transport=udp" → "+15550001111" (the host when there is no user). */
function shortUri(uri) {
  const match = /^(?:<?sips?:)?(?:([^@;>]+)@)?([^;>]+)/.exec(uri ?? "");
  return match ? (match[1] ?? match[2]) : (uri ?? "");
}
const uriCell = (uri) => h("td", { class: "mono", title: uri ?? "" }, shortUri(uri));
const readonlyNote = () => h("span", { class: "readonly", title: READONLY_TITLE }, READONLY_REASON);

/**
 * Brings `tbody` to one row per item, in order, rebuilding only rows whose data changed (the
 * signature), so polling does not flicker or lose the operator's place.
 */
function syncRows(tbody, items, key, renderRow, empty) {
  if (items.length === 0) {
    const colspan = tbody.closest("table")?.querySelectorAll("thead th").length ?? 1;
    tbody.replaceChildren(h("tr", { "data-key": "" }, h("td", { class: "empty", colspan }, empty)));
    return;
  }
  const existing = new Map([...tbody.children].map((tr) => [tr.dataset.key, tr]));
  let previous = null;
  for (const item of items) {
    const k = key(item);
    const signature = JSON.stringify(item);
    let row = existing.get(k);
    if (!row || row.dataset.sig !== signature) {
      const fresh = renderRow(item);
      fresh.dataset.key = k;
      fresh.dataset.sig = signature;
      if (row) row.replaceWith(fresh);
      row = fresh;
    }
    existing.delete(k);
    const wanted = previous ? previous.nextSibling : tbody.firstChild;
    if (wanted !== row) tbody.insertBefore(row, wanted);
    previous = row;
  }
  for (const stale of existing.values()) stale.remove();
}

function table(headings) {
  const tbody = h("tbody");
  return { el: h("table", {}, h("thead", {}, h("tr", {}, headings.map((title) => h("th", {}, title)))), tbody), tbody };
}

function card(title, ...content) {
  return h("section", { class: "card" }, h("div", { class: "card-head" }, title), ...content);
}

function formatTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const today = new Date().toDateString() === d.toDateString();
  const time = d.toLocaleTimeString([], { hour12: false });
  return today ? time : `${d.toLocaleDateString()} ${time}`;
}

function formatDuration(ms) {
  if (!(ms >= 0)) return "";
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, "0")}m`;
}

// ---------------------------------------------------------------- API client

class ApiFailure extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

const token = () => sessionStorage.getItem(TOKEN_KEY) ?? "";

async function request(method, path, body, secret = token()) {
  const headers = { authorization: `Bearer ${secret}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  let res;
  try {
    res = await fetch(API + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store" });
  } catch (error) {
    throw new ApiFailure(0, "network", `the server did not answer (${error.message})`);
  }
  if (res.status === 204) return { res, json: undefined };
  const json = (res.headers.get("content-type") ?? "").includes("json") ? await res.json().catch(() => undefined) : undefined;
  if (!res.ok) {
    const error = json?.error ?? {};
    throw new ApiFailure(res.status, error.code ?? `http_${res.status}`, error.message ?? `HTTP ${res.status}`, error.field);
  }
  return { res, json };
}

/** An admin API call with the session's token; a 401 ends the session. */
async function api(method, path, body) {
  try {
    return (await request(method, path, body)).json;
  } catch (error) {
    if (error instanceof ApiFailure && error.status === 401) logOut("The server refused the admin token (401): log in again.");
    throw error;
  }
}

const enc = encodeURIComponent;

// ---------------------------------------------------------------- forms

/**
 * A two-column form. fields: [{ name, label, type: text|password|number|checkbox|select|list, options?, note?, placeholder? }]
 * Returns { el, values(), setError(field, message), clearErrors() }.
 */
function form(fields, { submitLabel, onSubmit, onCancel, readonly = false, inline = false }) {
  const inputs = new Map();
  const errors = new Map();
  const el = h("form", { class: inline ? "inline" : "grid", novalidate: true });
  for (const f of fields) {
    const id = `f-${f.name}-${Math.random().toString(36).slice(2, 7)}`;
    let input;
    if (f.type === "select") input = h("select", { id, name: f.name }, f.options.map((o) => h("option", { value: o }, o)));
    else if (f.type === "checkbox") input = h("input", { id, name: f.name, type: "checkbox" });
    else input = h("input", { id, name: f.name, type: f.type === "password" ? "password" : f.type === "number" ? "number" : "text", placeholder: f.placeholder, autocomplete: "off", spellcheck: "false" });
    if (f.value !== undefined) {
      if (f.type === "checkbox") input.checked = Boolean(f.value);
      else input.value = f.type === "list" ? (f.value ?? []).join(", ") : String(f.value);
    }
    if (readonly || f.disabled) input.disabled = true;
    inputs.set(f.name, input);
    const error = h("div", { class: "field-error", hidden: true });
    errors.set(f.name, error);
    el.append(h("label", { for: id }, f.label), input);
    if (!inline) el.append(error);
    if (f.note && !inline) el.append(h("div", { class: "note" }, f.note));
  }
  const status = h("span", { class: "result" });
  const submit = h("button", { type: "submit" }, submitLabel);
  if (!readonly && inline) el.append(submit, status);
  else if (!readonly) el.append(h("div", { class: "buttons" }, status, onCancel ? h("button", { type: "button", class: "secondary", onclick: onCancel }, "Cancel") : null, submit));
  const clearErrors = () => {
    for (const [name, error] of errors) {
      error.hidden = true;
      inputs.get(name).classList.remove("invalid");
    }
    status.textContent = "";
    status.className = "result";
  };
  const setError = (field, message) => {
    const name = field?.replace(/[[.].*$/, "");
    const error = name !== undefined && !inline ? errors.get(name) : undefined;
    if (name !== undefined) inputs.get(name)?.classList.add("invalid");
    if (error) {
      error.textContent = message;
      error.hidden = false;
      inputs.get(name).classList.add("invalid");
    }
    status.textContent = message;
    status.className = "result error";
  };
  const values = () => {
    const out = {};
    for (const f of fields) {
      const input = inputs.get(f.name);
      if (f.type === "checkbox") out[f.name] = input.checked;
      else if (f.type === "number") out[f.name] = input.value.trim() === "" ? undefined : Number(input.value);
      else if (f.type === "list") out[f.name] = input.value.split(/[\s,]+/).filter(Boolean);
      else out[f.name] = input.value.trim() === "" ? undefined : input.value.trim();
    }
    return out;
  };
  el.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors();
    submit.disabled = true;
    try {
      await onSubmit(values());
    } catch (error) {
      if (error instanceof ApiFailure) setError(error.field, error.message);
      else setError(undefined, String(error));
    } finally {
      submit.disabled = false;
    }
  });
  return { el, inputs, values, setError, clearErrors, status, submit };
}

/** Runs an action from a table button; failures show in the view's message line. */
async function act(view, action) {
  try {
    await action();
    await view.refresh?.();
  } catch (error) {
    view.say?.(error.message, true);
  }
}

function messageLine() {
  const el = h("div", { class: "banner", hidden: true, role: "status" });
  return {
    el,
    say(text, isError = false) {
      el.hidden = !text;
      el.textContent = text ?? "";
      el.style.background = isError ? "var(--bad-bg)" : "var(--info-bg)";
      el.style.color = isError ? "var(--bad)" : "var(--info)";
    },
  };
}

// ---------------------------------------------------------------- Trunks

const registrationTone = { registered: "ok", registering: "warn", failed: "bad", unregistered: "", disabled: "" };

function trunksView() {
  const message = messageLine();
  const list = table(["Trunk", "Transport", "Registration", "Reachable", "Available", "Calls", "Source", ""]);
  const side = h("div", { class: "side" });
  let trunks = [];

  const openForm = (trunk) => {
    const editing = trunk !== undefined;
    const t = trunk ?? {};
    const f = form(
      [
        { name: "id", label: "Id", value: t.id, disabled: editing },
        { name: "domain", label: "Domain or address", value: t.domain },
        { name: "port", label: "Port", type: "number", value: t.port, note: "Empty: DNS SRV, then 5060/5061" },
        { name: "transport", label: "Transport", type: "select", options: ["udp", "tcp", "tls"], value: t.transport ?? "udp" },
        { name: "register", label: "Register", type: "checkbox", value: t.register ?? false },
        { name: "canTerminate", label: "Outbound calls", type: "checkbox", value: t.canTerminate ?? true },
        { name: "username", label: "Username", value: t.username },
        { name: "password", label: "Password", type: "password", placeholder: t.passwordSet ? "stored — leave empty to keep" : "" },
        { name: "authId", label: "Auth ID", value: t.authId },
        { name: "registerExpires", label: "Register expiry (s)", type: "number", value: t.registerExpires ?? 3600 },
        { name: "maxConcurrentCalls", label: "Max calls", type: "number", value: t.maxConcurrentCalls, note: "Empty: unlimited" },
        { name: "allowedAddresses", label: "Allowed addresses", type: "list", value: t.allowedAddresses ?? [], note: "Addresses or CIDRs, comma-separated" },
        { name: "optionsIntervalSec", label: "OPTIONS every (s)", type: "number", value: t.optionsIntervalSec ?? 30, note: "0: no keep-alive" },
        { name: "mediaEncryption", label: "Media encryption", type: "select", options: ["none", "optional", "required"], value: t.mediaEncryption ?? "none" },
        { name: "earlyOffer", label: "Early offer", type: "checkbox", value: t.earlyOffer ?? false },
        { name: "tlsVerify", label: "Verify TLS", type: "checkbox", value: t.tlsVerify ?? true },
        { name: "enabled", label: "Enabled", type: "checkbox", value: t.enabled ?? true },
      ],
      {
        submitLabel: editing ? "Save trunk" : "Create trunk",
        onCancel: () => side.replaceChildren(),
        onSubmit: async (values) => {
          const body = Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined));
          if (editing) {
            delete body.id;
            // PATCH merges into the stored trunk: an optional field cannot be emptied through it.
            for (const name of ["port", "authId", "maxConcurrentCalls"]) {
              if (values[name] === undefined && t[name] !== undefined) return f.setError(name, `${name} cannot be emptied here: delete and re-create the trunk`);
            }
            await api("PATCH", `/trunks/${enc(t.id)}`, body);
          } else {
            await api("POST", "/trunks", body);
          }
          side.replaceChildren();
          message.say(`Trunk ${editing ? t.id : values.id} saved.`);
          await view.refresh();
        },
      },
    );
    side.replaceChildren(card(h("h2", {}, editing ? `Edit trunk ${t.id}` : "New trunk"), h("div", { class: "card-body" }, f.el)));
    f.inputs.get(editing ? "domain" : "id").focus();
  };

  const row = ({ trunk: t, status: st }) => {
    const reg = st?.registration;
    const registration = !t.register
      ? h("span", { class: "muted" }, "off")
      : h("span", {}, pill(reg?.state ?? "—", registrationTone[reg?.state] ?? ""), " ",
          h("span", { class: "sub" }, reg?.lastStatusCode ? String(reg.lastStatusCode) : "", reg?.state === "registered" && reg.expiresAt ? ` until ${formatTime(reg.expiresAt)}` : ""),
          reg?.lastError ? h("div", { class: "sub error" }, reg.lastError) : null);
    const reachable = st?.reachable === true ? pill("reachable", "ok") : st?.reachable === false ? pill("unreachable", "bad") : pill(t.optionsIntervalSec === 0 ? "not probed" : "unknown");
    return h(
      "tr",
      {},
      h("td", {}, h("strong", { class: "mono" }, t.id), h("div", { class: "sub mono" }, `${t.domain}${t.port ? `:${t.port}` : ""}`), !t.enabled ? pill("disabled") : null),
      h("td", {}, t.transport.toUpperCase(), t.mediaEncryption !== "none" ? h("div", { class: "sub" }, `SRTP ${t.mediaEncryption}`) : null),
      h("td", {}, registration),
      h("td", { title: st?.lastOptionsError ?? (st?.lastOptionsAt ? `last OPTIONS ${formatTime(st.lastOptionsAt)}` : "") }, reachable, st?.lastOptionsError ? h("div", { class: "sub error" }, st.lastOptionsError) : null),
      h("td", {}, st?.available ? pill("available", "ok") : !t.canTerminate ? pill("inbound only") : pill("unavailable", t.enabled ? "bad" : "")),
      h("td", { class: "num" }, `${st?.activeCalls ?? 0}${t.maxConcurrentCalls ? ` / ${t.maxConcurrentCalls}` : ""}`),
      h("td", {}, pill(t.source, t.source === "yaml" ? "info" : "")),
      h(
        "td",
        { class: "actions" },
        t.source === "yaml"
          ? readonlyNote()
          : [
              h("button", { class: "small secondary", type: "button", "aria-label": `Edit ${t.id}`, onclick: () => openForm(t) }, "Edit"),
              h("button", { class: "small danger", type: "button", "aria-label": `Delete ${t.id}`, onclick: () => {
                if (confirm(`Delete trunk ${t.id}? It un-registers at once.`)) act(view, async () => { await api("DELETE", `/trunks/${enc(t.id)}`); message.say(`Trunk ${t.id} deleted.`); });
              } }, "Delete"),
            ],
      ),
    );
  };

  const view = {
    title: "Trunks",
    say: message.say,
    el: h(
      "div",
      { class: "cols" },
      card([h("h2", {}, "Trunks"), h("span", { class: "spacer" }), h("button", { type: "button", onclick: () => openForm() }, "New trunk")], message.el, list.el),
      side,
    ),
    async refresh() {
      const [all, statuses] = await Promise.all([api("GET", "/trunks"), api("GET", "/trunks/status")]);
      trunks = all;
      const byId = new Map(statuses.map((s) => [s.id, s]));
      syncRows(list.tbody, trunks.map((trunk) => ({ trunk, status: byId.get(trunk.id) })), (r) => r.trunk.id, row, "No trunks yet: create one.");
    },
  };
  return view;
}

// ---------------------------------------------------------------- Applications, routes, caller IDs

const SAMPLE_CLIENT = { id: "c-42", userId: "alice", userAlias: "Alice Liddell", deviceId: "d-7", deviceAlias: "Laptop", tag: "vip", roles: ["dial", "agent"], region: "eu" };

function applicationsView() {
  const message = messageLine();
  const apps = table(["Application", "Name", "Source", "Created", ""]);
  const detail = h("div", { class: "stack" });
  const side = h("div", { class: "stack" });
  let selected = location.hash.split("/")[2] ? decodeURIComponent(location.hash.split("/")[2]) : undefined;

  const newAppForm = () => {
    const f = form(
      [
        { name: "id", label: "Id" },
        { name: "name", label: "Name" },
        { name: "sharedSecret", label: "Shared secret", type: "password", note: "At least 16 characters; signs client tokens" },
      ],
      {
        submitLabel: "Create application",
        onCancel: () => side.replaceChildren(),
        onSubmit: async (values) => {
          await api("POST", "/applications", values);
          side.replaceChildren();
          selected = values.id;
          await view.refresh();
        },
      },
    );
    side.replaceChildren(card(h("h2", {}, "New application"), h("div", { class: "card-body" }, f.el)));
    f.inputs.get("id").focus();
  };

  const appRow = (a) =>
    h(
      "tr",
      { class: `clickable${a.id === selected ? " selected" : ""}`, onclick: () => { selected = a.id; view.refresh(); } },
      h("td", {}, h("strong", { class: "mono" }, a.id)),
      h("td", {}, a.name),
      h("td", {}, pill(a.source, a.source === "yaml" ? "info" : "")),
      h("td", { class: "nowrap" }, formatTime(a.createdAt)),
      h("td", { class: "actions" }, a.source === "yaml" ? readonlyNote() : h("button", { class: "small danger", type: "button", "aria-label": `Delete ${a.id}`, onclick: (event) => {
        event.stopPropagation();
        if (confirm(`Delete application ${a.id} with its routes and caller IDs?`)) act(view, async () => { await api("DELETE", `/applications/${enc(a.id)}`); if (selected === a.id) selected = undefined; });
      } }, "Delete")),
    );

  /** The caller-ID editor: each template is checked as typed by the server's own rules. */
  const callerIdForm = (app, existing) => {
    const readonly = app.source === "yaml";
    const f = form(
      [
        { name: "channelId", label: "Channel", value: existing?.channelId, disabled: existing !== undefined },
        { name: "displayName", label: "Display name", value: existing?.displayName, placeholder: "{userAlias}" },
        { name: "username", label: "Username", value: existing?.username, placeholder: "{userId}" },
      ],
      {
        readonly,
        submitLabel: "Save caller ID",
        onCancel: existing ? () => renderDetail(app) : undefined,
        onSubmit: async (values) => {
          if (!values.channelId) return f.setError("channelId", "a channel id is required");
          if (!check()) return;
          const body = {};
          if (values.displayName !== undefined) body.displayName = values.displayName;
          if (values.username !== undefined) body.username = values.username;
          await api("PUT", `/applications/${enc(app.id)}/channels/${enc(values.channelId)}/caller-id`, body);
          await renderDetail(app);
        },
      },
    );
    const preview = h("div", { class: "preview" });
    const check = () => {
      let ok = true;
      const rendered = {};
      for (const name of ["displayName", "username"]) {
        const input = f.inputs.get(name);
        const error = input.nextElementSibling;
        const parsed = parseTemplate(input.value);
        input.classList.toggle("invalid", !parsed.ok);
        error.hidden = parsed.ok;
        error.textContent = parsed.ok ? "" : parsed.error;
        if (parsed.ok) rendered[name] = renderTemplate(parsed.parts, SAMPLE_CLIENT);
        else ok = false;
      }
      f.submit.disabled = !ok;
      preview.replaceChildren(
        ok
          ? h("span", {}, "Preview for a client ", h("code", {}, "alice"), " (“Alice Liddell”): ", h("code", {}, `"${rendered.displayName}" <sip:${rendered.username || "trunk username"}@…>`))
          : h("span", {}, "Variables: ", CALLER_ID_VARIABLES.map((v) => `{${v}}`).join(" ")),
      );
      return ok;
    };
    for (const name of ["displayName", "username"]) f.inputs.get(name).addEventListener("input", check);
    f.el.insertBefore(preview, f.el.querySelector(".buttons"));
    check();
    return f;
  };

  const renderDetail = async (app) => {
    const readonly = app.source === "yaml";
    const [routes, callerIds] = await Promise.all([api("GET", `/applications/${enc(app.id)}/inbound-routes`), api("GET", `/applications/${enc(app.id)}/caller-ids`)]);
    const routeTable = table(["SIP username (To user)", "Channel", ""]);
    syncRows(routeTable.tbody, routes, (r) => r.sipUsername, (r) =>
      h("tr", {}, h("td", { class: "mono" }, r.sipUsername), h("td", { class: "mono" }, r.channelId), h("td", { class: "actions" }, readonly ? readonlyNote() : h("button", { class: "small danger", type: "button", "aria-label": `Delete route ${r.sipUsername}`, onclick: () =>
        act(view, async () => { await api("DELETE", `/applications/${enc(app.id)}/inbound-routes/${enc(r.sipUsername)}`); await renderDetail(app); }) }, "Delete"))),
      "No inbound routes: calls reach this application only through the inbound webhook.");
    const routeForm = form(
      [
        { name: "sipUsername", label: "SIP username", placeholder: "15550199" },
        { name: "channelId", label: "Channel", placeholder: "lobby" },
      ],
      { readonly, inline: true, submitLabel: "Add route", onSubmit: async (values) => { await api("POST", `/applications/${enc(app.id)}/inbound-routes`, values); await renderDetail(app); } },
    );
    const cidTable = table(["Channel", "Display name", "Username", ""]);
    syncRows(cidTable.tbody, callerIds, (c) => c.channelId, (c) =>
      h("tr", {}, h("td", { class: "mono" }, c.channelId), h("td", { class: "mono" }, c.displayName ?? h("span", { class: "muted" }, "none")), h("td", { class: "mono" }, c.username ?? h("span", { class: "muted" }, "trunk's")),
        h("td", { class: "actions" }, readonly ? readonlyNote() : [
          h("button", { class: "small secondary", type: "button", "aria-label": `Edit caller ID ${c.channelId}`, onclick: () => { cidSlot.replaceChildren(callerIdForm(app, c).el); } }, "Edit"),
          h("button", { class: "small danger", type: "button", "aria-label": `Delete caller ID ${c.channelId}`, onclick: () =>
            act(view, async () => { await api("DELETE", `/applications/${enc(app.id)}/channels/${enc(c.channelId)}/caller-id`); await renderDetail(app); }) }, "Delete"),
        ])),
      "No caller-ID templates: outbound calls show no display name and the trunk's username.");
    const cidSlot = h("div", { class: "card-body" }, callerIdForm(app).el);
    detail.replaceChildren(
      card([h("h2", {}, `Inbound routes of ${app.id}`), h("span", { class: "spacer" }), readonly ? readonlyNote() : null], routeTable.el, readonly ? null : routeForm.el),
      card([h("h2", {}, `Caller ID of ${app.id}`), h("span", { class: "spacer" }), readonly ? readonlyNote() : null], cidTable.el, readonly ? null : cidSlot),
    );
  };

  const view = {
    title: "Applications",
    say: message.say,
    el: h(
      "div",
      { class: "cols even" },
      h("div", { class: "stack" }, card([h("h2", {}, "Applications"), h("span", { class: "spacer" }), h("button", { type: "button", onclick: newAppForm }, "New application")], message.el, apps.el), side),
      detail,
    ),
    async refresh() {
      const list = await api("GET", "/applications");
      if (selected === undefined || !list.some((a) => a.id === selected)) selected = list[0]?.id;
      syncRows(apps.tbody, list.map((a) => ({ ...a, selectedNow: a.id === selected })), (a) => a.id, appRow, "No applications yet.");
      const app = list.find((a) => a.id === selected);
      if (app && detail.dataset.app !== `${app.id}:${app.updatedAt}`) {
        detail.dataset.app = `${app.id}:${app.updatedAt}`;
        await renderDetail(app);
      } else if (!app) detail.replaceChildren();
    },
    // Routes and templates change only through this screen: no polling, so half-typed forms stay.
    live: false,
  };
  return view;
}

// ---------------------------------------------------------------- Webhooks

function webhooksView() {
  const message = messageLine();
  const slot = h("div", { class: "cols even" });
  const testResult = h("div", { class: "card-body result", id: "webhook-test-result" });

  const render = (settings) => {
    const readonly = settings.source === "yaml";
    const f = form(
      [
        { name: "inboundUrl", label: "Inbound routing URL", value: settings.inboundUrl, placeholder: "https://app.example.com/sip/inbound" },
        { name: "inboundCancelUrl", label: "Inbound cancel URL", value: settings.inboundCancelUrl },
        { name: "outboundUrl", label: "Outbound trunk choice URL", value: settings.outboundUrl },
        { name: "eventsUrl", label: "Events URL", value: settings.eventsUrl, note: "call.*, participant.*, dtmf.received, trunk.* events" },
        { name: "timeoutMs", label: "Timeout (ms)", type: "number", value: settings.timeoutMs },
        { name: "secret", label: "Signing secret", type: "password", placeholder: settings.secretSet ? "stored — leave empty to keep" : "none" },
        { name: "removeSecret", label: "Remove the secret", type: "checkbox", value: false, disabled: !settings.secretSet },
      ],
      {
        readonly,
        submitLabel: "Save webhooks",
        onSubmit: async (values) => {
          const { removeSecret, ...body } = values;
          for (const key of Object.keys(body)) if (body[key] === undefined) delete body[key];
          if (removeSecret) body.secret = "";
          await api("PUT", "/settings/webhooks", body);
          message.say("Webhook settings saved.");
          await view.refresh();
        },
      },
    );
    const test = h("button", { type: "button", class: "secondary", disabled: !settings.eventsUrl, onclick: async () => {
      test.disabled = true;
      testResult.replaceChildren(h("span", { class: "muted" }, "Sending a webhook.test event…"));
      try {
        const outcome = await api("POST", "/settings/webhooks/test");
        testResult.replaceChildren(
          outcome.delivered ? pill("delivered", "ok") : pill("not delivered", "bad"), " ",
          outcome.status ? `HTTP ${outcome.status}` : "", outcome.error && outcome.error !== `HTTP ${outcome.status}` ? ` ${outcome.error}` : "",
          ` in ${outcome.durationMs} ms to `, h("code", {}, outcome.url), " — event ", h("code", {}, outcome.eventId),
        );
      } catch (error) {
        testResult.replaceChildren(pill("failed", "bad"), " ", error.message);
      } finally {
        test.disabled = !settings.eventsUrl;
      }
    } }, "Send test event");
    slot.replaceChildren(
      card([h("h2", {}, "Webhooks"), pill(settings.source, settings.source === "yaml" ? "info" : ""), readonly ? readonlyNote() : null, h("span", { class: "spacer" }), settings.updatedAt ? h("span", { class: "count" }, `updated ${formatTime(settings.updatedAt)}`) : null],
        readonly ? h("div", { class: "banner" }, `Read-only: ${READONLY_REASON}. ${READONLY_TITLE}`) : null, message.el, h("div", { class: "card-body" }, f.el)),
      card([h("h2", {}, "Test delivery"), h("span", { class: "spacer" }), test],
        h("div", { class: "card-body muted" }, "Sends one signed ", h("code", {}, "webhook.test"), " event to the saved events URL through the same delivery path as real events (one attempt, no retry) and shows what the receiver answered."),
        testResult),
    );
  };

  const view = {
    title: "Webhooks",
    say: message.say,
    el: slot,
    async refresh() {
      render(await api("GET", "/settings/webhooks"));
    },
    live: false,
  };
  return view;
}

// ---------------------------------------------------------------- Channels

function channelsView() {
  const message = messageLine();
  const list = table(["Channel", "Participant", "Kind", "Address / client", "Joined", "Audio", ""]);
  const dtmfSlot = h("div", { class: "side" });

  const openDtmf = (p) => {
    const f = form([{ name: "digits", label: "Digits", placeholder: "0-9 * # A-D" }], {
      submitLabel: "Send digits",
      onCancel: () => dtmfSlot.replaceChildren(),
      onSubmit: async ({ digits }) => {
        await api("POST", `/calls/${enc(p.callId)}/dtmf`, { digits: digits ?? "" });
        f.status.textContent = `Sent ${digits}.`;
        f.status.className = "result ok";
        f.inputs.get("digits").value = "";
      },
    });
    dtmfSlot.replaceChildren(card(h("h2", {}, `DTMF to ${p.userAlias ?? shortUri(p.userId)}`, h("span", { class: "count" }, " RFC 4733")), h("div", { class: "card-body" }, f.el)));
    f.inputs.get("digits").focus();
  };

  const row = ({ channel, p }) => {
    const path = `/applications/${enc(channel.applicationId)}/channels/${enc(channel.channelId)}/participants/${enc(p.id)}`;
    const name = p.userAlias ?? shortUri(p.userId);
    return h(
      "tr",
      {},
      h("td", {}, h("span", { class: "mono" }, channel.channelId), h("div", { class: "sub mono" }, channel.applicationId)),
      h("td", { class: "nowrap", title: p.userId }, h("strong", {}, name), p.userAlias ? h("div", { class: "sub" }, shortUri(p.userId)) : null),
      h("td", {}, p.kind === "sip" ? pill("phone", "info") : pill("browser")),
      h("td", { class: "mono", title: p.address ?? "" }, p.address ? shortUri(p.address) : p.clientId ?? "", p.callId ? h("div", { class: "sub mono" }, p.callId) : null),
      h("td", { class: "nowrap", title: p.joinedAt }, formatTime(p.joinedAt)),
      h("td", {}, p.muted ? pill("muted", "warn") : pill("live", "ok")),
      h(
        "td",
        { class: "actions" },
        h("button", { class: "small secondary", type: "button", "aria-label": `${p.muted ? "Unmute" : "Mute"} ${name}`, onclick: () => act(view, () => api("PATCH", path, { muted: !p.muted })) }, p.muted ? "Unmute" : "Mute"),
        p.kind === "sip" ? h("button", { class: "small secondary", type: "button", "aria-label": `DTMF to ${name}`, onclick: () => openDtmf(p) }, "DTMF") : null,
        p.kind === "sip"
          ? h("button", { class: "small danger", type: "button", "aria-label": `Hang up ${name}`, onclick: () => act(view, () => api("DELETE", `/calls/${enc(p.callId)}`)) }, "Hang up")
          : h("button", { class: "small danger", type: "button", "aria-label": `Remove ${name}`, onclick: () => act(view, () => api("DELETE", path)) }, "Remove"),
      ),
    );
  };

  const count = h("span", { class: "count" });
  const view = {
    title: "Channels",
    say: message.say,
    el: h(
      "div",
      { class: "cols" },
      card([h("h2", {}, "Live channels"), count], message.el, list.el,
        h("div", { class: "card-body muted" }, "Mute: the channel stops hearing the participant (it still hears the channel). Hang up ends a phone's call (BYE, or CANCEL before the answer); Remove disconnects a browser. Moving a participant to another channel has no API yet, so it is not offered.")),
      dtmfSlot,
    ),
    async refresh() {
      const channels = await api("GET", "/channels");
      const rows = channels
        .toSorted((a, b) => `${a.applicationId}/${a.channelId}`.localeCompare(`${b.applicationId}/${b.channelId}`))
        .flatMap((channel) => channel.participants.map((p) => ({ channel: { applicationId: channel.applicationId, channelId: channel.channelId }, p })));
      count.textContent = `${channels.length} channel${channels.length === 1 ? "" : "s"}, ${rows.length} participant${rows.length === 1 ? "" : "s"}`;
      syncRows(list.tbody, rows, (r) => `${r.channel.applicationId}/${r.channel.channelId}/${r.p.id}`, row, "No live channels on this node.");
    },
  };
  return view;
}

// ---------------------------------------------------------------- Calls and the SIP ladder

const stateTone = { trying: "warn", ringing: "warn", answered: "ok", ended: "" };

function callsView() {
  const message = messageLine();
  const list = table(["Started", "Dir", "State", "Trunk", "From", "To", "Channel", "Duration", "End"]);
  const detail = h("div", { class: "side stack" });
  const ladderSlot = h("div", { class: "stack" });
  const filters = {
    state: h("select", { "aria-label": "State" }, ["all", "active", "ended"].map((v) => h("option", { value: v }, v))),
    direction: h("select", { "aria-label": "Direction" }, ["any", "inbound", "outbound"].map((v) => h("option", { value: v }, v))),
    trunk: h("select", { "aria-label": "Trunk" }, h("option", { value: "" }, "any")),
    since: h("input", { type: "datetime-local", "aria-label": "From time", step: 1 }),
    until: h("input", { type: "datetime-local", "aria-label": "To time", step: 1 }),
  };
  const shown = h("span", { class: "count" });
  const older = h("button", { type: "button", class: "small secondary", hidden: true, onclick: () => loadOlder() }, "Load older");
  let pages = { first: [], older: [], nextCursor: undefined, olderCursor: undefined };
  let selected;

  const filtersBar = h(
    "div",
    { class: "filters" },
    h("label", {}, "State", filters.state),
    h("label", {}, "Direction", filters.direction),
    h("label", {}, "Trunk", filters.trunk),
    h("label", {}, "From", filters.since),
    h("label", {}, "To", filters.until),
    h("button", { type: "button", class: "small secondary", onclick: () => { filters.state.value = "all"; filters.direction.value = "any"; filters.trunk.value = ""; filters.since.value = ""; filters.until.value = ""; resetPages(); view.refresh(); } }, "Clear"),
    h("span", { class: "spacer" }),
    shown,
    older,
  );
  const resetPages = () => (pages = { first: [], older: [], nextCursor: undefined, olderCursor: undefined });
  filters.state.addEventListener("change", () => { resetPages(); view.refresh(); });
  for (const name of ["direction", "trunk", "since", "until"]) filters[name].addEventListener("change", () => view.refresh());

  const stateQuery = () => (filters.state.value === "all" ? "" : `&state=${filters.state.value}`);
  const loadOlder = async () => {
    if (!pages.olderCursor) return;
    const page = await api("GET", `/calls?limit=200${stateQuery()}&cursor=${enc(pages.olderCursor)}`);
    pages.older.push(...page.calls);
    pages.olderCursor = page.nextCursor;
    await view.refresh();
  };

  const matches = (c) => {
    if (filters.direction.value !== "any" && c.direction !== filters.direction.value) return false;
    if (filters.trunk.value && c.trunkId !== filters.trunk.value) return false;
    const created = Date.parse(c.createdAt);
    if (filters.since.value && created < new Date(filters.since.value).getTime()) return false;
    if (filters.until.value && created > new Date(filters.until.value).getTime()) return false;
    return true;
  };

  const row = (c) => {
    const end = c.endedAt ? Date.parse(c.endedAt) : Date.now();
    const duration = c.answeredAt ? formatDuration(end - Date.parse(c.answeredAt)) : "";
    return h(
      "tr",
      { class: `clickable${c.id === selected ? " selected" : ""}`, onclick: () => select(c.id) },
      h("td", { class: "nowrap", title: c.createdAt }, formatTime(c.createdAt)),
      h("td", {}, c.direction === "inbound" ? pill("in", "info") : pill("out")),
      h("td", {}, pill(c.state, stateTone[c.state])),
      h("td", { class: "mono" }, c.trunkId ?? ""),
      uriCell(c.from),
      uriCell(c.to),
      h("td", { class: "mono" }, c.channelId ?? "", c.applicationId ? h("div", { class: "sub" }, c.applicationId) : null),
      h("td", { class: "num" }, duration),
      h("td", {}, c.endReason ? h("span", {}, c.endReason, c.sipStatus ? h("span", { class: "sub" }, ` ${c.sipStatus}`) : null) : ""),
    );
  };

  const select = (id) => {
    selected = id;
    for (const tr of list.tbody.children) tr.classList.toggle("selected", tr.dataset.key === id);
    showCall(id);
  };

  const showCall = async (id) => {
    const facts = h("dl", { class: "facts" });
    const ladder = h("div", { class: "card-body", id: "ladder" }, h("span", { class: "muted" }, "Loading the SIP trace…"));
    const actions = h("span");
    detail.replaceChildren(card([h("h2", {}, "Call"), h("span", { class: "spacer" }), actions], h("div", { class: "card-body" }, facts)));
    ladderSlot.replaceChildren(card([h("h2", {}, "SIP ladder"), h("span", { class: "count mono" }, id)], ladder));
    const renderFacts = (c) => {
      const rows = [
        ["Id", c.id],
        ["State", pill(c.state, stateTone[c.state])],
        ["Direction", c.direction],
        ["Trunk", c.trunkId],
        ["From", c.from],
        ["To", c.to],
        ["Channel", c.channelId ? `${c.applicationId} / ${c.channelId}` : undefined],
        ["User", c.userId],
        ["SIP Call-ID", c.sipCallId],
        ["Created", formatTime(c.createdAt)],
        ["Ringing", formatTime(c.ringingAt)],
        ["Answered", formatTime(c.answeredAt)],
        ["Ended", formatTime(c.endedAt)],
        c.state === "ended" ? ["End reason", `${c.endReason ?? "?"}${c.sipStatus ? ` (SIP ${c.sipStatus})` : ""}`] : ["SIP status", c.sipStatus === undefined ? undefined : String(c.sipStatus)],
        ["Codec", c.codec],
        ["Media", c.mediaStats ? Object.entries(c.mediaStats).map(([k, v]) => `${k} ${v}`).join(", ") : undefined],
      ];
      facts.replaceChildren(...rows.filter(([, v]) => v !== undefined && v !== "").flatMap(([k, v]) => [h("dt", {}, k), h("dd", { class: typeof v === "string" ? "mono" : "" }, v)]));
      // replaceChildren would write a null as the text "null": build through h(), which skips it.
      actions.replaceChildren(h("span", {},
        c.state === "answered" ? h("button", { type: "button", class: "small secondary", onclick: () => {
          const digits = prompt("DTMF digits to send (0-9 * # A-D)");
          if (digits) act(view, () => api("POST", `/calls/${enc(c.id)}/dtmf`, { digits }));
        } }, "DTMF") : null,
        " ",
        c.state !== "ended" ? h("button", { type: "button", class: "small danger", "aria-label": "Hang up this call", onclick: () => act(view, async () => { await api("DELETE", `/calls/${enc(c.id)}`); await showCall(c.id); }) }, "Hang up") : null,
      ));
    };
    try {
      renderFacts(await api("GET", `/calls/${enc(id)}`));
    } catch (error) {
      facts.replaceChildren(h("span", { class: "error" }, error.message));
    }
    await showLadder(id, ladder);
  };

  const view = {
    title: "Calls",
    say: message.say,
    el: h("div", { class: "cols" }, h("div", { class: "stack" }, card([h("h2", {}, "Calls")], message.el, filtersBar, list.el), ladderSlot), detail),
    async refresh() {
      const [page, trunks] = await Promise.all([api("GET", `/calls?limit=200${stateQuery()}`), api("GET", "/trunks")]);
      pages.first = page.calls;
      if (pages.older.length === 0) pages.olderCursor = page.nextCursor;
      const known = new Set([...filters.trunk.options].map((o) => o.value));
      for (const t of trunks) if (!known.has(t.id)) filters.trunk.append(h("option", { value: t.id }, t.id));
      const byId = new Map();
      for (const c of [...pages.first, ...pages.older]) if (!byId.has(c.id)) byId.set(c.id, c);
      const all = [...byId.values()];
      const visible = all.filter(matches);
      shown.textContent = `${visible.length} shown of the newest ${all.length}`;
      older.hidden = !pages.olderCursor;
      syncRows(list.tbody, visible.map((c) => ({ ...c, live: c.state === "answered" ? Math.floor(Date.now() / 1000) : 0 })), (c) => c.id, row, "No calls match.");
      for (const tr of list.tbody.children) tr.classList.toggle("selected", tr.dataset.key === selected);
    },
  };
  return view;
}

/** GET /calls/:id/sip: one arrow per message, Trunkline on the left; a click shows the whole message. */
async function showLadder(callId, slot) {
  let trace;
  try {
    trace = await api("GET", `/calls/${enc(callId)}/sip`);
  } catch (error) {
    slot.replaceChildren(h("span", { class: "muted" }, error.status === 404 ? "No SIP trace recorded for this call." : `The SIP trace could not be read: ${error.message}`));
    return;
  }
  // The shape of src/traces/formats.ts traceView: direction "sent"|"received", summary is the first line.
  const messages = trace.messages;
  if (messages.length === 0) {
    slot.replaceChildren(h("span", { class: "muted" }, "No SIP trace recorded for this call."));
    return;
  }
  const t0 = Date.parse(messages[0].time);
  const peer = messages[0].direction === "sent" ? messages[0].destination : messages[0].source;
  const rows = h("tbody");
  for (const m of messages) {
    const isResponse = /^SIP\/2\.0 /.test(m.summary);
    const full = h("tr", { class: "full", hidden: true }, h("td", { colspan: 4 }, h("pre", {}, m.message)));
    rows.append(
      h(
        "tr",
        { class: "msg", title: "Show the whole message", onclick: () => (full.hidden = !full.hidden) },
        h("td", { class: "t", title: m.time }, `+${((Date.parse(m.time) - t0) / 1000).toFixed(3)}s`),
        h("td", { class: "lane" }, m.transport.toUpperCase()),
        h("td", { class: `arrow ${m.direction}${m.retransmission ? " retrans" : ""}${isResponse ? " response" : ""}` }, h("span", {}, m.summary, m.retransmission ? " (retransmission)" : "")),
        h("td", { class: "lane mono" }, m.direction === "sent" ? `→ ${m.destination}` : `← ${m.source}`),
      ),
      full,
    );
  }
  const pcap = h("button", { type: "button", class: "small secondary", onclick: () => downloadPcap(callId).catch((error) => alert(error.message)) }, "Download pcap");
  slot.replaceChildren(
    h("div", { class: "filters ladder-bar" }, h("span", {}, `${messages.length} messages`), trace.truncated ? pill("truncated", "warn") : null, h("span", { class: "spacer" }), pcap),
    h("table", { class: "ladder" }, h("thead", {}, h("tr", {}, h("th", {}, `Time from ${formatTime(messages[0].time)}`), h("th", {}, ""), h("th", { class: "center" }, `Trunkline ⇄ ${peer}`), h("th", {}, "Peer address"))), rows),
  );
}

async function downloadPcap(callId) {
  const res = await fetch(`${API}/calls/${enc(callId)}/sip?format=pcap`, { headers: { authorization: `Bearer ${token()}` } });
  if (!res.ok) throw new Error(`no pcap: HTTP ${res.status}`);
  const url = URL.createObjectURL(await res.blob());
  const a = h("a", { href: url, download: `${callId}.pcap` });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

// ---------------------------------------------------------------- shell: login, navigation, polling

const views = { trunks: trunksView, applications: applicationsView, webhooks: webhooksView, channels: channelsView, calls: callsView };
let current;
let pollTimer;
/** The view whose refresh is in flight: a new screen refreshes at once even while the old one's poll is pending. */
let refreshing;

function route() {
  const name = location.hash.split("/")[1];
  return name in views ? name : "trunks";
}

async function refreshCurrent() {
  const view = current;
  if (!view || refreshing === view) return;
  refreshing = view;
  const live = document.getElementById("live");
  try {
    await view.refresh();
    if (view === current) {
      live.textContent = view.live === false ? "" : `live · updated ${new Date().toLocaleTimeString([], { hour12: false })}`;
      live.className = "live";
    }
  } catch (error) {
    if (view === current && token()) {
      live.textContent = `update failed: ${error.message}`;
      live.className = "live error";
    }
  } finally {
    if (refreshing === view) refreshing = undefined;
  }
}

function show() {
  const name = route();
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.getAttribute("href") === `#/${name}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (current?.name === name) return;
  clearInterval(pollTimer);
  current = views[name]();
  current.name = name;
  document.title = `${current.title} · Trunkline console`;
  document.getElementById("main").replaceChildren(current.el);
  refreshCurrent();
  if (current.live !== false) pollTimer = setInterval(refreshCurrent, POLL_MS);
}

function logOut(reason) {
  sessionStorage.removeItem(TOKEN_KEY);
  clearInterval(pollTimer);
  current = undefined;
  document.getElementById("main").replaceChildren();
  document.getElementById("app").hidden = true;
  document.getElementById("login-screen").hidden = false;
  const error = document.getElementById("login-error");
  error.textContent = reason ?? "";
  error.hidden = !reason;
  document.getElementById("token").focus();
}

function logIn() {
  document.getElementById("login-screen").hidden = true;
  document.getElementById("app").hidden = false;
  show();
}

document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = document.getElementById("token");
  const error = document.getElementById("login-error");
  const button = event.target.querySelector("button");
  const candidate = input.value.trim();
  error.hidden = true;
  button.disabled = true;
  try {
    await request("GET", "/trunks", undefined, candidate);
    sessionStorage.setItem(TOKEN_KEY, candidate);
    input.value = "";
    logIn();
  } catch (failure) {
    error.textContent =
      failure.status === 401 ? "Wrong admin token: the server refused it (401)." : failure.status === 429 ? failure.message : `Cannot log in: ${failure.message}`;
    error.hidden = false;
    input.select();
  } finally {
    button.disabled = false;
  }
});
document.getElementById("logout").addEventListener("click", () => logOut());
window.addEventListener("hashchange", () => token() && show());

if (token()) logIn();
else logOut();
