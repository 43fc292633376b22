// Switchboard web console: a client of the router's JSON API (/api/v1).
// Every read and write goes through the API, so what a role may do, how
// input is validated and what is audited are the API's rules. The session
// token stays in an HttpOnly cookie; this script only holds the session's
// anti-forgery value, sent on every write. DOM is built with text nodes
// (never innerHTML from data), so nothing from the server becomes markup.

const API = "/api/v1";
let session = null; // {csrf, tenant_id, domain, employee_id, extension, name, role}
let events = null; // the live-update stream
const listeners = new Set(); // pages listening to live snapshots
let lastSnapshot = null;

// ---- DOM helpers -------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "value") el.value = v;
    else if (k === "checked") el.checked = !!v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children.flat()) if (c) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

// Appends what is there; null and false stand for "nothing here".
function put(parent, ...kids) {
  parent.append(...kids.flat().filter((k) => k !== null && k !== undefined && k !== false));
}

function toast(text, bad) {
  const box = document.getElementById("toast");
  const el = h("div", { class: bad ? "bad" : "" }, text);
  box.append(el);
  setTimeout(() => el.remove(), 5000);
}

const fmtTime = (ms) => (ms ? new Date(ms).toLocaleString() : "");
const idFor = (() => { let n = 0; return (p) => `${p}-${++n}`; })();

// ---- API ---------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message, field) {
    super(message);
    this.status = status;
    this.field = field;
  }
}

async function api(method, path, body, raw) {
  const headers = {};
  if (method !== "GET") headers["X-CSRF-Token"] = session ? session.csrf : "";
  let payload;
  if (raw) {
    headers["Content-Type"] = "application/wasm";
    payload = body;
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const resp = await fetch(API + path, { method, headers, body: payload, credentials: "same-origin" });
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (resp.status === 401) {
    session = null;
    showLogin("Your session has ended; please log in again.");
    throw new ApiError(401, "not logged in");
  }
  if (!resp.ok) {
    throw new ApiError(resp.status, (data && data.error) || `${resp.status} ${resp.statusText}`, data && data.field);
  }
  return data;
}

const T = () => `/tenants/${session.tenant_id}`;
const isAdmin = () => session && session.role === "administrator";

// ---- forms -------------------------------------------------------------

// A labelled field. kind: text, password, number, date, time, select,
// checkbox, textarea. The error slot sits next to it, tied by
// aria-describedby, and is found by the API error's `field`.
function field(name, label, kind, opts = {}) {
  const id = idFor(name);
  const errId = `${id}-err`;
  let input;
  const common = { id, name, "aria-describedby": errId };
  if (kind === "select") {
    input = h("select", common, (opts.options || []).map(([v, t]) => h("option", { value: v, selected: String(opts.value ?? "") === String(v) }, t)));
  } else if (kind === "textarea") {
    input = h("textarea", { ...common, rows: opts.rows || 8 });
    input.value = opts.value ?? "";
  } else if (kind === "checkbox") {
    input = h("input", { ...common, type: "checkbox", checked: !!opts.value });
  } else {
    input = h("input", { ...common, type: kind, value: opts.value ?? "", placeholder: opts.placeholder, required: opts.required, min: opts.min, max: opts.max, autocomplete: opts.autocomplete || "off" });
  }
  const wrap = h("div", { class: kind === "checkbox" ? "field inline" : "field", "data-field": name },
    kind === "checkbox" ? [input, h("label", { for: id }, label)] : [h("label", { for: id }, label), input],
    opts.hint ? h("span", { class: "hint" }, opts.hint) : null,
    h("span", { id: errId, class: "error" }));
  return wrap;
}

function formValues(form) {
  const out = {};
  for (const el of form.querySelectorAll("input, select, textarea")) {
    if (!el.name) continue;
    if (el.type === "checkbox") out[el.name] = el.checked;
    else if (el.type === "number") out[el.name] = el.value === "" ? null : Number(el.value);
    else out[el.name] = el.value;
  }
  return out;
}

function clearErrors(form) {
  form.querySelectorAll(".error").forEach((e) => (e.textContent = ""));
  form.querySelectorAll("[aria-invalid]").forEach((e) => e.removeAttribute("aria-invalid"));
  const fe = form.querySelector(".form-error");
  if (fe) fe.textContent = "";
}

// Shows an API error next to the field it names (its first path segment,
// e.g. `week.mon` under `week`), or above the buttons.
function showError(form, err) {
  const name = err.field ? String(err.field) : "";
  const candidates = [name, name.split(".")[0], name.split("[")[0]];
  for (const c of candidates) {
    if (!c) continue;
    const wrap = form.querySelector(`[data-field="${CSS.escape(c)}"]`);
    if (wrap) {
      wrap.querySelector(".error").textContent = err.message;
      const input = wrap.querySelector("input, select, textarea");
      if (input) { input.setAttribute("aria-invalid", "true"); input.focus(); }
      return;
    }
  }
  form.querySelector(".form-error").textContent = err.message;
}

// A form whose submit runs `action(values)`; errors land next to fields.
function form(title, fields, submitLabel, action, extra) {
  const f = h("form", { class: "card", novalidate: true },
    title ? h("h2", {}, title) : null,
    fields,
    h("p", { class: "form-error", role: "alert" }),
    h("div", { class: "actions" }, h("button", { type: "submit" }, submitLabel), extra || null));
  f.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearErrors(f);
    const btn = f.querySelector("button[type=submit]");
    btn.disabled = true;
    try {
      await action(formValues(f), f);
    } catch (err) {
      if (err instanceof ApiError) { if (err.status !== 401) showError(f, err); }
      else { f.querySelector(".form-error").textContent = String(err); }
    } finally {
      btn.disabled = false;
    }
  });
  return f;
}

function table(headers, rows, empty) {
  if (!rows.length) return h("p", { class: "hint" }, empty || "Nothing yet.");
  return h("div", { class: "scroll" }, h("table", {},
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
    h("tbody", {}, rows)));
}

const badge = (on, yes, no) => h("span", { class: on ? "badge on" : "badge off" }, on ? yes : no);
const nonEmpty = (o) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== "" && v !== null));

async function confirmAnd(question, fn) {
  if (window.confirm(question)) await fn();
}

async function guarded(fn) {
  try { await fn(); } catch (e) { if (!(e instanceof ApiError && e.status === 401)) toast(e.message, true); }
}

// ---- pages -------------------------------------------------------------

const ROLES = [["administrator", "Administrator"], ["department_head", "Department head"], ["user", "User"], ["restricted_user", "Restricted user"]];

