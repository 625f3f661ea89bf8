// The HQ dashboard: sign-in, fleet ranked by trouble, sales, and per store reconciliation,
// stock and top products. Served as a file: the page's CSP allows no inline script.
"use strict";
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const num = (n) => Number(n || 0).toLocaleString("en-US");
const SILENT_MS = 120000;
const day = (offset) => new Date(Date.now() + offset * 86400000).toISOString().slice(0, 10);
function ago(ms, now) {
  if (!ms) return "never";
  const s = Math.round((now - ms) / 1000);
  return s < 90 ? s + " s ago" : s < 5400 ? Math.round(s / 60) + " min ago" : Math.round(s / 3600) + " h ago";
}
// The sign-in lives in this tab only (sessionStorage), and for 8 hours at most.
const token = () => sessionStorage.getItem("hqToken");
class SignedOut extends Error {}
async function get(path) {
  if (!token()) throw new SignedOut("sign in");
  const r = await fetch(path, { headers: { Authorization: "Bearer " + token() } });
  let body = null;
  try { body = await r.json(); } catch { /* not JSON */ }
  if (r.status === 401) { sessionStorage.removeItem("hqToken"); throw new SignedOut("signed out"); }
  if (!r.ok) throw new Error(body?.message || r.statusText);
  return body;
}
// Store-local days may run ahead of UTC: ask one day past today.
const range = () => `from=${day(-13)}&to=${day(1)}`;
let fleet = null;

/** What is wrong with a store, in words, and how badly (higher first). */
function trouble(s, now) {
  const silent = !s.last_upload_ms || now - s.last_upload_ms > SILENT_MS;
  const problems = [];
  let score = 0;
  if (!s.last_upload_ms) { problems.push("never seen"); score += 1e12; }
  else if (silent) { problems.push(`offline for ${ago(s.last_upload_ms, now).replace(" ago", "")}`); score += 1e9 + (now - s.last_upload_ms); }
  if (s.backlog > 0) { problems.push(`${num(s.backlog)} sales and changes waiting`); score += s.backlog; }
  if (s.lag_ms > 60000) { problems.push(`uploads ${Math.round(s.lag_ms / 60000)} min behind`); score += s.lag_ms / 1000; }
  if (!s.leader && s.last_upload_ms) { problems.push("no uploading till"); score += 1e6; }
  // A refused credential after the store's last upload: the store cannot reach HQ until
  // it has a new one.
  if (s.credential_refused_ms && s.credential_refused_ms >= (s.last_upload_ms || 0)) {
    problems.push(`credential refused ${ago(s.credential_refused_ms, now)}`); score += 1e10;
  }
  const away = (s.till_states || []).filter((t) => t.link === "silent" || t.link === "unreachable");
  if (away.length && !silent) {
    problems.push(`${away.map((t) => `till ${t.terminal}`).join(", ")} cut off from the leader`); score += 1e8;
  }
  if (s.quarantined > 0) { problems.push(`${num(s.quarantined)} changes a till could not apply`); score += 1e7 + s.quarantined; }
  return { score, text: problems.length ? problems.join("; ") : "OK" };
}

function fleetRow(s, now) {
  const t = trouble(s, now);
  return `<tr><td><a href="#store=${encodeURIComponent(s.store_id)}">${esc(s.store_id)}</a> ${esc(s.name)}</td>` +
    `<td class="${t.score ? "trouble" : "fine"}">${esc(t.text)}</td>` +
    `<td>${ago(s.last_upload_ms, now)}</td><td>${num(s.backlog)}</td><td>${num(s.quarantined ?? 0)}</td>` +
    `<td>${s.credential_refused ? `${num(s.credential_refused)}, last ${ago(s.credential_refused_ms, now)}` : "no"}</td>` +
    `<td>${tillsCell(s)}</td><td>${(s.lag_ms / 1000).toFixed(1)} s</td></tr>`;
}

/** How many tills a store has, and how many its leader cannot hear. */
function tillsCell(s) {
  const states = s.till_states || [];
  if (!states.length) return `${s.tills_reported.length || s.tills_seen.length}`;
  const away = states.filter((t) => t.link === "silent" || t.link === "unreachable").length;
  return away ? `${states.length} (${away} cut off)` : `${states.length}`;
}

