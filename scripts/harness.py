"""Shared by the real-process store harnesses (`netns-store.py`, `netns-enrol.py`,
`rolling-upgrade.py`): network namespaces on a bridge, HTTP calls (optionally inside a
namespace), a till process, waits, cashiers who remember
what they were told, an observer of leaders and watermarks, and the simulator's invariants
checked against a real cloud."""

import json
import os
import shutil
import signal
import subprocess
import threading
import time

# Bounds: every wait gives up after this many seconds.
WAIT_S = 90


class SetupError(Exception):
    pass


def run(*args, check=True, **kw):
    p = subprocess.run(list(args), capture_output=True, text=True, **kw)
    if check and p.returncode != 0:
        raise SetupError(f"{' '.join(args)}: {p.stderr.strip() or p.stdout.strip()}")
    return p


def http(method, url, token=None, body=None, ns=None):
    """One HTTP call (inside namespace `ns` if given): (status, parsed JSON or None)."""
    cmd = ["curl", "-s", "-m", "10", "-X", method, "-w", "\n%{http_code}", url]
    if ns:
        cmd = ["ip", "netns", "exec", ns] + cmd
    if token:
        cmd += ["-H", f"authorization: Bearer {token}"]
    if body is not None:
        cmd += ["-H", "content-type: application/json", "-d", json.dumps(body)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    out, _, code = p.stdout.rpartition("\n")
    try:
        status = int(code)
    except ValueError:
        return 0, None
    try:
        return status, json.loads(out) if out else None
    except json.JSONDecodeError:
        return status, None


def ip(*args, check=True):
    return run("ip", *args, check=check)


class Net:
    """A hub namespace with a bridge, and one namespace per node on it."""

    def __init__(self, names):
        tag = os.getpid() % 100000
        self.hub = f"tn{tag}h"
        self.nodes = {}
        self.ports = {}
        ip("netns", "add", self.hub)
        ip("-n", self.hub, "link", "set", "lo", "up")
        ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        ip("-n", self.hub, "link", "set", "br0", "up")
        for i, (name, addr) in enumerate(names):
            ns = f"tn{tag}{name}"
            port = f"v{tag}p{i}"
            ip("netns", "add", ns)
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", port,
               "netns", self.hub)
            ip("-n", self.hub, "link", "set", port, "master", "br0")
            ip("-n", self.hub, "link", "set", port, "up")
            ip("-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "multicast", "on", "up")
            self.nodes[name] = ns
            self.ports[name] = port

    def port(self, name, up):
        ip("-n", self.hub, "link", "set", self.ports[name], "up" if up else "down")

    def blackhole(self, name, on):
        ns = self.nodes[name]
        if on:
            run("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "eth0", "root",
                "blackhole")
        else:
            run("ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", "eth0", "root",
                check=False)

    def close(self):
        for ns in list(self.nodes.values()) + [self.hub]:
            ip("netns", "del", ns, check=False)


class Till:
    """One till process: its config, data folder and log; its API at `api_url` (inside
    namespace `ns` if given)."""

    def __init__(self, tid, config, data, log, api_url, ns=None, args=(), env=None):
        self.id, self.config, self.data, self.log = tid, config, data, log
        self.api_url, self.ns, self.args = api_url, ns, list(args)
        self.env = dict(env or {})
        self.proc = None

    def start(self, binary):
        cmd = [binary, "terminal", "--demo", "--config", str(self.config),
               "--data-dir", str(self.data)] + self.args
        if self.ns:
            cmd = ["ip", "netns", "exec", self.ns] + cmd
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(self.log, "a"),
                                     env={**os.environ, "RUST_LOG": "warn", **self.env})

    def up(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        if self.up():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def term(self, within=30):
        """A planned stop (SIGTERM, as systemd sends); answers the exit code."""
        if not self.up():
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=within)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise SetupError(f"till {self.id} did not stop within {within} s of SIGTERM")

    def api(self, method, path, token=None, body=None):
        return http(method, self.api_url + path, token, body, self.ns)

    def status(self):
        s, b = self.api("GET", "/api/v1/status")
        return b if s == 200 else None


def wait(what, cond, within=WAIT_S):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.2)
    raise SetupError(f"timed out after {within} s waiting for {what}")


