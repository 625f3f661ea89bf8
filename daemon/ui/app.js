// The till's cashier UI: plain ES2020, no build step, served from the binary. It speaks only
// to this till's own API (/api/v1), so it works with the store offline.
"use strict";

const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) =>
  ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

const ui = {
  token: sessionStorage.getItem("till.token"),
  user: JSON.parse(sessionStorage.getItem("till.user") || "null"),
  txn: null,        // the open (or just finished) transaction
  decimals: 0,
  stream: null,     // camera
  qrTimer: null,
};

// ---------------------------------------------------------------- money and errors

function money(minor) {
  const d = ui.decimals;
  const v = (Number(minor) || 0) / 10 ** d;
  return v.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
}

/** What a cashier is told for an answer the till refused: its sentence, plus what to do. */
const HINTS = {
  unknown_barcode: "Check the number, or show the product to the camera.",
  duplicate_scan: "It was just scanned; change the quantity instead.",
  unauthenticated: "Please sign in again.",
  approval_required: "Ask a manager to approve.",
  approval_refused: "That person cannot approve this; ask a manager.",
  bad_approval: "Check the manager's ID and PIN and try again.",
  bad_login: "Check them and try again; the account locks after repeated wrong PINs.",
  account_locked: "Wait, or ask a manager to unlock the account.",
  pin_format: "A PIN is digits only.",
  offline_limit: "The store has been offline too long: a manager must allow offline selling.",
  vision_off: "Type or scan the barcode instead.",
  vision_busy: "Try again in a moment.",
  not_an_image: "Try again; if it keeps failing, type the barcode.",
  corrupt_image: "Try again; if it keeps failing, type the barcode.",
};

class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

function say(message, kind = "error") {
  const t = $("toast");
  t.textContent = message;
  t.className = kind === "info" ? "info" : "";
  t.hidden = false;
  clearTimeout(say.timer);
  say.timer = setTimeout(() => { t.hidden = true; }, kind === "info" ? 2500 : 8000);
}

function fail(e) {
  if (e instanceof ApiError) {
    const hint = HINTS[e.code];
    say(hint ? `${e.message}. ${hint}` : e.message);
    if (e.status === 401 && e.code === "unauthenticated") logout(false);
  } else {
    say("The till is not answering. Check that it is running, then try again.");
  }
}

async function api(method, path, body, opts = {}) {
  const headers = {};
  if (ui.token) headers.Authorization = "Bearer " + ui.token;
  let payload;
  if (body instanceof Blob) { payload = body; headers["Content-Type"] = body.type || "application/octet-stream"; }
  else if (body !== undefined) { payload = JSON.stringify(body); headers["Content-Type"] = "application/json"; }
  const r = await fetch("/api/v1" + path, { method, headers, body: payload });
  if (opts.text && r.ok) return r.text();
  let json = null;
  try { json = await r.json(); } catch { /* not JSON */ }
  if (!r.ok) {
    throw new ApiError(r.status, json?.error ?? "http_" + r.status,
      json?.message ?? `The till answered ${r.status}`);
  }
  return json;
}

/** Runs an action with immediate feedback on its button; reports failures as sentences. */
async function act(button, fn) {
  if (button) { button.disabled = true; button.classList.add("pressed"); }
  try { return await fn(); } catch (e) { fail(e); return undefined; } finally {
    if (button) { button.disabled = false; button.classList.remove("pressed"); }
  }
}

// ---------------------------------------------------------------- views

function show(view) {
  for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== view;
  $("logout").hidden = !ui.token;
  if (view === "sale-view") $("barcode").focus();
  if (view === "cash-view") $("tendered").focus();
}