function chart(rows) {
  const byDay = new Map();
  for (let i = -13; i <= 0; i++) byDay.set(day(i), 0);
  for (const r of rows) byDay.set(r.period, (byDay.get(r.period) || 0) + r.net);
  const days = [...byDay.keys()].sort().slice(-14);
  const max = Math.max(1, ...days.map((d) => byDay.get(d)));
  const w = 720 / days.length;
  $("sales-chart").innerHTML = days.map((d, i) => {
    // Proportional to the day's net; a day without sales has no bar.
    const h = Math.round(140 * Math.max(0, byDay.get(d)) / max);
    return `<rect class="bar" data-net="${byDay.get(d)}" x="${i * w + 4}" y="${150 - h}" width="${w - 8}" height="${h}"><title>${d}: ${num(byDay.get(d))}</title></rect>` +
      `<text x="${i * w + 4}" y="166">${d.slice(5)}</text>`;
  }).join("");
}

async function refreshFleet() {
  fleet = await get("/api/v1/reports/fleet");
  const ranked = fleet.stores.slice().sort((a, b) => trouble(b, fleet.now_ms).score - trouble(a, fleet.now_ms).score);
  $("fleet").tBodies[0].innerHTML = ranked.map((s) => fleetRow(s, fleet.now_ms)).join("");
  const sales = await get(`/api/v1/reports/sales?${range()}`);
  chart(sales.rows);
  const max = Math.max(1, ...sales.rows.map((r) => r.net));
  $("sales").tBodies[0].innerHTML = sales.rows.slice().reverse().map((r) =>
    `<tr><td>${esc(r.store)}</td><td>${r.period}</td><td>${num(r.transactions)}</td><td>${num(r.gross)}</td>` +
    `<td>${num((r.voided_amount || 0) + (r.refunded_amount || 0))}</td><td>${num(r.net)}</td>` +
    `<td><span class="hbar" data-w="${Math.round(160 * Math.max(0, r.net) / max)}"></span></td></tr>`).join("");
  // Widths through the CSSOM: the CSP allows no inline style attributes.
  for (const b of document.querySelectorAll(".hbar[data-w]")) b.style.width = `${b.dataset.w}px`;
}

let shownStore = null;
async function refreshStore(id) {
  shownStore = id;
  const q = encodeURIComponent(id);
  // Fresh on every refresh: the tills' states change by the second.
  fleet = await get("/api/v1/reports/fleet");
  const s = fleet.stores.find((x) => x.store_id === id);
  $("store-title").textContent = s ? `Store ${s.store_id} ${s.name}` : `Store ${id}`;
  if (s) {
    const rows = [["Leader", s.leader ? `till ${s.leader} (term ${s.term})` : "-"],
      ["Tills reported by the leader", s.tills_reported.join(", ") || "-"], ["Tills with sales at HQ", s.tills_seen.join(", ") || "-"],
      ["Last heartbeat", ago(s.last_upload_ms, fleet.now_ms)], ["Upload lag", (s.lag_ms / 1000).toFixed(1) + " s"],
      ["Backlog on the store's leader", num(s.backlog)], ["Events at HQ", num(s.events)], ["Not yet in reports", num(s.unprojected)]];
    $("store-health").tBodies[0].innerHTML = rows.map(([k, v]) => `<tr><td>${k}</td><td>${esc(v)}</td></tr>`).join("");
    const link = { leader: "leader", connected: "connected", silent: "cut off (not heard)", unreachable: "never reached" };
    $("store-tills").tBodies[0].innerHTML = (s.till_states || []).map((t) =>
      `<tr><td>${t.terminal}</td><td class="${t.link === "silent" || t.link === "unreachable" ? "trouble" : "fine"}">${esc(link[t.link] || t.link)}</td>` +
      `<td>${ago(t.last_seen_ms, fleet.now_ms)}</td><td>${num(t.lag_events)}</td><td>${esc(t.version || (t.protocol ? `mesh protocol ${t.protocol}` : "-"))}</td></tr>`).join("") ||
      `<tr><td colspan="5" class="muted">No report from the store's leader since HQ started.</td></tr>`;
  }
  const pay = await get(`/api/v1/reports/payments?store=${q}&${range()}`);
  $("payments").tBodies[0].innerHTML = pay.rows.map((p) =>
    `<tr><td>${esc(p.method)}</td><td>${esc(p.provider || "-")}</td><td>${num(p.count)}</td><td>${num(p.amount)}</td>` +
    `<td>${num(p.reversed_amount)}</td><td>${num(p.net)}</td></tr>`).join("") || `<tr><td colspan="6" class="muted">No payments.</td></tr>`;
  const inv = await get(`/api/v1/reports/inventory?store=${q}`);
  const low = inv.rows.filter((r) => r.low).sort((a, b) => a.on_hand - b.on_hand);
  $("stock").tBodies[0].innerHTML = low.map((r) =>
    `<tr><td>${esc(r.sku)}</td><td>${esc(r.name)}</td><td class="bad">${num(r.on_hand)}</td><td>${num(r.low_stock_threshold)}</td></tr>`).join("") ||
    `<tr><td colspan="4" class="ok">Nothing is low.</td></tr>`;
  $("stock-note").textContent = `${inv.low} of ${inv.rows.length} products at or below their reorder point.`;
  const top = await get(`/api/v1/reports/top-skus?store=${q}&${range()}&limit=10`);
  const names = new Map(inv.rows.map((r) => [r.sku, r.name]));
  $("top").tBodies[0].innerHTML = top.rows.map((r) =>
    `<tr><td>${esc(names.get(r.sku) || r.sku)} <span class="muted">${esc(r.sku)}</span></td><td>${num(r.quantity)}</td><td>${num(r.revenue)}</td></tr>`).join("");
}