async function employeesPage(main) {
  const [emps, groups] = await Promise.all([api("GET", `${T()}/employees`), api("GET", `${T()}/hunt-groups`)]);
  const depts = [["", "(none)"], ...groups.items.map((g) => [g.id, `${g.name} (${g.extension})`])];
  const editSlot = h("div", {});
  const rows = emps.items.map((e) => h("tr", {},
    h("td", {}, e.extension), h("td", {}, e.name), h("td", {}, e.login),
    h("td", {}, (ROLES.find((r) => r[0] === e.role) || [0, e.role])[1]),
    h("td", {}, e.mobile || ""),
    h("td", {}, e.forced_login ? "yes" : "no"),
    h("td", {}, h("div", { class: "actions" },
      h("a", { href: `#/me/diverts?ext=${e.extension}` }, "Diverts"),
      h("a", { href: `#/me/schedule?ext=${e.extension}` }, "Schedule"),
      h("button", { type: "button", class: "secondary", onclick: () => { editSlot.replaceChildren(editEmployee(e, depts)); editSlot.querySelector("input").focus(); } }, `Edit ${e.extension}`),
      h("button", { type: "button", class: "danger", onclick: () => confirmAnd(`Delete ${e.name} (${e.extension})?`, () => guarded(async () => { await api("DELETE", `${T()}/employees/${e.id}`); toast(`Deleted ${e.extension}`); route(); })) }, "Delete")))));
  put(main, h("h1", {}, "Employees"),
    table(["Extension", "Name", "Login", "Role", "Mobile", "Forced login", ""], rows),
    editSlot,
    form("New employee", [
      h("div", { class: "row" },
        field("name", "Name", "text", { required: true }),
        field("extension", "Extension", "text", { hint: "blank: the next free one" }),
        field("login", "Login", "text", { hint: "blank: the extension" })),
      h("div", { class: "row" },
        field("password", "Password", "password", { autocomplete: "new-password" }),
        field("role", "Role", "select", { options: ROLES, value: "user" }),
        field("department_id", "Department", "select", { options: depts })),
      h("div", { class: "row" },
        field("mobile", "Mobile (international digits)", "text"),
        field("voicemail_pin", "PIN", "password", { hint: "voicemail and hotdesk PIN" }),
        field("email", "E-mail", "text")),
      field("forced_login", "Forced login (seed 004)", "checkbox"),
    ], "Create employee", async (v) => {
      const body = nonEmpty(v);
      if (body.department_id) body.department_id = Number(body.department_id);
      const e = await api("POST", `${T()}/employees`, body);
      toast(`Created ${e.name} with extension ${e.extension}`);
      route();
    }));
}

function editEmployee(e, depts) {
  return form(`Edit ${e.name} (${e.extension})`, [
    h("div", { class: "row" },
      field("name", "Name", "text", { value: e.name }),
      field("role", "Role", "select", { options: ROLES, value: e.role }),
      field("department_id", "Department", "select", { options: depts, value: e.department_id ?? "" })),
    h("div", { class: "row" },
      field("mobile", "Mobile", "text", { value: e.mobile || "" }),
      field("email", "E-mail", "text", { value: e.email || "" }),
      field("position", "Position", "text", { value: e.position || "" })),
    h("div", { class: "row" },
      field("voicemail_pin", "New PIN", "password", { hint: "blank: unchanged" }),
      field("password", "Reset password", "password", { hint: "blank: unchanged; logs them out", autocomplete: "new-password" })),
    field("forced_login", "Forced login (seed 004)", "checkbox", { value: e.forced_login }),
    field("call_waiting", "Call waiting", "checkbox", { value: e.call_waiting }),
  ], "Save", async (v) => {
    const body = { name: v.name, role: v.role, mobile: v.mobile, email: v.email, position: v.position, forced_login: v.forced_login, call_waiting: v.call_waiting };
    body.department_id = v.department_id === "" ? null : Number(v.department_id);
    if (v.voicemail_pin) body.voicemail_pin = v.voicemail_pin;
    if (v.password) body.password = v.password;
    await api("PATCH", `${T()}/employees/${e.id}`, body);
    toast(`Saved ${e.extension}`);
    route();
  });
}

async function devicesPage(main) {
  const [devs, emps, tenant, logins] = await Promise.all([
    api("GET", `${T()}/devices`), api("GET", `${T()}/employees`), api("GET", T()), api("GET", `${T()}/hotdesk`)]);
  const owner = (id) => { const e = emps.items.find((x) => x.id === id); return e ? `${e.name} (${e.extension})` : "hotdesk (nobody)"; };
  const loggedIn = (u) => (logins.items.find((l) => l.device === u) || {}).extension;
  put(main, h("h1", {}, "Devices"),
    h("p", {}, `Hotdesk range: ${tenant.hotdesk_range.start}–${tenant.hotdesk_range.end}. Device accounts in that range belong to nobody; employees log in at them (*88, or the Hotdesk page). The range is set in `, h("a", { href: "#/company" }, "Company settings"), "."),
    table(["Username", "Name", "Owner", "Logged in", "Digest", ""], devs.items.map((d) => h("tr", {},
      h("td", {}, d.username), h("td", {}, d.name), h("td", {}, owner(d.employee_id)),
      h("td", {}, loggedIn(d.username) || ""),
      h("td", {}, d.digest_algorithms.join(", ") || "tenant's"),
      h("td", {}, h("div", { class: "actions" },
        loggedIn(d.username) ? h("button", { type: "button", class: "secondary", onclick: () => guarded(async () => { await api("DELETE", `${T()}/hotdesk/${d.username}`); toast(`Released ${d.username}`); route(); }) }, "Release") : null,
        h("button", { type: "button", class: "danger", onclick: () => confirmAnd(`Delete device ${d.username}?`, () => guarded(async () => { await api("DELETE", `${T()}/devices/${d.id}`); route(); })) }, "Delete")))))),
    form("New device account", [
      h("div", { class: "row" },
        field("username", "Username (extension)", "text"),
        field("name", "Label", "text"),
        field("password", "SIP password", "password", { autocomplete: "new-password" })),
      field("employee_id", "Owner", "select", { options: [["", "nobody (hotdesk phone)"], ...emps.items.map((e) => [e.id, `${e.name} (${e.extension})`])] }),
    ], "Create device", async (v) => {
      const body = nonEmpty(v);
      if (body.employee_id) body.employee_id = Number(body.employee_id);
      await api("POST", `${T()}/devices`, body);
      toast(`Created device ${v.username}`);
      route();
    }));
}

async function companyPage(main) {
  const t = await api("GET", T());
  const scopes = [["department", "Their department"], ["company", "The whole company"]];
  put(main, h("h1", {}, "Company settings"),
    form(null, [
      h("div", { class: "row" },
        field("name", "Company name", "text", { value: t.name }),
        field("time_zone", "Time zone", "text", { value: t.time_zone, hint: "IANA name, e.g. Europe/London" })),
      h("div", { class: "row" },
        field("trunk_uri", "Trunk (outside calls)", "text", { value: t.trunk_uri || "", hint: "sip: URI; empty: none" }),
        field("voicemail_uri", "Voicemail server", "text", { value: t.voicemail_uri || "", hint: "sip: URI; empty: none" })),
      h("div", { class: "row" },
        field("hotdesk_first", "Hotdesk range from", "number", { value: t.hotdesk_range.start }),
        field("hotdesk_last", "to", "number", { value: t.hotdesk_range.end })),
      h("div", { class: "row" },
        field("head_history_scope", "Department heads see the calls of", "select", { options: scopes, value: t.head_history_scope }),
        field("user_history_scope", "Users see the calls of", "select", { options: scopes, value: t.user_history_scope })),
      field("busy_on_active_call", "Someone already on the phone is busy (seed 001)", "checkbox", { value: t.busy_on_active_call }),
    ], "Save company settings", async (v) => {
      const body = { ...v };
      if (body.hotdesk_first === t.hotdesk_range.start && body.hotdesk_last === t.hotdesk_range.end) {
        delete body.hotdesk_first;
        delete body.hotdesk_last;
      }
      await api("PATCH", T(), body);
      toast("Company settings saved");
      route();
    }));
}