function renderTxn() {
  const t = ui.txn;
  const open = t && (t.status === "DRAFT" || t.status === "PENDING_PAYMENT");
  $("txn-id").textContent = t ? t.txn_id : "";
  $("txn-status").textContent = t ? t.status.replace("_", " ").toLowerCase() : "new";
  const lines = t?.lines ?? [];
  $("empty-cart").hidden = lines.length > 0;
  $("lines").tBodies[0].innerHTML = lines.map((l) => `
    <tr data-line="${l.line_no}">
      <td>${esc(l.name)}${l.promotion ? `<span class="promo">${esc(l.promotion.name ?? l.promotion.id)}: -${money(l.discount)}</span>` : ""}</td>
      <td class="num qty">
        <button class="dec" aria-label="one fewer" ${open ? "" : "disabled"}>-</button>
        <span>${l.quantity}</span>
        <button class="inc" aria-label="one more" ${open ? "" : "disabled"}>+</button>
      </td>
      <td class="num">${money(l.unit_price)}</td>
      <td class="num">${money(l.total)}</td>
      <td><button class="remove small" aria-label="remove ${esc(l.name)}" ${open ? "" : "disabled"}>Remove</button></td>
    </tr>`).join("");
  const tot = t?.totals ?? { subtotal: 0, discount: 0, tax: 0, total: 0 };
  $("t-subtotal").textContent = money(tot.subtotal);
  $("t-discount").textContent = tot.discount ? "-" + money(tot.discount) : money(0);
  $("t-tax").textContent = money(tot.tax);
  $("t-total").textContent = money(tot.total);
  const empty = lines.length === 0;
  $("pay-cash").disabled = empty;
  $("pay-qr").disabled = empty;
  $("void").disabled = !t;
}

// ---------------------------------------------------------------- status bar

function ago(iso) {
  if (!iso) return "never";
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return s < 90 ? `${s} s ago` : s < 5400 ? `${Math.round(s / 60)} min ago` : `${Math.round(s / 3600)} h ago`;
}

function chip(id, text, cls = "") {
  const c = $(id);
  c.textContent = text;
  c.className = "chip " + cls;
}

async function refreshStatus() {
  try {
    const s = await api("GET", "/status");
    ui.decimals = s.currency_decimals;
    $("camera-toggle").hidden = !s.vision;
    const dup = (s.duplicate_terminal_at || []).length;
    const ahead = s.own_clock_ahead_ms;
    chip("st-store", dup ? `Till ${s.terminal_id}: another till uses this number, call support`
      : ahead ? `Till ${s.terminal_id}: clock ${Math.round(ahead / 60000)} min ahead, set the time`
      : `Store ${s.store_id} · Till ${s.terminal_id}`, dup ? "bad" : ahead ? "warn" : "");
    const c = s.cloud;
    if (!c) {
      chip("st-cloud", "Cloud: not configured", "warn");
      chip("st-sync", "");
    } else {
      chip("st-cloud", c.credential_refused ? "Cloud refuses this store's credential: call support"
        : c.online ? `Online · last sync ${ago(c.last_ok)}` : `Offline · last sync ${ago(c.last_ok)}`,
        c.online ? "ok" : "bad");
      $("st-cloud").dataset.online = String(c.online);
      chip("st-sync", `Unsynced ${c.backlog}`, c.backlog > 0 && !c.online ? "warn" : "");
      if (c.sales_refused) say("The store has been offline too long: a manager must allow offline selling.");
    }
    const leader = s.raft?.leader;
    chip("st-leader", leader ? `Leader: till ${leader}` : s.raft ? "Leader: electing" : "Single till",
      s.raft && !leader ? "warn" : "");
    const up = s.peers.filter((p) => String(p.outbound).toLowerCase() === "connected" || p.inbound).length;
    chip("st-peers", `Peers ${up}/${s.peers.length}`, s.peers.length && up < s.peers.length ? "warn" : "");
  } catch {
    chip("st-cloud", "Till service not answering", "bad");
  }
}

// ---------------------------------------------------------------- login

async function login(ev) {
  ev.preventDefault();
  await act($("login-go"), async () => {
    const v = await api("POST", "/auth/login", { employee_id: $("login-id").value.trim(), pin: $("login-pin").value })
      .catch((e) => {
        $("login-pin").value = "";
        if (e instanceof ApiError && e.status === 401) throw new ApiError(401, "bad_login", "That employee ID and PIN do not match");
        throw e;
      });
    ui.token = v.token;
    ui.user = { id: v.employee_id, name: v.name, role: v.role };
    sessionStorage.setItem("till.token", ui.token);
    sessionStorage.setItem("till.user", JSON.stringify(ui.user));
    $("login-pin").value = "";
    enter();
  });
}