def leader(among, not_=None):
    """The leader every till in `among` agrees on (other than `not_`)."""
    def agreed():
        ls = {((t.status() or {}).get("raft") or {}).get("leader") for t in among}
        if len(ls) == 1:
            l = ls.pop()
            if l is not None and l != not_:
                return l
        return None
    return wait("the tills to agree on a leader", agreed)


class Observer(threading.Thread):
    """Polls every till and the cloud: leaders per term, watermarks per origin.
    `cloud_get(path, token)` calls the cloud."""

    def __init__(self, tills, cloud_get, store_token, every_s=0.3):
        super().__init__(daemon=True)
        self.tills, self.cloud_get, self.token, self.every = tills, cloud_get, store_token, every_s
        self.leaders = {}  # term -> set of tills that said they lead it
        self.watermarks = {}  # origin -> highest contiguous seen
        self.backwards = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            for t in self.tills:
                s = t.status() if t.up() else None
                raft = (s or {}).get("raft") or {}
                if raft.get("leader") == t.id and raft.get("term") is not None:
                    self.leaders.setdefault(raft["term"], set()).add(t.id)
            code, marks = self.cloud_get("/api/v1/sync/watermarks", self.token)
            if code == 200 and isinstance(marks, list):
                for m in marks:
                    o, c = m["origin"], m["contiguous"]
                    if c < self.watermarks.get(o, 0):
                        self.backwards.append((o, self.watermarks[o], c))
                    self.watermarks[o] = max(c, self.watermarks.get(o, 0))
            time.sleep(self.every)


class Cashiers:
    """Sells one unit of a rotating product per sale; remembers what was acknowledged."""

    def __init__(self, barcodes):
        self.barcodes = barcodes  # [(barcode, sku)]
        self.next = 0
        self.acked = []  # (till, txn_id, total, sku, monotonic time)
        self.returned = []  # (till, txn_id, sku): sales whose one unit came back
        self.lock = threading.Lock()

    def login(self, till, who=("E001", "1111")):
        s, login = till.api("POST", "/api/v1/auth/login",
                            body={"employee_id": who[0], "pin": who[1]})
        if s != 200:
            raise SetupError(f"login on till {till.id}: {s} {login}")
        return login["token"]

    def sell_one(self, till, tok):
        with self.lock:
            barcode, sku = self.barcodes[self.next % len(self.barcodes)]
            self.next += 1
        ok = lambda s, r: 200 <= s < 300 and r is not None
        s, txn = till.api("POST", "/api/v1/transactions", tok)
        if not ok(s, txn):
            raise SetupError(f"till {till.id} create: {s} {txn}")
        tid = txn["txn_id"]
        for step, body in [("items", {"barcode": barcode}), ("checkout", None)]:
            s, r = till.api("POST", f"/api/v1/transactions/{tid}/{step}", tok, body)
            if not ok(s, r):
                raise SetupError(f"till {till.id} {step}: {s} {r}")
        total = r["totals"]["total"]
        s, r = till.api("POST", f"/api/v1/transactions/{tid}/payments", tok,
                        {"method": "cash", "tendered": total})
        if not ok(s, r):
            raise SetupError(f"till {till.id} pay: {s} {r}")
        s, done = till.api("POST", f"/api/v1/transactions/{tid}/finalize", tok)
        if s == 200 and (done or {}).get("status") == "PAID":
            with self.lock:
                self.acked.append((till.id, tid, total, sku, time.monotonic()))
            return tid
        raise SetupError(f"till {till.id} finalize: {s} {done}")

    def return_whole(self, till, tok, tid, sku):
        """Returns the one unit of sale `tid` (a manager approves): the sale becomes REFUNDED
        and the unit goes back into stock."""
        s, r = till.api("POST", f"/api/v1/transactions/{tid}/return", tok,
                        {"lines": [{"line_no": 1, "quantity": 1}], "reason": "changed mind",
                         "approval": {"employee_id": "M001", "pin": "9999"}})
        if s == 200 and (r or {}).get("status") == "REFUNDED":
            with self.lock:
                self.returned.append((till.id, tid, sku))
            return True
        raise SetupError(f"till {till.id} return of {tid}: {s} {r}")

    def sell(self, till, n, who=("E001", "1111")):
        tok = self.login(till, who)
        for _ in range(n):
            self.sell_one(till, tok)


