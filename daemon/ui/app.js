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

/** What a cashier is told when the till refuses something, by the API's error code: plain
 *  words and what to do next. A code not listed shows the till's own sentence. */
const WORDS = {
  store_offline: "The store is offline: QR payments and gift cards need head office. Take cash.",
  unknown_barcode: "That barcode is not in the catalog. Check the number, or show the product to the camera.",
  coupon_used: "That coupon was used already: it is single-use.",
  no_customer: "Store credit is the customer's: attach the customer to the sale first.",
  no_credit: "This customer has no store credit.",
  invalid_barcode: "That is not a valid barcode. Check the number and scan or type it again.",
  inactive_item: "This product is no longer sold. Ask a manager.",
  duplicate_scan: "The scanner read that twice; it was added once.",
  bad_quantity: "A quantity is a whole number from 1 to 9,999.",
  too_many_lines: "This sale has as many lines as a sale can hold. Pay for it and start another.",
  bad_weight: "A weight is from 0.001 kg to 50 kg. Weigh the item again.",
  not_by_weight: "This product is sold by the unit: scan it without weighing.",
  weighed_line: "A weighed item keeps its weight: remove the line and weigh the item again.",
  unauthenticated: "Please sign in again.",
  approval_required: "A manager must approve this.",
  approval_refused: "That person cannot approve this; ask a manager.",
  bad_approval: "Check the manager's ID and PIN and try again.",
  bad_login: "That employee ID and PIN do not match. Check them and try again; the account locks after repeated wrong PINs.",
  account_locked: "This account is locked for a while after wrong PINs. Ask a manager to unlock it.",
  pin_format: "A PIN is digits only.",
  too_many_attempts: "Too many wrong PINs from this screen: wait a moment and try again.",
  demo_account: "This is a demo account and this till is not in demo mode. Ask a manager for your own PIN.",
  offline_limit: "The store has been offline too long: a manager must allow offline selling.",
  tendered_too_high: "That is far more cash than is due. Check the amount received.",
  wrong_amount: "That amount cannot be taken. Check it and try again.",
  payment_taken: "Money has been taken on this sale. Finish it, undo the cash payment, or ask a manager to cancel it.",
  payment_pending: "A QR payment is waiting for the customer. Wait for it or cancel it first.",
  too_many_payments: "This sale has as many payments as it can hold. Cancel it (manager) and ring it again.",
  empty_transaction: "Add at least one item before taking payment.",
  on_hold: "This sale is on hold. Recall it from Held sales first.",
  not_held: "That sale is not on hold any more.",
  too_many_open_transactions: "Too many open sales on this till. Finish or cancel one first.",
  invalid_transition: "This sale cannot do that now.",
  disk_full: "The till's disk is full: sales cannot be recorded. Call support; the other tills keep selling.",
  vision_off: "The camera is not set up on this till. Type or scan the barcode instead.",
  vision_busy: "The camera is busy. Try again in a moment.",
  not_an_image: "The camera picture did not arrive. Try again, or type the barcode.",
  corrupt_image: "The camera picture did not arrive. Try again, or type the barcode.",
  unknown_transaction: "There is no sale with that number on this till.",
  bad_return: "That return does not fit the sale: check the units left on each line.",
  not_paid: "Only a paid sale takes returns.",
  has_returns: "Items of this sale were returned already: return the rest instead.",
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
    say(WORDS[e.code] ?? e.message);
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
  // Busy, not disabled: what the action itself enables or disables stays so. A second
  // press (or Enter) while it runs is ignored: one payment per press.
  if (button?.classList.contains("busy")) return undefined;
  if (button) button.classList.add("pressed", "busy");
  try { return await fn(); } catch (e) { fail(e); return undefined; } finally {
    if (button) button.classList.remove("pressed", "busy");
    renderTxn(); // the sale's buttons follow the sale, not the action just finished
  }
}

// ---------------------------------------------------------------- views

function show(view) {
  for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== view;
  $("logout").hidden = !ui.token;
  $("office").hidden = !ui.token;
  // A message belongs to the screen it was said on.
  if (show.current !== view) { $("toast").hidden = true; show.current = view; }
  if (view === "sale-view") $("barcode").focus();
  if (view === "cash-view") $("cash-ok").focus();
}

const isOpen = (t) => t && (t.status === "DRAFT" || t.status === "PENDING_PAYMENT");
const captured = (t) => (t?.payments ?? []).filter((p) => p.status === "CAPTURED");

const STORED = ["gift_card", "store_credit", "coupon"];

/** What a paid sale took on gift cards, store credit or coupons: a void or refund puts it
 *  back on them, never out in cash. */
function onCards(t) {
  return (t?.payments ?? []).filter((p) => STORED.includes(p.method) && p.status === "CAPTURED")
    .reduce((a, p) => a + p.amount, 0);
}

/** A payment's method in words. */
function methodName(p) {
  switch (p.method) {
    case "cash": return "Cash";
    case "gift_card": return `Gift card ${esc(p.provider_ref ?? "")}`;
    case "store_credit": return "Store credit";
    case "coupon": return `Coupon ${esc((p.provider_ref ?? "").replace(/^coupon:/, ""))}`;
    default: return "QR";
  }
}

function paymentRows(t, undo) {
  return (t?.payments ?? []).filter((p) => p.status === "CAPTURED" || p.status === "CANCELLED").map((p) => {
    const what = `${methodName(p)} ${money(p.amount)}`;
    if (p.status === "CANCELLED") return `<li class="cancelled"><span>${what}</span><span>${STORED.includes(p.method) ? "released" : "handed back"}</span></li>`;
    const btn = undo && (p.method === "cash" || STORED.includes(p.method)) && isOpen(t)
      ? `<button type="button" class="undo small" data-pay="${esc(p.payment_id)}">Undo</button>` : "";
    return `<li><span>${what}${p.change ? ` (received ${money(p.tendered)}, change ${money(p.change)})` : ""}</span>${btn}</li>`;
  }).join("");
}