async function logout(tell = true) {
  if (tell && ui.token) { try { await api("POST", "/auth/logout"); } catch { /* gone already */ } }
  ui.token = null; ui.user = null; ui.txn = null;
  sessionStorage.removeItem("till.token"); sessionStorage.removeItem("till.user");
  stopCamera();
  $("st-user").textContent = "";
  show("login-view");
  $("login-id").focus();
}

function enter() {
  chip("st-user", `${ui.user.name} (${ui.user.role})`);
  renderTxn();
  show("sale-view");
}

// ---------------------------------------------------------------- selling

async function ensureTxn() {
  if (ui.txn && ui.txn.status === "PENDING_PAYMENT") ui.txn = await api("POST", `/transactions/${ui.txn.txn_id}/reopen`);
  if (!ui.txn || ui.txn.status !== "DRAFT") ui.txn = await api("POST", "/transactions");
  return ui.txn;
}

async function addBarcode(code, quantity = 1) {
  code = String(code).trim();
  if (!/^\d{6,14}$/.test(code)) { say("A barcode is 8 to 13 digits. Check the number and try again."); return; }
  await act($("add"), async () => {
    const t = await ensureTxn();
    ui.txn = await api("POST", `/transactions/${t.txn_id}/items`, { barcode: code, quantity });
    renderTxn();
    $("barcode").value = "";
  });
  $("barcode").focus();
}

async function lineAction(ev) {
  const b = ev.target.closest("button");
  const tr = ev.target.closest("tr[data-line]");
  if (!b || !tr || !ui.txn) return;
  const line = Number(tr.dataset.line);
  const cur = ui.txn.lines.find((l) => l.line_no === line);
  await act(b, async () => {
    if (ui.txn.status === "PENDING_PAYMENT") ui.txn = await api("POST", `/transactions/${ui.txn.txn_id}/reopen`);
    const id = ui.txn.txn_id;
    if (b.classList.contains("remove") || (b.classList.contains("dec") && cur.quantity <= 1)) {
      ui.txn = await api("DELETE", `/transactions/${id}/items/${line}`);
    } else {
      const q = cur.quantity + (b.classList.contains("inc") ? 1 : -1);
      ui.txn = await api("PATCH", `/transactions/${id}/items/${line}`, { quantity: q });
    }
    renderTxn();
  });
}

async function checkout() {
  if (ui.txn.status === "DRAFT") ui.txn = await api("POST", `/transactions/${ui.txn.txn_id}/checkout`);
  renderTxn();
  return ui.txn;
}

async function payCash() {
  await act($("pay-cash"), async () => {
    const t = await checkout();
    $("cash-due").textContent = money(t.remaining_due);
    $("tendered").value = "";
    const step = 10 ** ui.decimals * (ui.decimals ? 1 : 1000);
    const round = (n, to) => Math.ceil(n / to) * to;
    const quick = [...new Set([t.remaining_due, round(t.remaining_due, 10 * step), round(t.remaining_due, 50 * step),
      round(t.remaining_due, 100 * step)])];
    $("quick-cash").innerHTML = quick.map((v) => `<button type="button" data-v="${v}">${money(v)}</button>`).join("");
    show("cash-view");
  });
}

async function takeCash(ev) {
  ev.preventDefault();
  const tendered = Number(String($("tendered").value).replace(/[^\d]/g, ""));
  if (!Number.isSafeInteger(tendered) || tendered <= 0) { say("Type the amount received, in whole units."); return; }
  await act($("cash-ok"), async () => {
    const id = ui.txn.txn_id;
    const t = await api("POST", `/transactions/${id}/payments`, { method: "cash", tendered });
    ui.txn = t;
    if (t.remaining_due > 0) {
      $("cash-due").textContent = money(t.remaining_due);
      say(`Still due: ${money(t.remaining_due)}. Take another payment.`, "info");
      return;
    }
    await finish(t.change_due);
  });
}