const STRATEGIES = [["ring_all", "Ring all"], ["sequential", "Sequential"], ["rotary", "Rotary"], ["longest_idle", "Longest idle"]];
const APPLIES = [["none", "No calls"], ["any_calls", "Any calls"], ["external_incoming", "External incoming calls"]];

async function groupsPage(main) {
  const [groups, emps] = await Promise.all([api("GET", `${T()}/hunt-groups`), api("GET", `${T()}/employees`)]);
  const name = (id) => { const e = emps.items.find((x) => x.id === id); return e ? `${e.name} (${e.extension})` : `#${id}`; };
  put(main, h("h1", {}, "Hunt groups"));
  for (const g of groups.items) {
    const members = g.members.map((m) => ({ ...m }));
    const list = h("ol", {});
    const draw = () => list.replaceChildren(...members.map((m, i) => h("li", {},
      name(m.employee_id), " ", badge(m.enabled, "enabled", "disabled"), " ",
      h("button", { type: "button", class: "secondary", "aria-label": `Move ${name(m.employee_id)} up`, disabled: i === 0, onclick: () => { [members[i - 1], members[i]] = [members[i], members[i - 1]]; draw(); } }, "↑"), " ",
      h("button", { type: "button", class: "secondary", "aria-label": `Toggle ${name(m.employee_id)}`, onclick: () => { m.enabled = !m.enabled; draw(); } }, m.enabled ? "Disable" : "Enable"), " ",
      h("button", { type: "button", class: "danger", "aria-label": `Remove ${name(m.employee_id)}`, onclick: () => { members.splice(i, 1); draw(); } }, "Remove"))));
    draw();
    const add = field("add", "Add member", "select", { options: [["", "—"], ...emps.items.map((e) => [e.id, `${e.name} (${e.extension})`])] });
    add.querySelector("select").addEventListener("change", (ev) => {
      const id = Number(ev.target.value);
      if (id && !members.some((m) => m.employee_id === id)) { members.push({ employee_id: id, enabled: true }); draw(); }
      ev.target.value = "";
    });
    const settings = form(null, [
      h("div", { class: "row" },
        field("name", "Name", "text", { value: g.name }),
        field("strategy", "Strategy", "select", { options: STRATEGIES, value: g.strategy })),
      h("div", { class: "row" },
        field("member_ring_secs", "Seconds per member", "number", { value: g.member_ring_secs, min: 5, max: 300 }),
        field("total_ring_secs", "Seconds in all", "number", { value: g.total_ring_secs, min: 5, max: 3600 }),
        field("no_answer_applies_to", "Status on no answer applies to", "select", { options: APPLIES, value: g.no_answer_applies_to })),
    ], `Save ${g.name}`, async (v) => {
      await api("PATCH", `${T()}/hunt-groups/${g.id}`, v);
      toast(`Saved ${v.name}`);
      route();
    });
    put(main, h("section", { class: "card" },
      h("h2", {}, `${g.name} (${g.extension})`),
      settings,
      h("h3", {}, "Members, in ring order"),
      list,
      form(null, [add], "Save members", async () => {
        await api("PUT", `${T()}/hunt-groups/${g.id}/members`, { members });
        toast(`Saved the members of ${g.name}`);
        route();
      }, h("button", { type: "button", class: "danger", onclick: () => confirmAnd(`Delete hunt group ${g.name}?`, () => guarded(async () => { await api("DELETE", `${T()}/hunt-groups/${g.id}`); route(); })) }, "Delete group"))));
  }
  put(main, form("New hunt group", [
    h("div", { class: "row" },
      field("name", "Name", "text"),
      field("extension", "Extension", "text"),
      field("strategy", "Strategy", "select", { options: STRATEGIES })),
    h("div", { class: "row" },
      field("member_ring_secs", "Seconds per member", "number", { value: 20, min: 5, max: 300 }),
      field("total_ring_secs", "Seconds in all", "number", { value: 60 }),
      field("no_answer_applies_to", "Status on no answer applies to", "select", { options: APPLIES })),
    h("fieldset", { "data-field": "members" }, h("legend", {}, "Members (in ring order)"),
      emps.items.map((e) => field(`member-${e.id}`, `${e.name} (${e.extension})`, "checkbox")),
      h("span", { class: "error" })),
  ], "Create group", async (v) => {
    const members = Object.keys(v).filter((k) => k.startsWith("member-") && v[k]).map((k) => Number(k.slice(7)));
    await api("POST", `${T()}/hunt-groups`, { name: v.name, extension: v.extension, strategy: v.strategy, member_ring_secs: v.member_ring_secs, total_ring_secs: v.total_ring_secs, no_answer_applies_to: v.no_answer_applies_to, members });
    toast(`Created ${v.name}`);
    route();
  }));
}