function renderTxn() {
  const t = ui.txn;
  // Lines change only on an open sale with no money taken (undo the payment first).
  const open = isOpen(t) && !captured(t).length && !t.held_by;
  $("txn-id").textContent = t ? t.txn_id : "";
  $("txn-status").textContent = t ? (t.held_by ? "on hold" : t.status.replace("_", " ").toLowerCase()) : "new";
  const lines = t?.lines ?? [];
  $("empty-cart").hidden = lines.length > 0;
  // Prices as the customer pays them: the unit price with its tax, so that quantity times
  // price is the line's total (before a promotion, which is shown under the item).
  const weights = new Map((t?.weights ?? []).map((w) => [w.line_no, w]));
  const kg = (g) => (g / 1000).toLocaleString("en-US", { minimumFractionDigits: 3, maximumFractionDigits: 3 });
  $("lines").tBodies[0].innerHTML = lines.map((l) => {
    const w = weights.get(l.line_no);
    const withTax = (p) => money(Math.round(p * (10000 + l.tax_rate_bp) / 10000));
    // A weighed line shows its weight and price per kg; its weight never changes.
    const qty = w ? `<span class="weight">${kg(w.grams)} kg</span>` : `
        <button class="dec" aria-label="one fewer" ${open ? "" : "disabled"}>-</button>
        <button class="set-qty" aria-label="type the quantity" ${open ? "" : "disabled"}>${l.quantity.toLocaleString("en-US")}</button>
        <button class="inc" aria-label="one more" ${open ? "" : "disabled"}>+</button>`;
    return `
    <tr data-line="${l.line_no}">
      <td>${esc(l.name)}${l.promotion ? `<span class="promo">${esc(l.promotion.name ?? l.promotion.id)}: -${money(l.discount)}</span>` : ""}</td>
      <td class="num qty">${qty}</td>
      <td class="num">${w ? `${withTax(w.price_per_kg)}/kg` : withTax(l.unit_price)}</td>
      <td class="num">${money(l.total)}</td>
      <td><button class="remove small" aria-label="remove ${esc(l.name)}" ${open ? "" : "disabled"}>Remove</button></td>
    </tr>`;
  }).join("");
  const tot = t?.totals ?? { subtotal: 0, discount: 0, tax: 0, total: 0 };
  $("t-subtotal").textContent = money(tot.subtotal);
  $("t-discount").textContent = tot.discount ? "-" + money(tot.discount) : money(0);
  $("t-tax").textContent = money(tot.tax);
  $("t-total").textContent = money(tot.total);
  const live = isOpen(t);
  const paid = live ? (t.paid ?? 0) : 0;
  for (const el of document.querySelectorAll(".paid-row")) el.hidden = paid === 0;
  $("t-paid").textContent = money(paid);
  $("t-remaining").textContent = money(t?.remaining_due ?? 0);
  const rows = live ? paymentRows(t, true) : "";
  $("sale-payments").innerHTML = rows;
  $("sale-payments").hidden = !rows;
  const empty = lines.length === 0;
  $("pay-cash").disabled = empty || (!!t && !live);
  $("pay-qr").disabled = empty || (!!t && !live) || !!ui.onlineRefused;
  $("pay-qr").title = ui.onlineRefused || "";
  // Gift cards, coupons and store credit are spent offline too, within the rights this till
  // holds; store credit is the attached customer's.
  $("pay-gift").disabled = empty || (!!t && !live);
  $("pay-coupon").disabled = empty || (!!t && !live);
  $("pay-credit").disabled = empty || (!!t && !live) || !t?.customer_id;
  $("void").disabled = !live;
  $("customer").disabled = !live || !!t.held_by;
  $("customer").textContent = t?.customer_id ? `Customer ${t.customer_id}` : "Customer";
  $("hold").disabled = !live || empty || !!t.held_by;
}

/** The newest line in sight: a long cart scrolls inside itself. */
function revealLine(lineNo) {
  const row = document.querySelector(`#lines tr[data-line="${lineNo}"]`);
  row?.scrollIntoView({ block: "nearest" });
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

const isManager = () => ui.user && (ui.user.role === "manager" || ui.user.role === "admin");

async function refreshStatus() {
  try {
    const s = await api("GET", "/status");
    ui.decimals = s.currency_decimals;
    ui.terminal = s.terminal_id;
    $("camera-toggle").hidden = !s.vision;
    const dup = (s.duplicate_terminal_at || []).length;
    const ahead = s.own_clock_ahead_ms;
    // Events of kinds this version does not know: a newer till is in the store.
    const newer = s.unknown_kind_events ?? 0;
    // The store CA revoked this till: no other till talks to it (sales stay on it).
    const revoked = s.this_till_revoked;
    // Head office's signature was missing on master data this till was sent (managers).
    const unsigned = isManager() && s.raft?.master_refused;
    // QR money the provider took after the till gave up on the payment (managers refund it).
    const late = isManager() ? s.late_captures ?? 0 : 0;
    chip("st-store", revoked ? `Till ${s.terminal_id}: this till was removed from the store, call support`
      : dup ? `Till ${s.terminal_id}: another till uses this number, call support`
      : ahead ? `Till ${s.terminal_id}: clock ${Math.round(ahead / 60000)} min ahead, set the time`
      : newer ? `Till ${s.terminal_id}: other tills run a newer version, update this one`
      : unsigned ? `Till ${s.terminal_id}: refused prices or staff not signed by head office`
      : late ? `Till ${s.terminal_id}: ${late} QR payment${late > 1 ? "s" : ""} taken after the sale gave up on ${late > 1 ? "them" : "it"}: refund`
      : `Store ${s.store_id} · Till ${s.terminal_id}`, revoked || dup ? "bad" : ahead || newer || unsigned || late ? "warn" : "");
    const c = s.cloud;
    // The till's one rule for what needs the store online (QR payments): shown, and the
    // button follows it.
    ui.onlineRefused = s.qr_refused || c?.online_only_refused || null;
    $("qr-offline").hidden = !ui.onlineRefused;
    $("qr-offline").textContent = !ui.onlineRefused ? ""
      : /no QR payment provider/.test(ui.onlineRefused) ? "QR payments are not set up on this till: take cash."
      : "QR payments need the store online: take cash.";
    renderTxn();
    const leads = s.raft ? s.raft.leader === s.terminal_id : true;
    if (!c) {
      chip("st-cloud", "Head office: not connected (this till sells on its own)", "warn");
      $("st-sync").hidden = true;
    } else {
      chip("st-cloud", c.credential_refused ? "Head office refuses this store's credential: call support"
        : c.online ? `Online · last sync ${ago(c.last_ok)}`
        : `Offline · selling goes on · last sync ${ago(c.last_ok)}`,
        c.online ? "ok" : "bad");
      $("st-cloud").dataset.online = String(c.online);
      // Only the till that uploads knows the store's backlog; the others say nothing.
      $("st-sync").hidden = !leads || c.backlog === 0;
      chip("st-sync", `${c.backlog.toLocaleString("en-US")} changes not yet sent`, c.online ? "" : "warn");
      if (c.sales_refused) say(WORDS.offline_limit);
    }
    // Mesh words are for managers.
    $("st-leader").hidden = !isManager();
    $("st-peers").hidden = !isManager();
    const leader = s.raft?.leader;
    chip("st-leader", leader ? `Uploads: till ${leader}` : s.raft ? "Choosing the uploading till" : "Single till",
      s.raft && !leader ? "warn" : "");
    const up = s.peers.filter((p) => String(p.outbound).toLowerCase() === "connected" || p.inbound).length;
    chip("st-peers", `Tills ${up}/${s.peers.length}`, s.peers.length && up < s.peers.length ? "warn" : "");
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
    $("login-id").value = "";
    await enter();
  });
}

/** Logging out never loses a sale: an open one with items is put on hold first. */
async function logout(tell = true) {
  if (tell && ui.token && isOpen(ui.txn) && ui.txn.lines.length && !ui.txn.held_by) {
    try {
      await api("POST", `/transactions/${ui.txn.txn_id}/hold`);
      sessionStorage.setItem("till.notice", `Sale ${ui.txn.txn_id} was put on hold; recall it from Held sales.`);
    } catch (e) { fail(e); return; }
  }
  if (tell && ui.token) { try { await api("POST", "/auth/logout"); } catch { /* gone already */ } }
  ui.token = null; ui.user = null; ui.txn = null;
  sessionStorage.removeItem("till.token"); sessionStorage.removeItem("till.user");
  stopCamera();
  $("st-user").textContent = "";
  show("login-view");
  const notice = sessionStorage.getItem("till.notice");
  if (notice) { say(notice, "info"); sessionStorage.removeItem("till.notice"); }
  $("login-id").focus();
}

/** After sign-in or a reload: the cashier's own open sale (not on hold) comes back. */
async function enter() {
  chip("st-user", ui.user.name);
  ui.txn = null;
  show("sale-view");
  try {
    const open = await api("GET", "/transactions/open");
    const mine = open.filter((t) => t.cashier === ui.user.id && !t.held_by).pop();
    if (mine) { ui.txn = mine; say(`Your open sale ${mine.txn_id} is back.`, "info"); }
    const held = open.filter((t) => t.held_by).length;
    $("held").textContent = held ? `Held sales (${held})` : "Held sales";
  } catch (e) { fail(e); }
  renderTxn();
  refreshStatus();
}