async function finish(change) {
  const id = ui.txn.txn_id;
  ui.txn = await api("POST", `/transactions/${id}/finalize`);
  $("change").textContent = money(change);
  $("receipt").textContent = await api("GET", `/receipts/${id}?format=text`, undefined, { text: true });
  renderTxn();
  show("receipt-view");
  $("next").focus();
}

async function payQr() {
  await act($("pay-qr"), async () => {
    const t = await checkout();
    const p = await api("POST", `/transactions/${t.txn_id}/payments`, { method: "qr", amount: t.remaining_due });
    ui.txn = p;
    const pay = p.payments[p.payments.length - 1];
    $("qr-amount").textContent = money(pay.amount);
    $("qr-payload").textContent = pay.qr_payload ?? "";
    $("qr-code").innerHTML = "";
    // The code drawn by the till (the payload above is the fallback); a payment captured
    // before the drawing arrives needs none.
    api("GET", `/payments/${pay.payment_id}/qr.svg`, undefined, { text: true })
      .then((svg) => { if (!$("qr-view").hidden) $("qr-code").innerHTML = svg; })
      .catch(() => {});
    $("qr-state").textContent = "Waiting for the customer's payment...";
    show("qr-view");
    pollQr(pay.payment_id);
  });
}

function pollQr(paymentId) {
  clearTimeout(ui.qrTimer);
  ui.qrTimer = setTimeout(async () => {
    try {
      const p = await api("GET", `/payments/${paymentId}`);
      if (p.status === "CAPTURED") { ui.txn = await api("GET", `/transactions/${ui.txn.txn_id}`); await finish(0); return; }
      if (p.status === "PENDING") { pollQr(paymentId); return; }
      say(`The QR payment ${p.status.toLowerCase()}. Take cash or try QR again.`);
      ui.txn = await api("GET", `/transactions/${ui.txn.txn_id}`);
      renderTxn();
      show("sale-view");
    } catch (e) { fail(e); pollQr(paymentId); }
  }, 1000);
}

async function cancelQr() {
  clearTimeout(ui.qrTimer);
  await act($("qr-cancel"), async () => {
    const pay = ui.txn.payments.find((p) => p.status === "PENDING");
    if (pay) await api("POST", `/payments/${pay.payment_id}/cancel`);
    ui.txn = await api("GET", `/transactions/${ui.txn.txn_id}`);
    renderTxn();
    show("sale-view");
  });
}

async function backToSale() {
  await act($("cash-back"), async () => {
    if (ui.txn?.status === "PENDING_PAYMENT" && ui.txn.payments.every((p) => p.status !== "CAPTURED")) {
      ui.txn = await api("POST", `/transactions/${ui.txn.txn_id}/reopen`);
    }
    renderTxn();
    show("sale-view");
  });
}

/** Voids the sale: an open one is simply cancelled; a paid one needs a manager's PIN. */
async function voidSale(button) {
  const t = ui.txn;
  if (!t) return;
  if (t.status === "DRAFT" || t.status === "PENDING_PAYMENT") {
    await act(button, async () => {
      ui.txn = await api("POST", `/transactions/${t.txn_id}/void`, { reason: "cancelled at the till" });
      say("Sale cancelled.", "info");
      ui.txn = null;
      renderTxn();
    });
    return;
  }
  const approval = await askManager("Void this sale", `Void sale ${t.txn_id} of ${money(t.totals.total)} and return its items to stock.`);
  if (!approval) return;
  await act(button, async () => {
    ui.txn = await approved(() => api("POST", `/transactions/${t.txn_id}/void`, { reason: approval.reason, approval: approval.approval }));
    $("receipt").textContent = await api("GET", `/receipts/${t.txn_id}?format=text`, undefined, { text: true });
    say(`Sale ${t.txn_id} voided, approved by ${approval.approval.employee_id}.`, "info");
    renderTxn();
  });
}