async function pluginsPage(main) {
  const view = await api("GET", `${T()}/plugins`);
  const info = (n) => view.available.find((p) => p.name === n) || { points: [], calls: 0, faults: 0 };
  // One entry at a time: what another administrator changed meanwhile in
  // other entries stays.
  const entry = (name, body) => guarded(async () => {
    await api("PUT", `${T()}/plugin-chain/${encodeURIComponent(name)}`, body);
    toast("Chain saved");
    route();
  });
  const detail = h("div", { "aria-live": "polite" });
  const showFaults = (name) => guarded(async () => {
    const f = await api("GET", `${T()}/plugins/${encodeURIComponent(name)}/faults`);
    detail.replaceChildren(h("section", { class: "card" }, h("h2", {}, `Recent faults of ${name}`),
      table(["When", "Call", "Reason"], f.items.slice().reverse().map((x) => h("tr", {}, h("td", {}, fmtTime(x.at)), h("td", {}, x.call_id), h("td", {}, x.reason))), "No faults on this node.")));
  });
  const showStore = (name) => guarded(async () => {
    const kv = await api("GET", `${T()}/plugins/${encodeURIComponent(name)}/kv`);
    detail.replaceChildren(h("section", { class: "card" }, h("h2", {}, `Stored data of ${name}`),
      table(["Key", "Value"], kv.items.map((x) => h("tr", {}, h("td", {}, x.key), h("td", {}, x.value))), "Nothing stored."),
      kv.total ? h("button", { type: "button", class: "danger", onclick: () => confirmAnd(`Clear everything ${name} stored?`, () => guarded(async () => { await api("DELETE", `${T()}/plugins/${encodeURIComponent(name)}/kv`); toast("Cleared"); showStore(name); })) }, "Clear") : null));
  });
  let dragFrom = null;
  const last = view.chain.length - 1;
  const rows = view.chain.map((c, i) => {
    const p = info(c.name);
    const tr = h("tr", { draggable: "true", "data-plugin": c.name },
      h("td", {}, String(i + 1)),
      h("td", {}, h("strong", {}, c.name), p.builtin ? h("span", { class: "hint" }, " built in") : null),
      h("td", {}, String(c.version)),
      h("td", {}, p.points.join(", ")),
      h("td", {}, String(p.calls)),
      h("td", {}, p.faults ? h("button", { type: "button", class: "secondary", "aria-label": `Faults of ${c.name}`, onclick: () => showFaults(c.name) }, String(p.faults)) : "0"),
      h("td", {}, badge(c.enabled, "enabled", "disabled"), c.disabled_reason ? h("div", { class: "error" }, c.disabled_reason) : null),
      h("td", {}, h("div", { class: "actions" },
        h("button", { type: "button", class: "secondary", "aria-label": `Move ${c.name} up`, disabled: i === 0, onclick: () => entry(c.name, { position: i - 1 }) }, "↑"),
        h("button", { type: "button", class: "secondary", "aria-label": `Move ${c.name} down`, disabled: i === last, onclick: () => entry(c.name, { position: i + 1 }) }, "↓"),
        h("button", { type: "button", class: c.enabled ? "danger" : "secondary", "data-toggle": c.name, onclick: () => entry(c.name, { enabled: !c.enabled }) }, c.enabled ? `Disable ${c.name}` : `Enable ${c.name}`),
        h("button", { type: "button", class: "secondary", onclick: () => showStore(c.name) }, "Data"),
        h("button", { type: "button", class: "secondary", onclick: () => guarded(async () => { await api("DELETE", `${T()}/plugin-chain/${encodeURIComponent(c.name)}`); toast(`Took ${c.name} out`); route(); }) }, "Remove"))));
    // Reordering by drag, for those with a mouse; the arrows do the same.
    tr.addEventListener("dragstart", () => { dragFrom = i; tr.classList.add("dragging"); });
    tr.addEventListener("dragend", () => tr.classList.remove("dragging"));
    tr.addEventListener("dragover", (ev) => ev.preventDefault());
    tr.addEventListener("drop", (ev) => { ev.preventDefault(); if (dragFrom !== null && dragFrom !== i) entry(view.chain[dragFrom].name, { position: i }); dragFrom = null; });
    return tr;
  });
  const unchained = view.available.filter((p) => !view.chain.some((c) => c.name === p.name));
  put(main, h("h1", {}, "Plugins"),
    h("p", {}, "Plugins are asked in this order at every decision point they serve. Drag a row or use the arrows to reorder."),
    table(["#", "Plugin", "Version", "Points", "Calls", "Faults", "State", ""], rows, "The chain is empty."),
    detail,
    unchained.length ? h("section", { class: "card" }, h("h2", {}, "Not in the chain"),
      table(["Plugin", "Version", "Points", ""], unchained.map((p) => h("tr", {},
        h("td", {}, p.name, p.builtin ? h("span", { class: "hint" }, " built in") : null), h("td", {}, String(p.version)), h("td", {}, p.points.join(", ")),
        h("td", {}, h("div", { class: "actions" },
          h("button", { type: "button", class: "secondary", onclick: () => entry(p.name, {}) }, `Add ${p.name}`),
          p.builtin ? null : h("button", { type: "button", class: "danger", onclick: () => confirmAnd(`Delete ${p.name}, its settings and its data?`, () => guarded(async () => { await api("DELETE", `${T()}/plugins/${encodeURIComponent(p.name)}`); toast(`Deleted ${p.name}`); route(); })) }, `Delete ${p.name}`))))))) : null,
    form("Upload a plugin or a new version", [
      field("name", "Plugin name", "text", { hint: "lower-case letters, digits and dashes" }),
      field("wasm", "Component (.wasm)", "file"),
    ], "Upload", async (v, f) => {
      const file = f.querySelector("input[type=file]").files[0];
      if (!file) throw new ApiError(400, "choose a .wasm file", "wasm");
      const p = await api("POST", `${T()}/plugins/${encodeURIComponent(v.name)}`, file, true);
      toast(`Uploaded ${p.name} version ${p.version}`);
      route();
    }),
    settingsEditor(view.available.map((p) => p.name)));
}

function settingsEditor(names) {
  const out = h("div", {});
  const pick = form("Settings", [
    h("div", { class: "row" },
      field("plugin", "Plugin", "select", { options: names.map((n) => [n, n]) }),
      field("scope", "Scope", "text", { value: "tenant", hint: "tenant, or employee:<extension>" })),
  ], "Load settings", async (v) => {
    const cur = await api("GET", `${T()}/plugins/${encodeURIComponent(v.plugin)}/settings/${encodeURIComponent(v.scope)}`);
    out.replaceChildren(form(`${cur.plugin} — ${cur.scope}`, [
      field("settings", "Settings (JSON)", "textarea", { value: JSON.stringify(cur.settings, null, 2), hint: "the plugin checks them; its message appears here" }),
    ], "Save settings", async (w) => {
      let parsed;
      try { parsed = JSON.parse(w.settings); } catch (e) { throw new ApiError(400, `not JSON: ${e.message}`, "settings"); }
      try {
        await api("PUT", `${T()}/plugins/${encodeURIComponent(cur.plugin)}/settings/${encodeURIComponent(cur.scope)}`, parsed);
      } catch (e) {
        // The plugin's own validation message names its field; it goes
        // next to the one editor the settings have.
        if (e instanceof ApiError && e.status !== 401) throw new ApiError(e.status, e.message, "settings");
        throw e;
      }
      toast("Settings saved");
    }));
  });
  return h("div", {}, pick, out);
}

const OUTCOMES = ["answered", "no_answer", "busy", "unreachable", "cancelled", "rejected"];
const COLOURS = { answered: "#1e7a3c", no_answer: "#f0b429", busy: "#d9480f", unreachable: "#6c757d", cancelled: "#9aa5b1", rejected: "#b3261e" };