// ---------------------------------------------------------------- selling

async function ensureTxn() {
  if (ui.txn && ui.txn.status === "PENDING_PAYMENT" && !captured(ui.txn).length) {
    ui.txn = await api("POST", `/transactions/${ui.txn.txn_id}/reopen`);
  }
  if (!ui.txn || ui.txn.status !== "DRAFT") ui.txn = await api("POST", "/transactions");
  return ui.txn;
}

/** Scans in flight and the last one shown, to tell a scanner's double read (the same code
 *  again before the first was shown, or within 250 ms of it) from a deliberate rescan.
 *  Scans run one after another, in the order they came, so a burst never opens two sales. */
const scans = { inFlight: new Set(), shown: null, queue: Promise.resolve() };

function addBarcode(raw, quantity = 1) {
  const code = String(raw).trim();
  $("barcode").value = ""; // a refused scan never sticks to the next one
  if (!code) return Promise.resolve();
  // A receipt number typed or scanned into the field opens that sale.
  if (/^[A-Za-z]+\d*(-[0-9A-Fa-f]+)+$/.test(code)) return openReceipt(code.toUpperCase());
  if (!/^\d{6,14}$/.test(code)) { say("A barcode is 6 to 14 digits. Check the number and try again."); return Promise.resolve(); }
  if (scans.inFlight.has(code) || (scans.shown?.code === code && Date.now() - scans.shown.at < 250)) {
    return Promise.resolve(); // the scanner read it twice
  }
  scans.inFlight.add(code);
  const run = scans.queue.then(() => addNow(code, quantity)).finally(() => scans.inFlight.delete(code));
  scans.queue = run.catch(() => {});
  return run;
}

async function addNow(code, quantity) {
  if (ui.txn && isOpen(ui.txn) && captured(ui.txn).length) {
    say("Payment has started on this sale: undo the cash payment to add items.");
    return;
  }
  const rescan = scans.shown?.code === code;
  await act(null, async () => {
    const t = await ensureTxn();
    const before = new Map(t.lines.map((l) => [l.line_no, l.quantity]));
    try {
      ui.txn = await api("POST", `/transactions/${t.txn_id}/items`, { barcode: code, quantity, rescan });
    } catch (e) {
      if (e.code !== "needs_weight") throw e;
      // Sold by weight: the weight is typed, or typed by the scale (keyboard wedge) into
      // the focused weight field; each weighing is a line of its own.
      const grams = await askWeight(e.message.replace(/ is sold by weight.*$/, ""));
      if (grams === null) return;
      ui.txn = await api("POST", `/transactions/${t.txn_id}/items`, { barcode: code, weight_g: grams });
    }
    renderTxn();
    // The line this scan made or grew comes into sight.
    const line = ui.txn.lines.find((l) => before.get(l.line_no) !== l.quantity);
    if (line) revealLine(line.line_no);
    scans.shown = { code, at: Date.now() };
  });
  // Back to the scan field, unless the cashier has moved on to another field meanwhile.
  const a = document.activeElement;
  const elsewhere = a instanceof HTMLInputElement && a.id !== "barcode";
  if (!$("sale-view").hidden && !document.querySelector("dialog[open]") && !elsewhere) $("barcode").focus();
}

async function lineAction(ev) {
  const b = ev.target.closest("button");
  const tr = ev.target.closest("tr[data-line]");
  if (!b || !tr || !ui.txn) return;
  const line = Number(tr.dataset.line);
  const cur = ui.txn.lines.find((l) => l.line_no === line);
  let q = null;
  if (b.classList.contains("set-qty")) {
    const typed = await askNumber(`How many ${cur.name}?`, cur.quantity);
    if (typed === null) return;
    q = typed;
  }
  await act(b, async () => {
    if (ui.txn.status === "PENDING_PAYMENT") ui.txn = await api("POST", `/transactions/${ui.txn.txn_id}/reopen`);
    const id = ui.txn.txn_id;
    if (b.classList.contains("remove") || (b.classList.contains("dec") && cur.quantity <= 1) || q === 0) {
      ui.txn = await api("DELETE", `/transactions/${id}/items/${line}`);
    } else {
      if (q === null) q = cur.quantity + (b.classList.contains("inc") ? 1 : -1);
      ui.txn = await api("PATCH", `/transactions/${id}/items/${line}`, { quantity: q });
    }
    renderTxn();
  });
}

/** A weight in kilograms (as a scale's keyboard-wedge output types it: "1.234", Enter) or
 *  on the keypad, in the confirm dialog; grams, or null when cancelled or not a weight. */
function askWeight(name) {
  return new Promise((resolve) => {
    const d = $("confirm");
    $("confirm-title").textContent = `Weigh ${name}`;
    $("confirm-text").innerHTML = `<label>Weight in kg <input id="ask-weight" inputmode="decimal" autocomplete="off" placeholder="0.000"></label><div class="keypad" data-target="ask-weight" data-decimal="1"></div>`;
    keypads($("confirm-text"));
    $("confirm-ok").textContent = "Add";
    $("confirm-ok").className = "primary";
    $("confirm-cancel").textContent = "Cancel";
    d.onclose = () => {
      const raw = ($("ask-weight")?.value ?? "").trim().replace(",", ".");
      const kg = Number(raw);
      const ok = d.returnValue === "ok" && /^\d+(\.\d{0,3})?$/.test(raw) && kg > 0 && kg <= 50;
      if (d.returnValue === "ok" && !ok) say(WORDS.bad_weight);
      resolve(ok ? Math.round(kg * 1000) : null);
    };
    d.returnValue = "";
    d.showModal();
    $("ask-weight").focus();
  });
}

/** A number typed on the on-screen keypad, in the confirm dialog; null when cancelled. */
function askNumber(title, current) {
  return new Promise((resolve) => {
    const d = $("confirm");
    $("confirm-title").textContent = title;
    $("confirm-text").innerHTML = `<input id="ask-number" inputmode="numeric" value="${Number(current)}"><div class="keypad" data-target="ask-number"></div>`;
    keypads($("confirm-text"));
    $("confirm-ok").textContent = "Set";
    $("confirm-ok").className = "primary";
    $("confirm-cancel").textContent = "Cancel";
    d.onclose = () => {
      const v = Number($("ask-number")?.value);
      resolve(d.returnValue === "ok" && Number.isSafeInteger(v) && v >= 0 ? v : null);
    };
    d.returnValue = "";
    d.showModal();
    $("ask-number").select();
  });
}

/** A yes/no question before something that cannot be undone. */
function confirmDanger(title, text, yes) {
  return new Promise((resolve) => {
    const d = $("confirm");
    $("confirm-title").textContent = title;
    $("confirm-text").textContent = text;
    $("confirm-ok").textContent = yes;
    $("confirm-ok").className = "danger";
    $("confirm-cancel").textContent = "Keep the sale";
    d.onclose = () => resolve(d.returnValue === "ok");
    d.returnValue = "";
    d.showModal();
    $("confirm-cancel").focus();
  });
}

async function checkout() {
  if (ui.txn.status === "DRAFT") ui.txn = await api("POST", `/transactions/${ui.txn.txn_id}/checkout`);
  renderTxn();
  return ui.txn;
}