const PROBLEM = {
  missing_at_provider: "Recorded at the till, not captured by the provider",
  missing_in_ledger: "Captured by the provider, no sale: refund it",
  amount_differs: "Amounts differ",
  duplicate_at_provider: "Listed twice by the provider",
};

/** Posts a provider statement for the store on screen; shows what does not match. */
async function reconcileStatement(ev) {
  ev.preventDefault();
  const m = location.hash.match(/^#store=(.+)$/);
  const file = $("recon-file").files[0];
  if (!m || !file || !token()) return;
  const q = `store=${m[1]}&from=${$("recon-from").value}&to=${$("recon-to").value}`;
  const r = await fetch(`/api/v1/admin/reconciliation?${q}`, { method: "POST",
    headers: { Authorization: "Bearer " + token(), "Content-Type": "text/csv" }, body: await file.text() });
  const body = await r.json().catch(() => null);
  if (!r.ok) { $("recon-summary").textContent = "Not checked: " + (body?.message || r.statusText); $("recon").tBodies[0].innerHTML = ""; return; }
  $("recon-summary").textContent = `${num(body.matched)} payments match (${num(body.matched_amount)}); ` +
    `${body.exceptions.length} do not; ${num(body.not_captured)} refunds or failures not compared.`;
  $("recon").tBodies[0].innerHTML = body.exceptions.map((e) =>
    `<tr><td class="bad">${esc(PROBLEM[e.kind] || e.kind)}</td><td>${esc(e.reference)}</td><td>${esc(e.txn_id || "-")}</td>` +
    `<td>${e.ledger_amount == null ? "-" : num(e.ledger_amount)}</td><td>${e.provider_amount == null ? "-" : num(e.provider_amount)}</td>` +
    `<td>${esc(e.provider_ref || "-")}</td></tr>`).join("") || `<tr><td colspan="6" class="ok">Everything matches.</td></tr>`;
}
$("recon-form").onsubmit = reconcileStatement;
$("recon-from").value = day(-1);
$("recon-to").value = day(0);

async function refresh() {
  const m = location.hash.match(/^#store=(.+)$/);
  // Nothing but the sign-in until signed in: no error over empty tables.
  const signedIn = !!token();
  $("login").hidden = signedIn;
  $("signout").hidden = !signedIn;
  $("fleet-view").hidden = !signedIn || !!m;
  $("store-view").hidden = !signedIn || !m;
  if (!signedIn) { $("msg").textContent = ""; return; }
  try {
    if (m) await refreshStore(decodeURIComponent(m[1])); else await refreshFleet();
    $("msg").textContent = "";
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    if (e instanceof SignedOut) { refresh(); return; }
    $("msg").textContent = "Cannot load: " + e.message;
  }
}
$("login-form").onsubmit = async (ev) => {
  ev.preventDefault();
  const r = await fetch("/api/v1/auth/login", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user: $("user").value.trim(), password: $("password").value }) });
  $("password").value = "";
  const body = await r.json().catch(() => null);
  if (!r.ok) { $("msg").textContent = r.status === 401 ? "That user name and password do not match." : (body?.message || "Cannot sign in."); return; }
  sessionStorage.setItem("hqToken", body.token);
  $("msg").textContent = "";
  refresh();
};
$("signout").onclick = () => { sessionStorage.removeItem("hqToken"); refresh(); };
$("home").onclick = (e) => { e.preventDefault(); location.hash = ""; };
window.addEventListener("hashchange", refresh);
refresh();
setInterval(refresh, 5000);

// HQ's "push now" for the store on show.
$("store-sync").addEventListener("click", async () => {
  if (!shownStore || !token()) return;
  const r = await fetch(`/api/v1/admin/stores/${encodeURIComponent(shownStore)}/sync`,
    { method: "POST", headers: { Authorization: "Bearer " + token() } });
  let body = null;
  try { body = await r.json(); } catch { /* not JSON */ }
  $("store-sync-result").textContent = r.ok
    ? `Asked: store ${shownStore}'s leader syncs after its next report (within seconds).`
    : `Not asked: ${body?.message || r.statusText}`;
});