async function refundSale(button) {
  const t = ui.txn;
  if (!t || t.status !== "PAID") { say("Only a paid sale can be refunded."); return; }
  const approval = await askManager("Refund this sale", `Refund ${money(t.totals.total)} for sale ${t.txn_id}.`);
  if (!approval) return;
  await act(button, async () => {
    await api("POST", `/transactions/${t.txn_id}/refund`, { reason: approval.reason });
    ui.txn = await approved(() => api("POST", `/transactions/${t.txn_id}/refund/approve`, { approval: approval.approval }));
    say(`Sale ${t.txn_id} refunded.`, "info");
    renderTxn();
  });
}

/** Runs a request that carries a manager's approval: a wrong ID or PIN there is the
 *  manager's mistake, not the end of the cashier's session. */
async function approved(fn) {
  try { return await fn(); } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      throw new ApiError(403, "bad_approval", "The manager ID or PIN is not right");
    }
    throw e;
  }
}

/** The manager-approval dialog: resolves to {reason, approval} or null when cancelled. */
function askManager(title, text) {
  const d = $("approval");
  $("approval-title").textContent = title;
  $("approval-text").textContent = text;
  $("approval-id").value = "";
  $("approval-pin").value = "";
  return new Promise((resolve) => {
    d.onclose = () => {
      if (d.returnValue !== "ok") { resolve(null); return; }
      resolve({
        reason: $("approval-reason").value.trim() || "no reason given",
        approval: { employee_id: $("approval-id").value.trim(), pin: $("approval-pin").value },
      });
    };
    d.returnValue = "";
    d.showModal();
    $("approval-id").focus();
  });
}

// ---------------------------------------------------------------- camera

async function startCamera() {
  if (!navigator.mediaDevices?.getUserMedia) {
    say("This browser cannot use a camera here (the page must be opened on the till itself or over HTTPS). Type the barcode instead.");
    return;
  }
  try {
    ui.stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480, facingMode: "environment" }, audio: false });
  } catch {
    say("The camera could not be opened. Check it is connected and allowed, or type the barcode.");
    return;
  }
  $("video").srcObject = ui.stream;
  $("camera").hidden = false;
  $("proposals").innerHTML = "";
}

function stopCamera() {
  if (ui.stream) for (const t of ui.stream.getTracks()) t.stop();
  ui.stream = null;
  $("camera").hidden = true;
}

async function grabFrame() {
  const v = $("video");
  if (!v.videoWidth) throw new ApiError(0, "no_frame", "The camera has not shown a picture yet");
  const c = $("frame");
  c.width = v.videoWidth; c.height = v.videoHeight;
  c.getContext("2d").drawImage(v, 0, 0);
  return new Promise((resolve) => c.toBlob(resolve, "image/jpeg", 0.92));
}

async function identify() {
  const box = $("proposals");
  box.innerHTML = `<p class="muted">Looking...</p>`;
  await act($("identify"), async () => {
    const r = await api("POST", "/vision/recognize?k=3", await grabFrame());
    // Accepted: the first proposal is highlighted. Not sure: the closest are offered for
    // the cashier to pick, none highlighted, never added on their own.
    const sure = r.decision === "accepted";
    const rows = r.proposals.map((p, i) => `<button class="${sure && i === 0 ? "best" : ""}" data-sku="${esc(p.sku)}">
          <span>${esc(p.name || p.sku)}</span><span class="score">${Math.round(Math.max(0, p.score) * 100)}%</span></button>`);
    const head = sure ? "" : r.proposals.length
      ? `<p>Not sure what this is. Pick it below if you see it, or type its barcode.</p>`
      : `<p>No products are enrolled for the camera yet. Type the barcode.</p>`;
    box.innerHTML = head + rows.join("") +
      `<button class="unknown" data-unknown="1">Unknown product: type the barcode</button>`;
  });
  if (box.textContent.includes("Looking")) box.innerHTML = "";
}

async function chooseProposal(ev) {
  const b = ev.target.closest("button");
  if (!b) return;
  if (b.dataset.unknown) { $("proposals").innerHTML = ""; $("barcode").focus(); say("Type or scan the product's barcode.", "info"); return; }
  await act(b, async () => {
    const item = await api("GET", `/catalog/items?sku=${encodeURIComponent(b.dataset.sku)}`);
    const code = item.barcodes[0];
    if (!code) throw new ApiError(0, "no_barcode", `${item.name} has no barcode in the catalog`);
    $("proposals").innerHTML = "";
    await addBarcode(code);
  });
}