function callsChart(items) {
  // Calls per hour by outcome, over the calls shown.
  const hours = new Map();
  for (const c of items) {
    const d = new Date(c.started_at);
    d.setMinutes(0, 0, 0);
    const k = d.getTime();
    if (!hours.has(k)) hours.set(k, {});
    const b = hours.get(k);
    b[c.outcome] = (b[c.outcome] || 0) + 1;
  }
  if (!hours.size) return null;
  // 24 hourly slots ending with the newest call's hour, empty ones too.
  const newest = Math.max(...hours.keys());
  const keys = [];
  for (let i = 23; i >= 0; i--) {
    const d = new Date(newest);
    d.setHours(d.getHours() - i);
    keys.push(d.getTime());
    if (!hours.has(d.getTime())) hours.set(d.getTime(), {});
  }
  const max = Math.max(1, ...keys.map((k) => Object.values(hours.get(k)).reduce((a, b) => a + b, 0)));
  const W = 720, H = 180, bw = Math.max(8, Math.floor((W - 40) / keys.length) - 4);
  const bars = [];
  keys.forEach((k, i) => {
    let y = H - 24;
    for (const o of OUTCOMES) {
      const n = hours.get(k)[o] || 0;
      if (!n) continue;
      const bh = Math.round((n / max) * (H - 40));
      y -= bh;
      bars.push(svg("rect", { x: 30 + i * (bw + 4), y, width: bw, height: bh, fill: COLOURS[o] }, svg("title", {}, `${new Date(k).toLocaleString()}: ${n} ${o}`)));
    }
    if (i % 3 === 0 || i === keys.length - 1) bars.push(svg("text", { x: 30 + i * (bw + 4), y: H - 8, "font-size": 10, fill: "#5b6475" }, `${new Date(k).getHours()}h`));
  });
  bars.push(svg("text", { x: 2, y: 14, "font-size": 10, fill: "#5b6475" }, String(max)));
  return h("figure", {},
    h("figcaption", {}, "Calls per hour by outcome"),
    h("div", { class: "legend" }, OUTCOMES.map((o) => h("span", {}, h("span", { class: `swatch sw-${o}` }), o.replace("_", " ")))),
    svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", "aria-label": "Calls per hour by outcome" }, bars));
}

async function callsPage(main, mine) {
  const q = new URLSearchParams(location.hash.split("?")[1] || "");
  const limit = 50;
  const offset = Number(q.get("offset") || 0);
  const params = new URLSearchParams({ limit, offset });
  for (const k of ["extension", "outcome", "direction"]) if (q.get(k)) params.set(k, q.get(k));
  if (mine) params.set("extension", session.extension);
  // Dates are whole local days; `to` is exclusive in the API, so the last
  // day chosen ends at the next midnight.
  if (q.get("from")) params.set("from", String(new Date(`${q.get("from")}T00:00`).getTime()));
  if (q.get("to")) {
    const end = new Date(`${q.get("to")}T00:00`);
    end.setDate(end.getDate() + 1);
    params.set("to", String(end.getTime()));
  }
  // The chart counts up to 500 of the calls the filters match, the table
  // shows one page of them.
  const chartParams = new URLSearchParams(params);
  chartParams.set("limit", "500");
  chartParams.set("offset", "0");
  const [page, stats, recent] = await Promise.all([
    api("GET", `${T()}/calls?${params}`),
    api("GET", `${T()}/stats`).catch(() => null),
    api("GET", `${T()}/calls?${chartParams}`)]);
  const base = mine ? "#/me/calls" : "#/calls";
  const filters = form("Filters", [h("div", { class: "row" },
    mine ? null : field("extension", "Extension", "text", { value: q.get("extension") || "" }),
    field("outcome", "Outcome", "select", { options: [["", "any"], ...OUTCOMES.map((o) => [o, o.replace("_", " ")])], value: q.get("outcome") || "" }),
    field("direction", "Direction", "select", { options: [["", "any"], ["internal", "internal"], ["inbound", "inbound"], ["outbound", "outbound"]], value: q.get("direction") || "" }),
    field("from", "From", "date", { value: q.get("from") || "" }),
    field("to", "To", "date", { value: q.get("to") || "" }))],
  "Apply", async (v) => {
    location.hash = `${base}?${new URLSearchParams(nonEmpty(v))}`;
  });
  const rows = page.items.map((c) => h("tr", {},
    h("td", {}, fmtTime(c.started_at)), h("td", {}, c.caller), h("td", {}, c.callee),
    h("td", {}, c.direction), h("td", {}, c.outcome.replace("_", " ")),
    h("td", {}, c.answered_by || ""),
    h("td", {}, c.answered_at && c.ended_at ? `${Math.round((c.ended_at - c.answered_at) / 1000)} s` : ""),
    h("td", {}, c.annotations || "")));
  const pager = h("div", { class: "actions" },
    h("button", { type: "button", class: "secondary", disabled: offset === 0, onclick: () => { q.set("offset", Math.max(0, offset - limit)); location.hash = `${base}?${q}`; } }, "Newer"),
    h("span", {}, ` ${page.total ? offset + 1 : 0}–${offset + page.items.length} of ${page.total} `),
    h("button", { type: "button", class: "secondary", disabled: offset + limit >= page.total, onclick: () => { q.set("offset", offset + limit); location.hash = `${base}?${q}`; } }, "Older"));
  put(main, h("h1", {}, mine ? "My calls" : "Call history"),
    stats ? h("p", {}, `${stats.total} calls, ${stats.talk_time_s} s talk time; ` + Object.entries(stats.by_outcome).map(([k, n]) => `${n} ${k.replace("_", " ")}`).join(", ")) : null,
    filters, callsChart(recent.items), table(["Started", "Caller", "Callee", "Direction", "Outcome", "Answered by", "Talk", "Notes"], rows, "No calls match."), pager);
}

function liveTables(snapshot, own) {
  const calls = table(["Call", "Parties", "Talking for"], (snapshot.live_calls || []).map((c) => h("tr", { "data-call": c.call_id },
    h("td", {}, c.call_id), h("td", {}, c.parties.join(" ↔ ")), h("td", {}, `${c.duration_s} s`))), "No calls in progress.");
  const pres = table(["Extension", "Status", "Registered", "On a call", "Hotdesk", "Groups"], (snapshot.presence || []).map((p) => h("tr", {},
    h("td", {}, p.extension), h("td", {}, p.status.replace("_", " ")), h("td", {}, p.registered ? "yes" : "no"),
    h("td", {}, String(p.active_calls)), h("td", {}, p.hotdesk_devices.join(", ")),
    h("td", {}, p.memberships.map((m) => `${m.name}${m.enabled ? "" : " (off)"}`).join(", ")))));
  return [h("h2", {}, own ? "My calls in progress" : "Calls in progress"), h("div", { id: "live-calls", "aria-live": "polite" }, calls), h("h2", {}, own ? "My presence" : "Presence"), pres];
}

async function livePage(main) {
  const box = h("div", {}, h("p", { class: "hint" }, "Waiting for the first update…"));
  put(main, h("h1", {}, "Live calls and presence"), h("p", { class: "hint" }, "Updates by themselves; calls on this router node."), box);
  const draw = (s) => box.replaceChildren(...liveTables(s, false));
  if (lastSnapshot) draw(lastSnapshot);
  listen(draw);
}

async function auditPage(main) {
  const q = new URLSearchParams(location.hash.split("?")[1] || "");
  const offset = Number(q.get("offset") || 0);
  const page = await api("GET", `${T()}/audit?limit=50&offset=${offset}`);
  put(main, h("h1", {}, "Audit log"),
    table(["When", "Who", "Request", "Status"], page.items.map((a) => h("tr", {},
      h("td", {}, fmtTime(a.at)), h("td", {}, a.actor), h("td", {}, `${a.method} ${a.path}`), h("td", {}, String(a.status)))), "No changes recorded."),
    h("div", { class: "actions" },
      h("button", { type: "button", class: "secondary", disabled: offset === 0, onclick: () => { location.hash = `#/audit?offset=${Math.max(0, offset - 50)}`; } }, "Newer"),
      h("button", { type: "button", class: "secondary", disabled: page.items.length < 50, onclick: () => { location.hash = `#/audit?offset=${offset + 50}`; } }, "Older")));
}

async function tokensPage(main) {
  const [tokens, emps] = await Promise.all([api("GET", `${T()}/api-tokens`), api("GET", `${T()}/employees`)]);
  const who = (id) => { const e = emps.items.find((x) => x.id === id); return e ? `${e.name} (${e.extension})` : `#${id}`; };
  const secret = h("div", { "aria-live": "polite" });
  put(main, h("h1", {}, "API tokens"),
    table(["Label", "Whose", "Kind", "Created", "Expires", "State", ""], tokens.items.map((t) => h("tr", {},
      h("td", {}, t.label), h("td", {}, who(t.employee_id)), h("td", {}, t.kind), h("td", {}, fmtTime(t.created_at)),
      h("td", {}, t.expires_at ? fmtTime(t.expires_at) : "until revoked"),
      h("td", {}, t.revoked_at ? `revoked ${fmtTime(t.revoked_at)}` : badge(true, "active", "")),
      h("td", {}, t.revoked_at ? null : h("button", { type: "button", class: "danger", onclick: () => confirmAnd(`Revoke token “${t.label}”?`, () => guarded(async () => { await api("DELETE", `${T()}/api-tokens/${t.id}`); route(); })) }, "Revoke"))))),
    secret,
    form("New API token", [h("div", { class: "row" },
      field("label", "What it is for", "text"),
      field("employee_id", "Whose", "select", { options: emps.items.map((e) => [e.id, `${e.name} (${e.extension})`]), value: session.employee_id }),
      field("expires_in_days", "Expires in days", "number", { hint: "blank: until revoked", min: 1 }))],
    "Create token", async (v) => {
      const body = { label: v.label, employee_id: Number(v.employee_id) };
      if (v.expires_in_days) body.expires_in_days = v.expires_in_days;
      const t = await api("POST", `${T()}/api-tokens`, body);
      secret.replaceChildren(h("section", { class: "card" }, h("h2", {}, "Copy the token now"), h("p", {}, "It is shown this once."), h("div", { class: "secret" }, t.token)));
    }));
}

// ---- employee pages ----------------------------------------------------

// Employee pages are about the person logged in; an administrator may open
// them for anyone (`#/me/diverts?ext=2003`, linked from Employees).
function subject() {
  const ext = new URLSearchParams(location.hash.split("?")[1] || "").get("ext");
  return isAdmin() && ext ? ext : session.extension;
}
const me = () => `${T()}/extensions/${encodeURIComponent(subject())}`;
const mine = (title) => (subject() === session.extension ? `My ${title}` : `${title[0].toUpperCase()}${title.slice(1)} of ${subject()}`);
const limitedRole = () => ["user", "restricted_user"].includes(session.role);

// Seed 002: users and restricted users see these settings but only
// administrators and department heads change them.
function readOnlyFor(limited, f) {
  if (!limited) return f;
  f.querySelectorAll("input, select, textarea, button").forEach((el) => (el.disabled = true));
  f.prepend(h("p", { class: "hint" }, "Your role may see these settings but not change them; ask an administrator."));
  return f;
}

// A divert target: off, voicemail, an extension or a number. Users and
// restricted users may only forward to their own mobile (seed 002), so
// that is all they are offered; the API enforces it either way.
function divertField(name, label, value, mobile) {
  const limited = limitedRole();
  const kind = typeof value === "object" && value ? (value.extension ? "extension" : "number") : value || "off";
  const options = limited
    ? [["off", "Off"], ...(mobile ? [["number", `My mobile (${mobile})`]] : [])]
    : [["off", "Off"], ["voicemail", "Voicemail"], ["extension", "An extension"], ["number", "A number"]];
  const wrap = field(name, label, "select", { options, value: kind });
  const target = h("input", { type: "text", name: `${name}.target`, "aria-label": `${label}: extension or number`, value: typeof value === "object" && value ? value.extension || value.number : "", placeholder: "2002 or 447700900123" });
  const sel = wrap.querySelector("select");
  const sync = () => {
    if (limited) { target.value = mobile || ""; target.hidden = true; return; }
    target.hidden = !(sel.value === "extension" || sel.value === "number");
  };
  sel.addEventListener("change", sync);
  sync();
  wrap.insertBefore(target, wrap.querySelector(".hint") || wrap.querySelector(".error"));
  return wrap;
}

function divertValue(v, name) {
  const k = v[name];
  if (k === "extension") return { extension: v[`${name}.target`] };
  if (k === "number") return { number: v[`${name}.target`] };
  return k;
}

async function divertsPage(main) {
  const [cur, people] = await Promise.all([
    api("GET", `${me()}/diverts`).then((x) => x.settings || {}),
    isAdmin() ? api("GET", `${T()}/employees`).then((x) => x.items) : api("GET", `${T()}/employees/${session.employee_id}`).then((x) => [x])]);
  const limited = limitedRole();
  const self = people.find((e) => e.extension === subject()) || {};
  const m = self.mobile;
  put(main, h("h1", {}, mine("diverts")),
    h("p", {}, limited
      ? (m ? `Calls to your extension can be diverted to your mobile (${m}).` : "Your administrator has not recorded a mobile number for you, so there is nothing to divert to yet.")
      : "Calls to your extension can be diverted to voicemail, a colleague or a number (your own mobile, or numbers your company allows)."),
    form(null, [
      divertField("always", "Divert always: every call goes straight to the target", cur.always, m),
      divertField("busy", "On busy: when you are already on the phone or have set Do Not Disturb", cur.busy, m),
      divertField("no_answer", "On no answer: when you do not answer in time", cur.no_answer, m),
      field("no_answer_ring_s", "Ring for (seconds) before the no-answer divert", "number", { value: cur.no_answer_ring_s ?? 300, min: 1 }),
      divertField("unreachable", "When unreachable: your phone is not registered or does not respond", cur.unreachable, m),
    ], "Save diverts", async (v) => {
      const body = { always: divertValue(v, "always"), busy: divertValue(v, "busy"), no_answer: divertValue(v, "no_answer"), unreachable: divertValue(v, "unreachable") };
      if (v.no_answer_ring_s !== null) body.no_answer_ring_s = v.no_answer_ring_s;
      await api("PUT", `${me()}/diverts`, body);
      toast("Diverts saved");
    }));
}

const DAYS = [["mon", "Monday"], ["tue", "Tuesday"], ["wed", "Wednesday"], ["thu", "Thursday"], ["fri", "Friday"], ["sat", "Saturday"], ["sun", "Sunday"]];
const REDIRECTS = [["drop", "Hang up"], ["voicemail", "Voicemail"], ["department", "My department"], ["employee", "A colleague"]];

function redirectField(name, label, value) {
  const kind = typeof value === "object" && value ? "employee" : value || "voicemail";
  const wrap = field(name, label, "select", { options: REDIRECTS, value: kind });
  const target = h("input", { type: "text", name: `${name}.employee`, "aria-label": `${label}: colleague's extension`, value: typeof value === "object" && value ? value.employee : "", placeholder: "extension" });
  const sel = wrap.querySelector("select");
  const sync = () => { target.hidden = sel.value !== "employee"; };
  sel.addEventListener("change", sync);
  sync();
  wrap.insertBefore(target, wrap.querySelector(".error"));
  return wrap;
}

const redirectValue = (v, name) => (v[name] === "employee" ? { employee: v[`${name}.employee`] } : v[name]);

async function schedulePage(main) {
  const cur = (await api("GET", `${me()}/schedule`)).settings || {};
  const week = cur.week || {};
  const absences = (cur.absences || []).map((a) => ({ ...a }));
  const grid = h("table", { class: "week", "data-field": "week" },
    h("caption", { class: "hint" }, "Working hours (your company's time zone). Leave a day empty for a day off; a second interval is for a split day."),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Day"), h("th", { scope: "col" }, "From"), h("th", { scope: "col" }, "To"), h("th", { scope: "col" }, "From"), h("th", { scope: "col" }, "To"))),
    h("tbody", {}, DAYS.map(([d, label]) => {
      const iv = week[d] || [];
      const cell = (j, k) => h("td", {}, h("input", { type: "time", name: `week.${d}.${j}.${k}`, "aria-label": `${label} ${k === 0 ? "from" : "to"} ${j + 1}`, value: (iv[j] || [])[k] || "" }));
      return h("tr", {}, h("th", { scope: "row" }, label), cell(0, 0), cell(0, 1), cell(1, 0), cell(1, 1));
    })));
  const absList = h("div", {});
  const drawAbs = () => absList.replaceChildren(table(["Kind", "From", "To", "Calls go to", ""], absences.map((a, i) => h("tr", {},
    h("td", {}, a.kind.replace("_", " ")), h("td", {}, a.from), h("td", {}, a.to),
    h("td", {}, typeof a.redirect === "object" && a.redirect ? `colleague ${a.redirect.employee}` : a.redirect || ""),
    h("td", {}, h("button", { type: "button", class: "danger", onclick: () => { absences.splice(i, 1); drawAbs(); } }, "Remove")))), "No absences."));
  drawAbs();
  const collect = (v) => {
    const w = {};
    for (const [d] of DAYS) {
      const iv = [];
      for (const j of [0, 1]) {
        const a = v[`week.${d}.${j}.0`], b = v[`week.${d}.${j}.1`];
        if (a || b) iv.push([a, b]);
      }
      if (iv.length) w[d] = iv;
    }
    const body = { reception: v.reception, week: w, no_answer: redirectValue(v, "no_answer"), out_of_hours: redirectValue(v, "out_of_hours"), absences };
    if (v.mobile_delay_s !== null) body.mobile_delay_s = v.mobile_delay_s;
    if (v.ring_s !== null) body.ring_s = v.ring_s;
    return body;
  };
  const main_form = readOnlyFor(limitedRole(), form(null, [
    field("reception", "Where calls ring", "select", { options: [["desk", "My desk phone"], ["mobile", "My mobile"], ["all", "Desk and mobile"]], value: cur.reception || "desk" }),
    h("div", { class: "row" },
      field("mobile_delay_s", "Mobile joins after (s)", "number", { value: cur.mobile_delay_s ?? "", min: 0 }),
      field("ring_s", "Ring for (s)", "number", { value: cur.ring_s ?? "", min: 1 })),
    redirectField("no_answer", "When nobody answers", cur.no_answer),
    grid,
    redirectField("out_of_hours", "Outside working hours", cur.out_of_hours),
    h("h2", {}, "Absences"), h("div", { "data-field": "absences" }, absList, h("span", { class: "error" })),
  ], "Save schedule", async (v) => {
    await api("PUT", `${me()}/schedule`, collect(v));
    toast("Schedule saved");
  }));
  const addAbs = form("Add an absence", [h("div", { class: "row" },
    field("kind", "Kind", "select", { options: [["vacation", "Vacation"], ["sick_leave", "Sick leave"], ["other", "Other"]] }),
    field("from", "First day", "date"), field("to", "Last day", "date")),
  redirectField("redirect", "Calls go to", "voicemail")], "Add (then save the schedule)", async (v) => {
    if (!v.from || !v.to) throw new ApiError(400, "both days are needed", v.from ? "to" : "from");
    absences.push({ kind: v.kind, from: v.from, to: v.to, redirect: redirectValue(v, "redirect") });
    drawAbs();
  });
  put(main, h("h1", {}, mine("reception and schedule")), main_form, limitedRole() ? null : addAbs);
}

async function delegationPage(main) {
  const cur = (await api("GET", `${me()}/delegation`)).settings || {};
  put(main, h("h1", {}, mine("delegation")),
    h("p", {}, "Calls for you ring your delegates (secretaries) instead; they see the caller and that the call is for you. Up to 5 delegates."),
    readOnlyFor(limitedRole(), form(null, [
      field("delegates", "Delegates (extensions, comma separated)", "text", { value: (cur.delegates || []).join(", ") }),
      field("mode", "How they ring", "select", { options: [["ring_all", "All at once"], ["sequential", "One after another"]], value: cur.mode || "ring_all" }),
      h("div", { class: "row" },
        field("total_ring_s", "Ring for in all (s)", "number", { value: cur.total_ring_s ?? 30 }),
        field("per_user_ring_s", "Per delegate (s, one after another)", "number", { value: cur.per_user_ring_s ?? 15 })),
    ], "Save delegation", async (v) => {
      const delegates = v.delegates.split(",").map((x) => x.trim()).filter(Boolean);
      await api("PUT", `${me()}/delegation`, delegates.length ? { delegates, mode: v.mode, total_ring_s: v.total_ring_s, per_user_ring_s: v.per_user_ring_s } : {});
      toast(delegates.length ? "Delegation saved" : "Delegation turned off");
    })));
}

async function hotdeskPage(main) {
  const p = await api("GET", `${T()}/presence/${session.extension}`);
  put(main, h("h1", {}, "Hotdesk"),
    h("p", {}, "Log in at a shared desk phone: it rings for you and calls from it go out as you. You are logged in at one desk at a time. On the phone itself: dial *88, then *89 to log out."),
    h("h2", {}, "Where I am logged in"),
    table(["Desk phone", ""], p.hotdesk_devices.map((d) => h("tr", {}, h("td", {}, d),
      h("td", {}, h("button", { type: "button", class: "danger", onclick: () => guarded(async () => { await api("DELETE", `${T()}/hotdesk/${d}`); toast(`Logged out of ${d}`); route(); }) }, `Log out of ${d}`)))), "Not logged in at any desk phone."),
    form("Activate a desk phone", [field("device", "Desk phone extension", "text", { hint: "the number on the desk phone, e.g. 5401" })],
      "Activate", async (v) => {
        await api("PUT", `${T()}/hotdesk/${encodeURIComponent(v.device)}`, { extension: session.extension });
        toast(`Logged in at ${v.device}`);
        route();
      }));
  if (isAdmin()) {
    const logins = await api("GET", `${T()}/hotdesk`);
    put(main, h("h2", {}, "All hotdesk logins"), table(["Desk phone", "Employee"], logins.items.map((l) => h("tr", {}, h("td", {}, l.device), h("td", {}, l.extension)))));
  }
}

async function statusPage(main) {
  const p = await api("GET", `${T()}/presence/${session.extension}`);
  const live = h("div", {});
  put(main, h("h1", {}, "My status"),
    form(null, [
      h("fieldset", { "data-field": "status" }, h("legend", {}, "Status"),
        [["available", "Available"], ["dnd", "Do not disturb (no calls)"], ["logged_out", "Logged off (no calls in or out)"]].map(([v, t]) => {
          const id = idFor("status");
          return h("div", { class: "field inline" }, h("input", { type: "radio", id, name: "status", value: v, checked: p.status === v }), h("label", { for: id }, t));
        }), h("span", { class: "error" })),
    ], "Set status", async (_v, f) => {
      const chosen = f.querySelector("input[name=status]:checked");
      await api("PUT", `${T()}/presence/${session.extension}/status`, { status: chosen ? chosen.value : "available" });
      toast("Status saved");
      route();
    }),
    h("h2", {}, "Hunt group calls"),
    table(["Group", "Offered to me", ""], p.memberships.map((m) => h("tr", {}, h("td", {}, `${m.name} (${m.group})`), h("td", {}, badge(m.enabled, "yes", "no")),
      h("td", {}, h("button", { type: "button", class: "secondary", onclick: () => guarded(async () => { await api("PUT", `${T()}/presence/${session.extension}/memberships/${m.group}`, { enabled: !m.enabled }); route(); }) }, m.enabled ? "Stop group calls" : "Take group calls")))), "Not a member of any hunt group."),
    live);
  listen((s) => live.replaceChildren(...liveTables(s, true)));
}

// ---- routing, session, live updates -----------------------------------

const PAGES = {
  "/company": { title: "Company settings", admin: true, render: companyPage },
  "/employees": { title: "Employees", admin: true, render: employeesPage },
  "/devices": { title: "Devices", admin: true, render: devicesPage },
  "/groups": { title: "Hunt groups", admin: true, render: groupsPage },
  "/plugins": { title: "Plugins", admin: true, render: pluginsPage },
  "/calls": { title: "Call history", admin: true, render: (m) => callsPage(m, false) },
  "/live": { title: "Live calls", admin: true, render: livePage },
  "/audit": { title: "Audit log", admin: true, render: auditPage },
  "/tokens": { title: "API tokens", admin: true, render: tokensPage },
  "/me/diverts": { title: "My diverts", render: divertsPage },
  "/me/schedule": { title: "My schedule", render: schedulePage },
  "/me/delegation": { title: "My delegation", render: delegationPage },
  "/me/hotdesk": { title: "Hotdesk", render: hotdeskPage },
  "/me/status": { title: "My status", render: statusPage },
  "/me/calls": { title: "My calls", render: (m) => callsPage(m, true) },
};

function drawNav(current) {
  const nav = document.getElementById("nav");
  const link = (path) => h("a", { href: `#${path}`, "aria-current": path === current ? "page" : false }, PAGES[path].title);
  const mine = Object.keys(PAGES).filter((p) => !PAGES[p].admin);
  const admin = Object.keys(PAGES).filter((p) => PAGES[p].admin);
  const items = [];
  if (isAdmin()) items.push(h("h2", {}, "Company"), ...admin.map(link));
  items.push(h("h2", {}, "Me"), ...mine.map(link));
  nav.replaceChildren(...items);
}

let generation = 0;

async function route() {
  if (!session) return;
  listeners.clear();
  // A slower page that finishes after the person moved on must not draw
  // into the new one: each route renders into its own element first.
  const turn = ++generation;
  const path = (location.hash.slice(1) || "").split("?")[0] || (isAdmin() ? "/employees" : "/me/diverts");
  const page = PAGES[path];
  const main = document.getElementById("main");
  drawNav(path);
  main.replaceChildren();
  if (!page) {
    put(main, h("h1", {}, "Not found"), h("p", {}, "There is no such page."));
    return;
  }
  if (page.admin && !isAdmin()) {
    // The API would refuse every request of the page anyway.
    put(main, h("h1", {}, "Not allowed"), h("p", { role: "alert" }, "This page is for administrators."));
    document.title = "Not allowed — Switchboard";
    return;
  }
  document.title = `${page.title} — Switchboard`;
  const body = h("div", {});
  try {
    await page.render(body);
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) put(body, h("p", { class: "form-error", role: "alert" }, e.message));
  }
  if (turn !== generation || !session) return;
  main.replaceChildren(...body.childNodes);
  main.focus();
}