def check(tills, cash, statuses, fleet, obs, opening, cloud_get, admin_token):
    """The simulator's invariants against the real cloud: `[(name, ok, detail)]`."""
    v = []
    # 1. No acknowledged sale lost: every till has every acknowledged sale, PAID.
    missing = []
    returned = {r[1] for r in cash.returned}
    for t in tills:
        s, login = t.api("POST", "/api/v1/auth/login", body={"employee_id": "E002", "pin": "2222"})
        tok = (login or {}).get("token")
        for a in cash.acked:
            s, txn = t.api("GET", f"/api/v1/transactions/{a[1]}", tok)
            want = "REFUNDED" if a[1] in returned else "PAID"
            if s != 200 or txn.get("status") != want:
                missing.append((t.id, a[1]))
    v.append(("no_acknowledged_sale_lost", not missing,
              f"{len(cash.acked)} acknowledged sales on {len(tills)} tills"
              + (f" ({len(returned)} returned, REFUNDED everywhere)" if returned else "")
              + (f"; missing {missing[:3]}" if missing else "")))
    # 2. Exactly once in the cloud: ledger events = events held; report counts each sale once.
    held = statuses[0]["events"]
    day = lambda d: time.strftime("%Y-%m-%d", time.gmtime(time.time() + d * 86400))
    s, rep = cloud_get(f"/api/v1/reports/sales?store=S001&from={day(-1)}&to={day(1)}&group=month",
                       admin_token)
    totals = (rep or {}).get("totals") or {}
    v.append(("exactly_once_in_the_cloud",
              fleet["events"] == held and totals.get("transactions") == len(cash.acked),
              f"ledger {fleet['events']} events of {held} held; report "
              f"{totals.get('transactions')} sales of {len(cash.acked)} acknowledged"))
    # 3. Identical CRDT state: version vectors (checked at convergence) and stock agree.
    stocks = []
    for t in tills:
        s, login = t.api("POST", "/api/v1/auth/login", body={"employee_id": "E002", "pin": "2222"})
        s, lines = t.api("GET", "/api/v1/reports/inventory", (login or {}).get("token"))
        stocks.append({l["sku"]: l["level"] for l in (lines or [])})
    same = all(s == stocks[0] for s in stocks) and len(
        {json.dumps(s["version_vector"], sort_keys=True) for s in statuses}) == 1
    v.append(("identical_crdt_state", same, f"{len(tills)} tills at {held} events"))
    # 4. At most one leader per term.
    two = {term: ids for term, ids in obs.leaders.items() if len(ids) > 1}
    v.append(("at_most_one_leader_per_term", not two,
              f"{len(obs.leaders)} terms seen" + (f"; two leaders {two}" if two else "")))
    # 5. Inventory = opening stock - sales (one unit each) + returns.
    sold = {}
    for a in cash.acked:
        sold[a[3]] = sold.get(a[3], 0) + 1
    for r in cash.returned:
        sold[r[2]] = sold.get(r[2], 0) - 1
    wrong = [(sku, stocks[0].get(sku), opening.get(sku, 0) - n) for sku, n in sold.items()
             if stocks[0].get(sku) != opening.get(sku, 0) - n]
    v.append(("inventory_is_stock_minus_sales_plus_adjustments", not wrong,
              f"{len(sold)} products agree" if not wrong else f"wrong {wrong[:3]}"))
    # 6. Cloud totals = store totals.
    total = sum(a[2] for a in cash.acked)
    v.append(("cloud_totals_equal_store_totals", totals.get("gross") == total,
              f"cloud {totals.get('gross')} gross; store {total}"))
    # 7. Watermarks never moved backwards.
    v.append(("watermark_never_moves_backwards", not obs.backwards,
              f"{len(obs.watermarks)} watermarks only grew" if not obs.backwards
              else f"moved back {obs.backwards[:3]}"))
    return v


def converged(tills, fleet):
    """Every till's statuses when all hold the same events and the cloud holds them too."""
    ss = [t.status() for t in tills]
    if not all(ss):
        return None
    vvs = [json.dumps(s["version_vector"], sort_keys=True) for s in ss]
    f = fleet()
    if len(set(vvs)) == 1 and f and f["events"] == ss[0]["events"]:
        return ss
    return None