// ---------------------------------------------------------------- keyboard-wedge scanners

/** A scanner "types" a barcode as a burst of digits ending in Enter. Wherever the focus is
 *  (a button just tapped, the basket), digits go to the barcode field, so the burst lands
 *  there whole and its Enter adds the item: no timing guesses, nothing lost. */
function wedge(ev) {
  if ($("sale-view").hidden || $("approval").open) return;
  const t = ev.target;
  if (t instanceof HTMLInputElement || t instanceof HTMLTextAreaElement) return;
  if (!/^\d$/.test(ev.key) || ev.ctrlKey || ev.altKey || ev.metaKey) return;
  ev.preventDefault();
  const field = $("barcode");
  field.focus();
  field.value += ev.key;
}

// ---------------------------------------------------------------- wiring

function keypads() {
  for (const pad of document.querySelectorAll(".keypad")) {
    const target = $(pad.dataset.target);
    pad.innerHTML = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "C", "0", "<"]
      .map((k) => `<button type="button" data-k="${k}">${k === "<" ? "&larr;" : k}</button>`).join("");
    pad.addEventListener("click", (ev) => {
      const k = ev.target.closest("button")?.dataset.k;
      if (!k) return;
      if (k === "C") target.value = "";
      else if (k === "<") target.value = target.value.slice(0, -1);
      else target.value += k;
      target.focus();
    });
  }
}

async function init() {
  keypads();
  // Immediate press feedback for touch, before any network round trip.
  document.addEventListener("pointerdown", (e) => e.target.closest("button")?.classList.add("pressed"));
  document.addEventListener("pointerup", () => document.querySelectorAll("button.pressed:not(:disabled)").forEach((b) => b.classList.remove("pressed")));
  document.addEventListener("keydown", wedge, true);
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", () => logout(true));
  $("scan-form").addEventListener("submit", (e) => { e.preventDefault(); addBarcode($("barcode").value); });
  $("lines").addEventListener("click", lineAction);
  $("pay-cash").addEventListener("click", payCash);
  $("pay-qr").addEventListener("click", payQr);
  $("qr-cancel").addEventListener("click", cancelQr);
  $("cash-form").addEventListener("submit", takeCash);
  $("cash-back").addEventListener("click", backToSale);
  $("quick-cash").addEventListener("click", (e) => { const v = e.target.closest("button")?.dataset.v; if (v) $("tendered").value = v; });
  $("void").addEventListener("click", () => voidSale($("void")));
  $("new-sale").addEventListener("click", () => {
    // An open sale with items is never dropped silently: it must be paid or voided.
    if (ui.txn && (ui.txn.status === "DRAFT" || ui.txn.status === "PENDING_PAYMENT") && ui.txn.lines.length) {
      say("This sale is still open. Take payment, or void it, before starting a new one.");
      return;
    }
    ui.txn = null; renderTxn(); show("sale-view");
  });
  $("next").addEventListener("click", () => { ui.txn = null; renderTxn(); show("sale-view"); });
  $("print").addEventListener("click", () => window.print());
  $("camera-toggle").addEventListener("click", () => (ui.stream ? stopCamera() : startCamera()));
  $("camera-close").addEventListener("click", stopCamera);
  $("identify").addEventListener("click", identify);
  $("proposals").addEventListener("click", chooseProposal);
  // The receipt view offers void and refund of the sale just made (manager approval).
  const row = $("next").parentElement;
  row.insertAdjacentHTML("beforeend",
    `<button id="receipt-void" class="danger" type="button">Void sale</button>
     <button id="receipt-refund" type="button">Refund</button>`);
  $("receipt-void").addEventListener("click", () => voidSale($("receipt-void")));
  $("receipt-refund").addEventListener("click", () => refundSale($("receipt-refund")));

  await refreshStatus();
  setInterval(refreshStatus, 2000);
  if (ui.token && ui.user) {
    enter(); // an expired session answers 401 on the first action and returns to sign-in
  } else {
    show("login-view");
    $("login-id").focus();
  }
}

init();