function listen(fn) {
  const turn = generation;
  listeners.add((snap) => { if (turn === generation) fn(snap); });
  if (lastSnapshot) fn(lastSnapshot);
}

let retryMs = 1000;

function startEvents() {
  if (events) events.close();
  events = new EventSource("/console/events");
  events.addEventListener("snapshot", (ev) => {
    retryMs = 1000;
    try { lastSnapshot = JSON.parse(ev.data); } catch { return; }
    for (const fn of listeners) fn(lastSnapshot);
  });
  // The browser gives up on a refused stream (503 when the node is full,
  // 401 when the session ended): try again later, while logged in.
  events.addEventListener("error", () => {
    if (!events || events.readyState !== EventSource.CLOSED) return;
    setTimeout(async () => {
      if (!session) return;
      const resp = await fetch("/console/session", { credentials: "same-origin" }).catch(() => null);
      if (resp && resp.ok) startEvents();
      else if (resp && resp.status === 401) { session = null; showLogin("Your session has ended; please log in again."); }
    }, retryMs);
    retryMs = Math.min(retryMs * 2, 60000);
  });
}

function signedIn(s) {
  session = s;
  document.getElementById("who").textContent = `${s.name} (${s.extension}) · ${s.domain}`;
  document.getElementById("logout").hidden = false;
  startEvents();
  route();
}