function renderCash(t) {
  $("cash-due").textContent = money(t.remaining_due);
  $("cash-paid").textContent = t.paid ? `(total ${money(t.totals.total)}, paid ${money(t.paid)})` : "";
  const rows = paymentRows(t, true);
  $("cash-payments").innerHTML = rows;
  $("cash-payments").hidden = !rows;
  $("tendered").value = "";
  const step = 10 ** ui.decimals * (ui.decimals ? 1 : 1000);
  const round = (n, to) => Math.ceil(n / to) * to;
  const due = t.remaining_due;
  const quick = [...new Set([due, round(due, 10 * step), round(due, 50 * step), round(due, 100 * step)])];
  $("quick-cash").innerHTML = quick.map((v) => `<button type="button" data-v="${v}">${money(v)}</button>`).join("");
}

async function payCash() {
  await act($("pay-cash"), async () => {
    const t = await checkout();
    renderCash(t);
    show("cash-view");
  });
}

async function takeCash(ev) {
  ev.preventDefault();
  const tendered = Number(String($("tendered").value).replace(/[^\d]/g, ""));
  if (!Number.isSafeInteger(tendered) || tendered <= 0) { say("Enter the cash received on the keypad, or tap an amount."); return; }
  await act($("cash-ok"), async () => {
    const id = ui.txn.txn_id;
    const t = await api("POST", `/transactions/${id}/payments`, { method: "cash", tendered });
    ui.txn = t;
    renderTxn();
    if (t.remaining_due > 0) {
      renderCash(t);
      say(`Paid ${money(t.paid)}; still to pay ${money(t.remaining_due)}. Take more cash or go back for QR.`, "info");
      return;
    }
    await finish(t.change_due);
  });
}

/** Undoes a captured cash payment on the open sale: the cash goes back to the customer. */
async function undoPayment(ev) {
  const b = ev.target.closest("button.undo");
  if (!b) return;
  await act(b, async () => {
    const p = await api("POST", `/payments/${b.dataset.pay}/cancel`);
    ui.txn = await api("GET", `/transactions/${ui.txn.txn_id}`);
    renderTxn();
    if (!$("cash-view").hidden) renderCash(ui.txn);
    say(`Hand back ${money(p.amount)} to the customer.`, "info");
  });
}

async function finish(change) {
  const id = ui.txn.txn_id;
  ui.txn = await api("POST", `/transactions/${id}/finalize`);
  await showReceipt(ui.txn, "Paid", "Change", change);
}

async function showReceipt(t, title, label, amount) {
  $("receipt-title").textContent = title;
  $("change-label").textContent = label;
  $("change").textContent = money(amount);
  $("receipt").textContent = await api("GET", `/receipts/${t.txn_id}?format=text`, undefined, { text: true });
  renderTxn();
  const paid = t.status === "PAID";
  // A sale with units returned takes only further returns (never a whole void or refund).
  const partly = (t.returned_lines ?? []).length > 0;
  $("receipt-void").hidden = !paid || partly;
  $("receipt-refund").hidden = !paid || partly;
  $("receipt-return").hidden = !paid;
  show("receipt-view");
  $("next").focus();
}

