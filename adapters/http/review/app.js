// Verdict review queue: a small page over the JSON API (/v1/reviews). No framework, no
// CDN. The API key stays in this tab's sessionStorage and goes out only as a bearer token
// to this origin.
"use strict";

const $ = (id) => document.getElementById(id);
let items = [];
let current = null;

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("key").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

function say(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

async function api(method, path, body) {
  const res = await fetch(path, { method, headers: headers(), body: body ? JSON.stringify(body) : undefined });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    throw new Error((data.title || res.status) + ": " + (data.detail || "request failed"));
  }
  return data;
}

function age(iso) {
  const mins = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 60000));
  if (mins < 60) return mins + " min";
  if (mins < 48 * 60) return Math.round(mins / 60) + " h";
  return Math.round(mins / 1440) + " d";
}

// holder is who holds an item now: a claim past its claimed_until holds nothing (anyone
// may claim the item), so it is not shown as if it did.
function holder(it) {
  if (!it.claimed_by) return "—";
  if (Date.parse(it.claimed_until) > Date.now()) return it.claimed_by;
  return "— (" + it.claimed_by + "'s claim lapsed)";
}

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

async function fetchQueue() {
  const q = $("unmask").checked ? "?unmask=true" : "";
  const data = await api("GET", "/v1/reviews" + q);
  items = data.reviews || [];
  render();
}

async function load() {
  sessionStorage.setItem("verdict.review.key", $("key").value);
  try {
    await fetchQueue();
    say(items.length + " open item(s)" + ($("unmask").checked ? " (personal data shown; this view was audited)" : ""));
  } catch (e) {
    say(e.message, true);
  }
}

// failed shows an error of a claim or a decision over the queue as it is now: the item may
// have been taken, closed, or changed (new reasons, claim released) since it was shown.
async function failed(e) {
  try { await fetchQueue(); } catch (_) { /* the first error is the one to show */ }
  say(e.message, true);
}

function render() {
  const body = $("queue").querySelector("tbody");
  body.textContent = "";
  $("queue").hidden = items.length === 0;
  $("empty").hidden = items.length !== 0;
  for (const it of items) {
    const tr = document.createElement("tr");
    tr.dataset.id = it.id;
    if (current && current.id === it.id) tr.className = "selected";
    cell(tr, age(it.created_at));
    cell(tr, it.kind + (it.action ? " · " + it.action : ""));
    cell(tr, it.user_id);
    cell(tr, it.status);
    cell(tr, String(it.score), it.score >= 50 ? "score-high" : "");
    cell(tr, (it.reason_codes || []).join(", "));
    cell(tr, holder(it));
    const td = cell(tr, "");
    const open = document.createElement("button");
    open.textContent = "Open";
    open.className = "open";
    open.addEventListener("click", () => show(it));
    td.appendChild(open);
    body.appendChild(tr);
  }
  if (current) {
    const fresh = items.find((x) => x.id === current.id);
    if (fresh) show(fresh); else $("detail").hidden = true;
  }
}

function show(it) {
  current = it;
  for (const tr of $("queue").querySelectorAll("tbody tr")) tr.className = tr.dataset.id === it.id ? "selected" : "";
  $("detail").hidden = false;
  $("d-id").textContent = it.id;
  const dl = $("d-facts");
  dl.textContent = "";
  const facts = { kind: it.kind, user: it.user_id, status: it.status, score: it.score, created: it.created_at, claimed_by: holder(it) };
  if (it.subject) facts.subject = JSON.stringify(it.subject);
  if (it.context) facts.context = JSON.stringify(it.context);
  for (const [k, v] of Object.entries(facts)) {
    const dt = document.createElement("dt"); dt.textContent = k;
    const dd = document.createElement("dd"); dd.textContent = String(v);
    dl.append(dt, dd);
  }
  const ul = $("d-reasons");
  ul.textContent = "";
  for (const code of it.reason_codes || []) {
    const li = document.createElement("li"); li.textContent = code; ul.appendChild(li);
  }
  $("d-signals").textContent = it.signals ? JSON.stringify(it.signals, null, 2) : "(a verification session: the provider's outcome is above)";
  const sel = $("outcome");
  sel.textContent = "";
  const outcomes = it.kind === "verification" ? ["approved", "rejected", "needs_resubmission"] : ["approve", "block"];
  for (const o of outcomes) {
    const opt = document.createElement("option"); opt.value = o; opt.textContent = o; sel.appendChild(opt);
  }
}

async function claim() {
  if (!current) return;
  try {
    const r = await api("POST", "/v1/reviews/" + encodeURIComponent(current.id) + "/claim");
    await load();
    say("Claimed " + r.id + " until " + r.claimed_until);
  } catch (e) {
    await failed(e);
  }
}

async function decide(ev) {
  ev.preventDefault();
  if (!current) return;
  try {
    const body = { outcome: $("outcome").value, reason: $("reason").value.trim() };
    const note = $("note").value.trim();
    if (note) body.note = note;
    const r = await api("POST", "/v1/reviews/" + encodeURIComponent(current.id) + "/decision", body);
    current = null;
    $("detail").hidden = true;
    $("reason").value = "";
    $("note").value = "";
    await load();
    say("Decided " + r.id + ": " + r.outcome + " (" + r.reason + ")");
  } catch (e) {
    await failed(e);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("key").value = sessionStorage.getItem("verdict.review.key") || "";
  $("auth").addEventListener("submit", (e) => { e.preventDefault(); load(); });
  $("claim").addEventListener("click", claim);
  $("decide").addEventListener("submit", decide);
});