function showLogin(message) {
  if (events) { events.close(); events = null; }
  lastSnapshot = null;
  document.getElementById("who").textContent = "";
  document.getElementById("logout").hidden = true;
  document.getElementById("nav").replaceChildren();
  const main = document.getElementById("main");
  const f = form("Log in", [
    field("domain", "Company domain", "text", { placeholder: "demo.switchboard.test", autocomplete: "organization" }),
    field("login", "Login", "text", { autocomplete: "username" }),
    field("password", "Password", "password", { autocomplete: "current-password" }),
  ], "Log in", async (v) => {
    const resp = await fetch("/console/session", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(v), credentials: "same-origin" });
    const data = await resp.json().catch(() => ({}));
    if (!resp.ok) throw new ApiError(resp.status, data.error || "login failed", data.field === "password" ? "password" : data.field);
    signedIn(data);
  });
  f.classList.add("login");
  main.replaceChildren(...(message ? [h("p", { role: "alert" }, message)] : []), f);
  document.title = "Log in — Switchboard";
  const first = f.querySelector("input");
  if (first) first.focus();
}

document.getElementById("logout").addEventListener("click", async () => {
  await fetch("/console/session", { method: "DELETE", headers: { "X-CSRF-Token": session ? session.csrf : "" }, credentials: "same-origin" }).catch(() => {});
  session = null;
  location.hash = "";
  showLogin("Logged out.");
});

window.addEventListener("hashchange", route);

(async () => {
  const resp = await fetch("/console/session", { credentials: "same-origin" }).catch(() => null);
  if (resp && resp.ok) signedIn(await resp.json());
  else showLogin();
})();