/** A past sale by its number: its receipt, with refund and void for a manager. */
async function openReceipt(id) {
  await act($("add"), async () => {
    const t = await api("GET", `/transactions/${encodeURIComponent(id)}`);
    if (isOpen(t)) { say(`Sale ${id} is still open${t.held_by ? " and on hold: recall it from Held sales" : ""}.`); return; }
    ui.txn = t;
    await showReceipt(t, `Sale ${t.txn_id}`, "Total", t.totals.total);
  });
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

/** Pays with stored value: a gift card (what is due, or its balance if less), a coupon
 *  (spent whole) or the customer's store credit. Short of rights at this till, the till says
 *  so (it asked the other tills) and the cashier tries again. */
async function payStored(button, method) {
  await act($(button), async () => {
    const card = $("gift-code").value.trim().toUpperCase();
    const label = { gift_card: "Gift card", coupon: "Coupon", store_credit: "Store credit" }[method];
    if (!card && method !== "store_credit") {
      say(`Scan or type the ${label.toLowerCase()}'s code first.`); $("gift-code").focus(); return;
    }
    const t = await checkout();
    const body = method === "store_credit" ? { method } : { method, card };
    ui.txn = await api("POST", `/transactions/${t.txn_id}/payments`, body);
    $("gift-code").value = "";
    const pay = ui.txn.payments[ui.txn.payments.length - 1];
    if (ui.txn.remaining_due > 0) {
      renderTxn();
      show("sale-view");
      say(`${label} paid ${money(pay.amount)}; still to pay ${money(ui.txn.remaining_due)}.`, "info");
      return;
    }
    await finish(ui.txn.change_due);
  });
}

const payGift = () => payStored("pay-gift", "gift_card");

function pollQr(paymentId) {
  clearTimeout(ui.qrTimer);
  ui.qrTimer = setTimeout(async () => {
    try {
      const p = await api("GET", `/payments/${paymentId}`);
      if (p.status === "CAPTURED") {
        ui.txn = await api("GET", `/transactions/${ui.txn.txn_id}`);
        if (ui.txn.remaining_due > 0) { renderTxn(); show("sale-view"); say(`QR paid ${money(p.amount)}; still to pay ${money(ui.txn.remaining_due)}.`, "info"); return; }
        await finish(ui.txn.change_due);
        return;
      }
      if (p.status === "PENDING") { pollQr(paymentId); return; }
      say(`The QR payment ${p.status === "EXPIRED" ? "timed out" : p.status === "FAILED" ? "was refused" : "was cancelled"}. Take cash or try QR again.`);
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
    if (ui.txn?.status === "PENDING_PAYMENT" && !captured(ui.txn).length) {
      ui.txn = await api("POST", `/transactions/${ui.txn.txn_id}/reopen`);
    }
    renderTxn();
    show("sale-view");
  });
}

/** Cancels the open sale (after a question; a manager when money was taken, which goes
 *  back to the customer) or voids a paid one (a manager). */
async function voidSale(button) {
  const t = ui.txn;
  if (!t) return;
  if (isOpen(t)) {
    // Gift card tenders on an open sale are released, not handed back.
    const paid = (t.paid ?? 0) - onCards(t);
    if (!paid) {
      const ok = await confirmDanger("Cancel this sale?",
        `${t.lines.length} line(s), total ${money(t.totals.total)}. The items are not sold.`, "Cancel the sale");
      if (!ok) return;
      await act(button, async () => {
        await api("POST", `/transactions/${t.txn_id}/void`, { reason: "cancelled at the till" });
        say("Sale cancelled.", "info");
        ui.txn = null;
        renderTxn();
      });
      return;
    }
    const approval = await askManager("Cancel a part-paid sale",
      `${money(paid)} was paid on sale ${t.txn_id}; it goes back to the customer.`);
    if (!approval) return;
    await act(button, async () => {
      await approved(() => api("POST", `/transactions/${t.txn_id}/void`, { reason: approval.reason, approval: approval.approval }));
      ui.txn = null;
      renderTxn();
      say(`Sale ${t.txn_id} cancelled. Hand back ${money(paid)} to the customer.`, "info");
    });
    return;
  }
  const approval = await askManager("Void this sale", `Void sale ${t.txn_id} of ${money(t.totals.total)} and return its items to stock.`);
  if (!approval) return;
  await act(button, async () => {
    ui.txn = await approved(() => api("POST", `/transactions/${t.txn_id}/void`, { reason: approval.reason, approval: approval.approval }));
    await showReceipt(ui.txn, `Sale ${t.txn_id} voided`, "Hand back", t.totals.total - onCards(t));
    say(`Sale ${t.txn_id} voided, approved by ${approval.approval.employee_id}.`, "info");
  });
}

/** Units of a paid sale handed back by line (a manager approves): each unit is worth its
 *  share of its line's total; the last unit back makes the sale refunded. */
async function returnItems(button) {
  const t = ui.txn;
  if (!t || t.status !== "PAID") { say("Only a paid sale takes returns."); return; }
  const back = new Map((t.returned_lines ?? []).map((l) => [l.line_no, l.quantity]));
  const left = (l) => l.quantity - (back.get(l.line_no) ?? 0);
  $("return-title").textContent = `Return items from sale ${t.txn_id}`;
  $("return-rows").innerHTML = t.lines.map((l) => `<label class="return-row">
      <span>${esc(l.name)} <span class="muted">× ${l.quantity}${back.get(l.line_no) ? `, ${back.get(l.line_no)} back already` : ""}</span></span>
      <input type="number" min="0" max="${left(l)}" value="0" inputmode="numeric" data-line="${l.line_no}"
        ${left(l) === 0 ? "disabled" : ""} aria-label="Units of ${esc(l.name)} to return"></label>`).join("");
  const d = $("return-dlg");
  const picked = await new Promise((resolve) => {
    d.onclose = () => resolve(d.returnValue === "ok");
    d.returnValue = "";
    d.showModal();
    d.querySelector("input:not([disabled])")?.focus();
  });
  if (!picked) return;
  const lines = [...$("return-rows").querySelectorAll("input[data-line]")]
    .map((i) => ({ line_no: Number(i.dataset.line), quantity: Math.trunc(Number(i.value) || 0) }))
    .filter((l) => l.quantity > 0);
  if (!lines.length) { say("Nothing to return: set how many units of a line come back."); return; }
  const units = lines.reduce((n, l) => n + l.quantity, 0);
  const approval = await askManager("Return items", `Return ${units} unit${units === 1 ? "" : "s"} from sale ${t.txn_id}.`);
  if (!approval) return;
  await act(button, async () => {
    const before = t.returned ?? 0;
    ui.txn = await approved(() => api("POST", `/transactions/${t.txn_id}/return`,
      { lines, reason: approval.reason, approval: approval.approval }));
    const handBack = (ui.txn.returned ?? 0) - before;
    await showReceipt(ui.txn, `Items returned from sale ${t.txn_id}`, "Hand back", handBack);
    say(`Returned ${units} unit${units === 1 ? "" : "s"}: hand back ${money(handBack)}.`, "info");
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
    await showReceipt(ui.txn, `Sale ${t.txn_id} refunded`, "Hand back", t.totals.total - onCards(t));
    say(`Sale ${t.txn_id} refunded: hand back ${money(t.totals.total - onCards(t))}${onCards(t) ? `; ${money(onCards(t))} goes back on the gift card, coupon or store credit` : ""}.`, "info");
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

// ---------------------------------------------------------------- loyalty customer

function openCustomer() {
  $("customer-phone").value = "";
  $("customer-rows").innerHTML = "";
  $("customer-dlg").showModal();
  $("customer-phone").focus();
}

async function findCustomer() {
  await act($("customer-find"), async () => {
    const rows = await api("GET", `/customers?phone=${encodeURIComponent($("customer-phone").value)}`);
    $("customer-rows").innerHTML = rows.length ? rows.map((c) => `<button type="button" data-cust="${esc(c.id)}">
        <span>${esc(c.name ?? c.id)} · ${esc(c.phone ?? "")}</span><strong>${c.points.toLocaleString("en-US")} points</strong></button>`).join("")
      : `<p class="muted">No customer with that number. A manager can add one in the back office.</p>`;
  });
}

async function pickCustomer(ev) {
  const b = ev.target.closest("button[data-cust]");
  if (!b || !isOpen(ui.txn)) return;
  await act(b, async () => {
    ui.txn = await api("POST", `/transactions/${ui.txn.txn_id}/customer`, { customer_id: b.dataset.cust });
    $("customer-dlg").close();
    renderTxn();
    say(`Points go to customer ${b.dataset.cust}.`, "info");
  });
}

// ---------------------------------------------------------------- hold and recall

async function holdSale() {
  const t = ui.txn;
  if (!isOpen(t)) return;
  await act($("hold"), async () => {
    await api("POST", `/transactions/${t.txn_id}/hold`);
    ui.txn = null;
    renderTxn();
    say(`Sale ${t.txn_id} is on hold. Recall it from Held sales.`, "info");
    await countHeld();
  });
}

async function countHeld() {
  const open = await api("GET", "/transactions/open");
  const held = open.filter((t) => t.held_by);
  $("held").textContent = held.length ? `Held sales (${held.length})` : "Held sales";
  return held;
}

async function showHeld() {
  await act($("held"), async () => {
    const held = await countHeld();
    $("held-rows").innerHTML = held.length ? held.map((t) => `<button type="button" data-recall="${esc(t.txn_id)}">
        <span>${esc(t.txn_id)} · ${t.lines.length} line(s) · held by ${esc(t.held_by)}</span><strong>${money(t.totals.total)}</strong></button>`).join("")
      : `<p class="muted">No sale is on hold.</p>`;
    $("held-list").showModal();
  });
}

async function recall(ev) {
  const b = ev.target.closest("button[data-recall]");
  if (!b) return;
  if (isOpen(ui.txn) && ui.txn.lines.length && !ui.txn.held_by) {
    say("Finish, hold or cancel the current sale before recalling another.");
    $("held-list").close();
    return;
  }
  await act(b, async () => {
    ui.txn = await api("POST", `/transactions/${b.dataset.recall}/recall`);
    $("held-list").close();
    renderTxn();
    show("sale-view");
    say(`Sale ${ui.txn.txn_id} recalled.`, "info");
    await countHeld();
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

/** Below this similarity a "not sure" candidate is not offered at all. */
const OFFER_FLOOR = 0.6;

async function identify() {
  const box = $("proposals");
  box.innerHTML = `<p class="muted">Looking...</p>`;
  await act($("identify"), async () => {
    const r = await api("POST", "/vision/recognize?k=3", await grabFrame());
    // Accepted: the first proposal is highlighted. Not sure: only close candidates are
    // offered for the cashier to pick, none highlighted, never added on their own.
    const sure = r.decision === "accepted";
    const offered = sure ? r.proposals : r.proposals.filter((p) => p.score >= OFFER_FLOOR);
    const rows = offered.map((p, i) => `<button class="${sure && i === 0 ? "best" : ""}" data-sku="${esc(p.sku)}">
          <span>${esc(p.name || p.sku)}</span><span class="score">${Math.round(Math.max(0, p.score) * 100)}%</span></button>`);
    const head = sure ? (r.source === "barcode" ? `<p class="muted">Read from its barcode ${esc(r.barcode)}.</p>` : "") : offered.length
      ? `<p>Not sure what this is. If it is one of these, pick it; otherwise type its barcode.</p>`
      : r.proposals.length ? `<p>This product is not recognised. Type or scan its barcode.</p>`
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

/** A scanner "types" a barcode as a burst of digits ending in Enter. On the sale screen the
 *  digits go to the barcode field wherever the focus is, so the burst lands there whole and
 *  its Enter adds the item. On every other screen (cash, QR, receipt) keyboard digits are
 *  a scan too, never an amount: they are collected and refused with a sentence. Amounts
 *  come from the on-screen keypad only. */
const stray = { digits: "" };
function wedge(ev) {
  if (document.querySelector("dialog[open]")) return;
  if (ev.ctrlKey || ev.altKey || ev.metaKey) return;
  const onSale = !$("sale-view").hidden;
  const payingOrDone = !$("cash-view").hidden || !$("qr-view").hidden || !$("receipt-view").hidden;
  if (payingOrDone) {
    if (/^\d$/.test(ev.key)) { ev.preventDefault(); stray.digits += ev.key; return; }
    if (ev.key === "Enter" && stray.digits) {
      ev.preventDefault();
      const code = stray.digits;
      stray.digits = "";
      say(!$("receipt-view").hidden
        ? `Scanned ${code}: tap Next customer first to start a new sale.`
        : `Scanned ${code} while taking payment: it was not added. Go back to the sale to add it.`);
    }
    return;
  }
  if (!onSale) return;
  const t = ev.target;
  if (t instanceof HTMLInputElement || t instanceof HTMLTextAreaElement) return;
  if (!/^\d$/.test(ev.key)) return;
  ev.preventDefault();
  const field = $("barcode");
  field.focus();
  field.value += ev.key;
}

// ---------------------------------------------------------------- finding products

async function toggleFinder() {
  const f = $("finder");
  f.hidden = !f.hidden;
  if (f.hidden) { $("barcode").focus(); return; }
  await act($("find-toggle"), async () => renderGrid(await api("GET", "/catalog/favourites"), "No favourites are set for this till. Search by name."));
  $("find").focus();
}

function renderGrid(items, none) {
  $("grid").innerHTML = items.length ? items.map((i) => `<button type="button" data-code="${esc(i.barcodes[0] ?? "")}" ${i.barcodes.length && i.active ? "" : "disabled"}>
      <span>${esc(i.name)}</span><small>${money(i.price)} · ${i.stock.toLocaleString("en-US")} in stock</small></button>`).join("")
    : `<p class="muted">${esc(none)}</p>`;
}

/** A search; a scanner's burst into the search field is a scan, not a search. */
async function findProducts(ev) {
  ev.preventDefault();
  const q = $("find").value.trim();
  $("find").value = "";
  if (/^\d{6,14}$/.test(q)) { await addBarcode(q); return; }
  if (!q) return;
  await act(null, async () => renderGrid(await api("GET", `/catalog/search?q=${encodeURIComponent(q)}`), `Nothing called "${q}". Try part of the name.`));
}

async function pickFromGrid(ev) {
  const b = ev.target.closest("button[data-code]");
  if (!b || !b.dataset.code) return;
  await addBarcode(b.dataset.code);
}

// ---------------------------------------------------------------- back office

const office = { tab: "drawer", stream: null };

function openOffice() {
  for (const t of document.querySelectorAll("#tabs .mgr")) t.hidden = !isManager();
  // The date fields start empty: the till answers for the store's own day (its time zone,
  // not this browser's).
  show("office-view");
  openTab(office.tab === "drawer" || isManager() ? office.tab : "drawer");
}

function closeOffice() {
  stopEnrolCamera();
  show("sale-view");
}

async function openTab(name) {
  office.tab = name;
  for (const b of document.querySelectorAll("#tabs .tab")) b.classList.toggle("active", b.dataset.tab === name);
  for (const p of document.querySelectorAll("#office-view .panel")) p.hidden = p.id !== `tab-${name}`;
  if (name !== "enrol") stopEnrolCamera();
  const load = { drawer: loadDrawer, sales: loadSales, reports: loadReports, staff: loadStaff, tills: loadWaiting }[name];
  if (load) await act(null, load);
}

const figures = (rows) => `<dl class="figures">${rows.map(([k, v, cls = ""]) => `<dt class="${cls}">${esc(k)}</dt><dd class="${cls}">${esc(v)}</dd>`).join("")}</dl>`;

async function loadDrawer() {
  $("drawer-state").innerHTML = `<p class="muted">Counting...</p>`; // never yesterday's figures
  const d = await api("GET", "/cash/drawer");
  if (!d.shift) {
    $("drawer-state").innerHTML = `<p><strong>No shift is open.</strong> Count the float into the drawer, type it, and open the shift.</p>`;
  } else {
    const s = d.summary;
    $("drawer-state").innerHTML = `<p>Shift ${esc(d.shift.shift_id)}, opened by ${esc(d.shift.opened_by)} at ${new Date(d.shift.opened_ms).toLocaleTimeString()}.</p>` + figures([
      ["Float", money(s.float)], ["Cash sales", money(s.cash_sales)], ["Cash handed back", money(-s.cash_returned)],
      ["Paid in", money(s.pay_ins)], ["Paid out", money(-s.pay_outs)], ["Drawer should hold", money(s.expected), "strong"],
      ["Sales", String(s.sales)], ["Drawer opened without a sale", String(d.shift.no_sales)]]);
  }
  $("shift-open").disabled = !!d.shift;
  for (const id of ["pay-in", "pay-out", "no-sale", "shift-close"]) $(id).disabled = !d.shift;
}

const amountOf = (id) => Number(String($(id).value).replace(/[^\d]/g, ""));

/** Runs a request that a manager must approve: their own session, or their PIN. */
async function asManager(title, text, fn) {
  if (isManager()) return fn(undefined);
  const a = await askManager(title, text);
  if (!a) return undefined;
  return approved(() => fn(a.approval));
}

async function drawerAction(ev) {
  const b = ev.target.closest("button");
  if (!b || !b.id) return;
  const amount = amountOf("drawer-amount");
  const reason = $("drawer-reason").value.trim();
  await act(b, async () => {
    if (b.id === "shift-open") {
      await api("POST", "/cash/shift/open", { float: amount });
      say(`Shift opened with a float of ${money(amount)}.`, "info");
    } else if (b.id === "pay-in" || b.id === "pay-out") {
      const out = b.id === "pay-out";
      const done = await asManager(out ? "Pay out" : "Pay in", `${out ? "Take" : "Put"} ${money(amount)} ${out ? "out of" : "into"} the drawer: ${reason}`,
        (approval) => api("POST", `/cash/${b.id}`, { amount, reason, approval }));
      if (done) say(`${out ? "Paid out" : "Paid in"} ${money(amount)}.`, "info");
    } else if (b.id === "no-sale") {
      await api("POST", "/cash/no-sale", { reason: reason || "no reason given" });
      say("Drawer opened (recorded).", "info");
    } else if (b.id === "shift-close") {
      const c = await asManager("Close the shift", `Counted ${money(amount)} in the drawer.`,
        (approval) => api("POST", "/cash/shift/close", { counted: amount, approval }));
      if (c) {
        const x = c.shift.closed;
        $("drawer-state").innerHTML = `<p><strong>Shift closed.</strong></p>` + figures([
          ["Drawer should hold", money(x.expected)], ["Counted", money(x.counted)],
          [x.difference < 0 ? "Short" : x.difference > 0 ? "Over" : "Difference", money(Math.abs(x.difference)), "strong"]]);
        $("drawer-amount").value = ""; $("drawer-reason").value = "";
        $("shift-open").disabled = false;
        for (const id of ["pay-in", "pay-out", "no-sale", "shift-close"]) $(id).disabled = true;
        return;
      }
    }
    $("drawer-amount").value = ""; $("drawer-reason").value = "";
    await loadDrawer();
  });
}

const STATUS_WORDS = { PAID: "paid", VOID: "voided", REFUND_REQUESTED: "refund asked", REFUNDED: "refunded" };

async function loadSales() {
  const q = new URLSearchParams();
  if ($("sales-date").value) q.set("date", $("sales-date").value);
  if ($("sales-q").value.trim()) q.set("q", $("sales-q").value.trim());
  const rows = await api("GET", `/transactions?${q}`);
  $("sales-table").tBodies[0].innerHTML = rows.length ? rows.map((r) => `<tr data-txn="${esc(r.txn_id)}">
      <td>${esc(r.txn_id)}</td><td>${new Date(r.paid_at).toLocaleTimeString()}</td><td>${esc(r.cashier)}</td>
      <td>${esc(r.methods.join(" + "))}</td><td class="num">${money(r.total)}</td><td>${STATUS_WORDS[r.status] ?? esc(r.status)}</td>
      <td><button type="button" class="small" data-act="open">Receipt</button>${r.status === "REFUND_REQUESTED" && isManager()
        ? ` <button type="button" class="small" data-act="approve">Refund</button> <button type="button" class="small danger" data-act="decline">Decline</button>` : ""}</td></tr>`).join("")
    : `<tr><td colspan="7" class="muted">No sales.</td></tr>`;
}

async function salesAction(ev) {
  const b = ev.target.closest("button[data-act]");
  const id = ev.target.closest("tr[data-txn]")?.dataset.txn;
  if (!b || !id) return;
  if (b.dataset.act === "open") { await openReceipt(id); return; }
  await act(b, async () => {
    if (b.dataset.act === "approve") {
      const t = await api("POST", `/transactions/${id}/refund/approve`, {});
      say(`Sale ${id} refunded: hand back ${money(t.totals.total - onCards(t))}${onCards(t) ? `; ${money(onCards(t))} goes back on the gift card, coupon or store credit` : ""}.`, "info");
    } else {
      await api("POST", `/transactions/${id}/refund/decline`, { reason: "declined at the back office" });
      say(`The refund of sale ${id} was declined.`, "info");
    }
    await loadSales();
  });
}

async function loadReports() {
  const date = $("reports-date").value ? `?date=${$("reports-date").value}` : "";
  const [e, cashiers, low] = await Promise.all([api("GET", `/reports/end-of-day${date}`),
    api("GET", `/reports/cashiers${date}`), api("GET", "/reports/inventory?low_only=true")]);
  const pays = Object.entries(e.payments).map(([m, v]) => [m === "cash" ? "Cash" : m === "qr" ? "QR" : m === "gift_card" ? "Gift card" : m, money(v)]);
  const shifts = e.shifts.map((x) => [`Shift ${x.shift.shift_id}: counted ${money(x.shift.closed.counted)} of ${money(x.summary.expected)}`,
    x.shift.closed.difference ? `${x.shift.closed.difference < 0 ? "short" : "over"} ${money(Math.abs(x.shift.closed.difference))}` : "exact"]);
  $("eod").innerHTML = figures([["Sales", e.transactions.toLocaleString("en-US")], ["Net sales", money(e.total_sales), "strong"],
    ["Tax", money(e.tax)], ["Discounts", money(e.discounts)], ["Items", e.items.toLocaleString("en-US")], ...pays,
    ["Voided", `${e.voids} (${money(e.voided_value)})`], ["Refunded", `${e.refunds} (${money(e.refunded_value)})`],
    ["Returns", `${e.returns ?? 0} (${money(e.returned_value ?? 0)})`], ...shifts]);
  $("cashier-table").tBodies[0].innerHTML = cashiers.map((c) => `<tr><td>${esc(c.cashier)}</td><td class="num">${c.transactions}</td>
    <td class="num">${money(c.total)}</td><td class="num">${money(c.average)}</td><td class="num">${c.per_hour.toFixed(1)}</td></tr>`).join("")
    || `<tr><td colspan="5" class="muted">No sales.</td></tr>`;
  $("low-table").tBodies[0].innerHTML = low.map((l) => `<tr><td>${esc(l.name)}</td><td class="num">${l.level}</td><td class="num">${l.threshold}</td></tr>`).join("")
    || `<tr><td colspan="3" class="muted">Nothing is low.</td></tr>`;
}

async function itemOf(text) {
  const v = text.trim();
  return api("GET", /^\d{6,14}$/.test(v) ? `/catalog/items?barcode=${v}` : `/catalog/items?sku=${encodeURIComponent(v.toUpperCase())}`);
}

async function stockAction(ev) {
  const b = ev.target.closest("button");
  if (!b) return;
  await act(b, async () => {
    const item = await itemOf($("stock-item").value);
    const qty = amountOf("stock-qty");
    if (b.id === "stock-receive") {
      const supplier = $("stock-supplier").value.trim();
      if (!supplier) { say("Name the supplier the goods came from."); return; }
      const [after] = await api("POST", "/inventory/receive", { supplier, lines: [{ sku: item.sku, quantity: qty }] });
      $("stock-result").textContent = `Received ${qty} × ${item.name}: ${after.stock} on hand.`;
    } else {
      const [c] = await api("POST", "/inventory/count", { counts: [{ sku: item.sku, counted: qty }] });
      $("stock-result").textContent = `${item.name}: system ${c.system}, counted ${c.counted}` +
        (c.shrinkage ? `, ${c.shrinkage > 0 ? "missing" : "extra"} ${Math.abs(c.shrinkage)}${c.flagged ? " (flagged for review)" : ""}.` : ", no difference.");
    }
    $("stock-qty").value = "";
  });
}

async function findCustomers(ev) {
  ev.preventDefault();
  await act(null, async () => {
    const rows = await api("GET", `/customers?phone=${encodeURIComponent($("cust-phone").value)}`);
    $("cust-rows").innerHTML = rows.length ? `<table class="office"><tbody>${rows.map((c) => `<tr><td>${esc(c.name ?? c.id)}</td>
        <td>${esc(c.phone ?? "")}</td><td class="num">${c.points.toLocaleString("en-US")} points</td></tr>`).join("")}</tbody></table>`
      : `<p class="muted">No customer with that number.</p>`;
  });
}

async function newCustomer(ev) {
  ev.preventDefault();
  const phone = $("cust-new-phone").value.trim();
  const digits = phone.replace(/\D/g, "");
  if (digits.length < 6) { say("Type the customer's phone number (at least 6 digits)."); return; }
  await act(null, async () => {
    const c = await api("PUT", `/customers/C-${digits}`, { name: $("cust-name").value.trim() || undefined, phone });
    say(`Customer ${c.name ?? c.id} saved.`, "info");
    $("cust-name").value = ""; $("cust-new-phone").value = "";
  });
}

// ---------------------------------------------------------------- new tills

async function loadWaiting() {
  const rows = await api("GET", "/enrolment/waiting");
  $("waiting-table").tBodies[0].innerHTML = rows.length
    ? rows.map((w) => `<tr><td class="code">${esc(w.code)}</td><td>${esc(w.address)}</td>
        <td><button type="button" data-code="${esc(w.code)}" data-addr="${esc(w.address)}">Admit</button></td></tr>`).join("")
    : `<tr><td colspan="3" class="muted">No till is waiting on this network. Type the code and address its screen shows.</td></tr>`;
}

/** Admits the waiting till showing `code`: a manager confirms with their ID and PIN. */
async function admitTill(code, address) {
  code = code.trim().toUpperCase();
  if (!/^[A-Z2-9]{4}-[A-Z2-9]{4}$/.test(code)) {
    say("Type the code the new till shows, like ABCD-EFGH");
    return;
  }
  const a = await askManager(`Admit the till showing ${code}`,
    "Check that the new till's screen shows this code, then confirm with a manager's ID and PIN.");
  if (!a) return;
  const body = { code, employee_id: a.approval.employee_id, pin: a.approval.pin };
  if (address.trim()) body.address = address.trim();
  const r = await approved(() => api("POST", "/enrolment/approve", body));
  $("join-result").textContent = `Till ${r.terminal} admitted (code ${r.code} at ${r.address}): it is joining the store.`;
  say(`Till ${r.terminal} admitted: it is joining the store`, "info");
  $("join-code").value = "";
  $("join-address").value = "";
  await loadWaiting();
}

async function loadStaff() {
  const rows = await api("GET", "/cashiers");
  $("staff-table").tBodies[0].innerHTML = rows.map((a) => `<tr data-emp="${esc(a.employee_id)}"><td>${esc(a.employee_id)}</td>
    <td>${esc(a.name)}</td><td>${esc(a.role)}</td><td>${a.locked_until ? `locked until ${new Date(a.locked_until).toLocaleTimeString()}` : "active"}</td>
    <td>${a.locked_until ? `<button type="button" class="small" data-unlock="1">Unlock</button>` : ""}</td></tr>`).join("");
}

async function staffAction(ev) {
  const b = ev.target.closest("button[data-unlock]");
  const id = ev.target.closest("tr[data-emp]")?.dataset.emp;
  if (!b || !id) return;
  await act(b, async () => {
    await api("POST", `/cashiers/${encodeURIComponent(id)}/unlock`, {});
    say(`${id} can sign in again.`, "info");
    await loadStaff();
  });
}

async function startEnrolCamera() {
  if (!navigator.mediaDevices?.getUserMedia) { say("This browser cannot use a camera here."); return; }
  try {
    office.stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch { say("The camera could not be opened. Check it is connected and allowed."); return; }
  $("enrol-video").srcObject = office.stream;
  $("enrol-video").hidden = false;
}

function stopEnrolCamera() {
  if (office.stream) for (const t of office.stream.getTracks()) t.stop();
  office.stream = null;
  $("enrol-video").hidden = true;
}

async function enrolShot() {
  await act($("enrol-shot"), async () => {
    const item = await itemOf($("enrol-item").value);
    const v = $("enrol-video");
    if (!office.stream || !v.videoWidth) { say("Open the camera and hold the product up to it first."); return; }
    const c = $("frame");
    c.width = v.videoWidth; c.height = v.videoHeight;
    c.getContext("2d").drawImage(v, 0, 0);
    const blob = await new Promise((resolve) => c.toBlob(resolve, "image/jpeg", 0.92));
    const r = await api("POST", `/vision/skus/${encodeURIComponent(item.sku)}/photos`, blob);
    $("enrol-state").textContent = `${item.name}: ${r.photos ?? "one more"} photo(s) enrolled.`;
  });
}

// ---------------------------------------------------------------- wiring

function keypads(root = document) {
  for (const pad of root.querySelectorAll(".keypad")) {
    const target = $(pad.dataset.target);
    const keys = ["1", "2", "3", "4", "5", "6", "7", "8", "9", pad.dataset.decimal ? "." : "C", "0", "<"];
    pad.innerHTML = keys
      .map((k) => `<button type="button" data-k="${k}">${k === "<" ? "&larr;" : k}</button>`).join("");
    pad.addEventListener("click", (ev) => {
      const k = ev.target.closest("button")?.dataset.k;
      if (!k) return;
      if (k === "C") target.value = "";
      else if (k === "<") target.value = target.value.slice(0, -1);
      else if (target.value.length < 15) target.value += k;
      if (!target.readOnly) target.focus();
    });
  }
}

function nextCustomer() {
  ui.txn = null;
  renderTxn();
  show("sale-view");
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
  $("sale-payments").addEventListener("click", undoPayment);
  $("cash-payments").addEventListener("click", undoPayment);
  $("pay-cash").addEventListener("click", payCash);
  $("pay-qr").addEventListener("click", payQr);
  $("pay-gift").addEventListener("click", payGift);
  $("pay-coupon").addEventListener("click", () => payStored("pay-coupon", "coupon"));
  $("pay-credit").addEventListener("click", () => payStored("pay-credit", "store_credit"));
  $("qr-cancel").addEventListener("click", cancelQr);
  $("cash-form").addEventListener("submit", takeCash);
  $("cash-back").addEventListener("click", backToSale);
  $("quick-cash").addEventListener("click", (e) => { const v = e.target.closest("button")?.dataset.v; if (v) $("tendered").value = v; });
  $("void").addEventListener("click", () => voidSale($("void")));
  $("hold").addEventListener("click", holdSale);
  $("held").addEventListener("click", showHeld);
  $("held-rows").addEventListener("click", recall);
  $("new-sale").addEventListener("click", () => {
    // An open sale with items is never dropped silently: pay, hold or cancel it.
    if (isOpen(ui.txn) && ui.txn.lines.length) {
      say("This sale is still open. Take payment, hold it, or cancel it before starting a new one.");
      return;
    }
    nextCustomer();
  });
  $("next").addEventListener("click", nextCustomer);
  $("print").addEventListener("click", () => window.print());
  $("camera-toggle").addEventListener("click", () => (ui.stream ? stopCamera() : startCamera()));
  $("camera-close").addEventListener("click", stopCamera);
  $("identify").addEventListener("click", identify);
  $("proposals").addEventListener("click", chooseProposal);
  $("receipt-void").addEventListener("click", () => voidSale($("receipt-void")));
  $("receipt-refund").addEventListener("click", () => refundSale($("receipt-refund")));
  $("receipt-return").addEventListener("click", () => returnItems($("receipt-return")));
  $("find-toggle").addEventListener("click", toggleFinder);
  $("customer").addEventListener("click", openCustomer);
  $("customer-find").addEventListener("click", findCustomer);
  $("customer-form").addEventListener("submit", (e) => { if (e.submitter?.value !== "cancel") { e.preventDefault(); findCustomer(); } });
  $("customer-rows").addEventListener("click", pickCustomer);
  $("find-form").addEventListener("submit", findProducts);
  $("grid").addEventListener("click", pickFromGrid);
  $("office").addEventListener("click", openOffice);
  $("office-close").addEventListener("click", closeOffice);
  $("tabs").addEventListener("click", (e) => { const t = e.target.closest("button[data-tab]"); if (t) openTab(t.dataset.tab); });
  $("drawer-form").addEventListener("click", drawerAction);
  $("drawer-form").addEventListener("submit", (e) => e.preventDefault());
  $("sales-form").addEventListener("submit", (e) => { e.preventDefault(); act(null, loadSales); });
  $("sales-table").addEventListener("click", salesAction);
  $("reports-form").addEventListener("submit", (e) => { e.preventDefault(); act(null, loadReports); });
  $("stock-form").addEventListener("click", stockAction);
  $("stock-form").addEventListener("submit", (e) => e.preventDefault());
  $("cust-form").addEventListener("submit", findCustomers);
  $("cust-new").addEventListener("submit", newCustomer);
  $("staff-table").addEventListener("click", staffAction);
  $("join-form").addEventListener("submit", (e) => {
    e.preventDefault();
    act($("join-admit"), () => admitTill($("join-code").value, $("join-address").value));
  });
  $("waiting-table").addEventListener("click", (e) => {
    const b = e.target.closest("button[data-code]");
    if (b) act(b, () => admitTill(b.dataset.code, b.dataset.addr));
  });
  $("sync-now").addEventListener("click", () => act($("sync-now"), async () => {
    const r = await api("POST", "/sync/now");
    $("sync-result").textContent = `Till ${r.leader} is syncing with head office now.`;
    say("The store is syncing with head office", "info");
  }));
  $("enrol-camera").addEventListener("click", startEnrolCamera);
  $("enrol-shot").addEventListener("click", enrolShot);

  await refreshStatus();
  setInterval(refreshStatus, 2000);
  if (ui.token && ui.user) {
    await enter(); // an expired session answers 401 and returns to sign-in
  } else {
    show("login-view");
    $("login-id").focus();
  }
}

init();