def run_in_namespaces(tag, names, scenario, keep, all_held, log_lines=15):
    """Runs `scenario(work, net, tills, others)` on a fresh `Net` of `names` and a work
    folder, prints its verdicts `[(name, ok, detail)]`, and always cleans up (tills killed,
    other processes killed, namespaces deleted, the folder removed unless `keep` or
    TILLMESH_NETNS_KEEP). Answers the exit code: 0 all held, 1 one failed, 2 set-up failed."""
    import sys
    import tempfile
    from pathlib import Path
    work = Path(tempfile.mkdtemp(prefix=f"tillmesh-{tag}-"))
    net, tills, others = None, [], []
    try:
        net = Net(names)
        verdicts = scenario(work, net, tills, others)
        width = max(len(n) for n, _, _ in verdicts)
        for name, ok, detail in verdicts:
            print(f"  {'PASS' if ok else 'FAIL'} {name:<{width}}  {detail}")
        failed = [n for n, ok, _ in verdicts if not ok]
        print(f"{tag}: {'FAILED: ' + ', '.join(failed) if failed else all_held}"
              f" (logs in {work})")
        return 1 if failed else 0
    except SetupError as e:
        print(f"{tag}: {e} (logs in {work})", file=sys.stderr)
        for log in sorted(work.glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-log_lines:]
            print(f"--- {log.name}\n" + "\n".join(tail), file=sys.stderr)
        return 2
    finally:
        for t in tills:
            t.kill9()
        for p in others:
            p.kill()
            p.wait()
        if net:
            net.close()
        if not keep and not os.environ.get("TILLMESH_NETNS_KEEP"):
            shutil.rmtree(work, ignore_errors=True)


def start_cloud(binary, work, net, node, ip, port, repo, others):
    """The cloud (SQLite, the example store and catalog) in namespace `node`, listening on
    `ip:port`: waits until it answers; answers its config file and an `hq` command runner."""
    cloud_cfg = work / "cloud.toml"
    text = (repo / "configs/cloud.example.toml").read_text()
    text = text.replace('listen = "127.0.0.1:8700"', f'listen = "{ip}:{port}"')
    text = text.replace('master_seed = "configs/catalog.example.json"',
                        f'master_seed = "{repo / "configs/catalog.example.json"}"')
    text = text.replace('path = "data/cloud/cloud.db"', f'path = "{work / "cloud.db"}"')
    cloud_cfg.write_text(text)
    cloud = subprocess.Popen(
        ["ip", "netns", "exec", net.nodes[node], binary, "cloud", "--config", str(cloud_cfg)],
        stdout=subprocess.DEVNULL, stderr=open(work / "cloud.log", "w"))
    others.append(cloud)
    wait("the cloud", lambda: http("GET", f"http://{ip}:{port}/health", ns=net.nodes[node])[0] == 200)
    hq = lambda *args: run(binary, "hq", "--config", str(cloud_cfg), *args).stdout.strip()
    return cloud_cfg, hq


def enrolled_tills(binary, work, repo, subnet, ids, extra=""):
    """The store CA (`work/pki`) and, per terminal id in `ids`, its certificates and a config
    from the example till with a `[mesh]` section on `subnet.<id>:7400` (mDNS on eth0) and
    `extra` after it: answers `[(id, config text)]`."""
    pki = work / "pki"
    if not pki.exists():
        run(binary, "store", "init", "--store-id", "S001", "--out", str(pki))
    template = (repo / "configs/terminal.example.toml").read_text().replace(
        '"catalog.example.json"', json.dumps(str(repo / "configs/catalog.example.json"))).replace(
        '"../models/products.json"', json.dumps(str(repo / "models/products.json")))
    out = []
    for i in ids:
        certs = work / f"certs-{i}"
        run(binary, "terminal", "enroll", "--ca-dir", str(pki), "--terminal-id", str(i),
            "--out", str(certs))
        out.append((i, template.replace("\nid = 1 ", f"\nid = {i} ", 1) + f"""
[mesh]
listen = "{subnet}.{i}:7400"
ca_cert = "{certs / 'store-ca.pem'}"
cert = "{certs / f'till-{i}.pem'}"
key = "{certs / f'till-{i}.key'}"
mdns = true
mdns_interfaces = "eth0"
anti_entropy_ms = 500
""" + extra))
    return out

