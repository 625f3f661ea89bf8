#!/usr/bin/env python3
"""Rolling upgrade with real processes: a store of tills and its cloud run an older release,
cashiers sell on every till all the time, and the tills are replaced one by one by the new
build (a planned stop: SIGTERM, the same data folder), the leader last; then the cloud. On
tills already upgraded, cashiers also take sales back (returns, an event kind the old release
does not know): the old tills and the old cloud keep those events without applying them, and
apply them once upgraded.

Everything runs on loopback (static peers, no mDNS). At the end the store converges and the
simulator's invariants are checked against the cloud (no acknowledged sale lost, exactly once
in the cloud, identical state, one leader per term, stock, totals, watermarks), plus: every
till talks the new build's newest protocol with every peer. The report lists the sales made
during the upgrade, how long each replaced till could not sell, the longest any other till
could not sell while a peer was replaced (goal: 0), and the cloud's upload gap at the
leader's hand-over.

Prints a verdict per check; exits 1 if one fails, 2 if the set-up fails. Usage:

    scripts/rolling-upgrade.py --old target/upgrade-base/tillmesh-v0.1.0 \\
        --new target/debug/tillmesh [--tills 5] [--report report.json] [--keep]
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (Cashiers, Observer, SetupError, Till, check, converged, http, leader,  # noqa: E402
                     run, wait)

REPO = Path(__file__).resolve().parent.parent


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Shifts:
    """One cashier per till selling without pause (a short breath between customers);
    a till that is down is waited for, and signed in again when it is back. On a till
    already on the new build, one sale in `return_every` is taken back at once (an
    `ItemsReturned` event, a kind the old release does not know)."""

    def __init__(self, tills, cash, return_every=12):
        self.tills, self.cash, self.return_every = tills, cash, return_every
        self.upgraded = set()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.shift, args=(t,), daemon=True) for t in tills]

    def shift(self, till):
        tok, n = None, 0
        while not self.stop.is_set():
            if not till.up():
                tok = None
                time.sleep(0.05)
                continue
            try:
                if tok is None:
                    tok = self.cash.login(till)
                tid = self.cash.sell_one(till, tok)
                n += 1
                if till.id in self.upgraded and n % self.return_every == 0:
                    sku = next(a[3] for a in reversed(self.cash.acked) if a[1] == tid)
                    self.cash.return_whole(till, tok, tid, sku)
            except (SetupError, KeyError, TypeError):
                # The till stopped mid-sale (that sale was never acknowledged) or answered
                # something else: sign in again and go on.
                tok = None
                time.sleep(0.1)
            time.sleep(0.02)

    def start(self):
        for t in self.threads:
            t.start()

    def end(self):
        self.stop.set()
        for t in self.threads:
            t.join()


class Uploads(threading.Thread):
    """Polls the cloud's fleet row of the store: (term, leader, last upload ms)."""

    def __init__(self, fleet):
        super().__init__(daemon=True)
        self.fleet, self.seen = fleet, []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            f = self.fleet()
            if f:
                self.seen.append((f.get("term"), f.get("leader"), f.get("last_upload_ms")))
            time.sleep(0.05)


def upload_gap(seen, term):
    """From the last upload in the stopping leader's term to the first in a later term (its
    successor's, whichever till that is: the old leader may win again once restarted), in
    the cloud's own clock (ms): the store could not upload in between."""
    last_old = max((u for t, _, u in seen if t == term and u), default=None)
    first_new = min((u for t, _, u in seen if t and t > term and u), default=None)
    if last_old is None or first_new is None:
        return None
    return first_new - last_old


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--old", required=True, help="the release the store runs first")
    ap.add_argument("--new", default=str(REPO / "target/debug/tillmesh"))
    ap.add_argument("--tills", type=int, default=5)
    ap.add_argument("--settle", type=float, default=4.0, help="seconds of selling between steps")
    ap.add_argument("--report", help="write the report as JSON here")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    a = ap.parse_args()
    if not 3 <= a.tills <= 9:
        print("rolling-upgrade: --tills must be 3 to 9", file=sys.stderr)
        return 2
    old, new = (str(Path(b).resolve()) for b in (a.old, a.new))
    for b in (old, new):
        if not os.access(b, os.X_OK):
            print(f"rolling-upgrade: no tillmesh binary at {b}", file=sys.stderr)
            return 2
    work = Path(tempfile.mkdtemp(prefix="tillmesh-upgrade-"))
    tills, others = [], []
    try:
        report = scenario(a, old, new, work, tills, others)
        width = max(len(n) for n, _, _ in report["verdicts"])
        for name, ok, detail in report["verdicts"]:
            print(f"  {'PASS' if ok else 'FAIL'} {name:<{width}}  {detail}")
        for k in ("versions", "sales_during_upgrade", "returns_during_upgrade",
                  "old_tills_held_unknown_events_max", "replaced_till_could_not_sell_ms",
                  "other_tills_could_not_sell_max_ms", "store_longest_without_a_sale_ms",
                  "leader_handover_upload_gap_ms", "cloud_replacement_upload_gap_ms"):
            print(f"  {k}: {report[k]}")
        if a.report:
            Path(a.report).write_text(json.dumps(report, indent=2) + "\n")
        failed = [n for n, ok, _ in report["verdicts"] if not ok]
        print(f"rolling-upgrade: {'FAILED: ' + ', '.join(failed) if failed else 'every check held'}"
              f" (logs in {work})")
        return 1 if failed else 0
    except SetupError as e:
        print(f"rolling-upgrade: {e} (logs in {work})", file=sys.stderr)
        for f in sorted(work.glob("*.log")):
            tail = f.read_text(errors="replace").splitlines()[-15:]
            print(f"--- {f.name}\n" + "\n".join(tail), file=sys.stderr)
        return 2
    finally:
        for t in tills:
            t.kill9()
        for p in others:
            if p.poll() is None:
                p.kill()
                p.wait()
        if not a.keep and not os.environ.get("TILLMESH_UPGRADE_KEEP"):
            shutil.rmtree(work, ignore_errors=True)


def scenario(a, old, new, work, tills, others):
    catalog = json.loads((REPO / "configs/catalog.example.json").read_text())
    barcodes = [(i["barcodes"][0], i["sku"]) for i in catalog["items"][:12] if i["barcodes"]]
    opening = catalog["opening_stock"]
    versions = {b: run(b, "--version").stdout.strip() for b in (old, new)}

    # The cloud (SQLite), on the old release.
    cport = free_port()
    cloud_url = f"http://127.0.0.1:{cport}"
    cloud_cfg = work / "cloud.toml"
    text = (REPO / "configs/cloud.example.toml").read_text()
    text = text.replace('listen = "127.0.0.1:8700"', f'listen = "127.0.0.1:{cport}"')
    text = text.replace('master_seed = "configs/catalog.example.json"',
                        f'master_seed = "{REPO / "configs/catalog.example.json"}"')
    text = text.replace('path = "data/cloud/cloud.db"', f'path = "{work / "cloud.db"}"')
    cloud_cfg.write_text(text)

    def start_cloud(binary):
        p = subprocess.Popen([binary, "cloud", "--config", str(cloud_cfg)],
                             stdout=subprocess.DEVNULL, stderr=open(work / "cloud.log", "a"))
        others.append(p)
        wait("the cloud", lambda: http("GET", f"{cloud_url}/health")[0] == 200)
        return p

    cloud = start_cloud(old)
    hq = lambda *args: run(old, "hq", "--config", str(cloud_cfg), *args).stdout.strip()
    store_token = hq("token", "--store", "S001").splitlines()[-1]
    admin_token = hq("token", "--admin").splitlines()[-1]
    cloud_get = lambda path, token: http("GET", cloud_url + path, token)

    def fleet():
        s, f = cloud_get("/api/v1/reports/fleet", admin_token)
        rows = [r for r in (f or {}).get("stores", []) if r["store_id"] == "S001"]
        return rows[0] if rows else None

    # The store CA, a certificate per till, configs from the example till.
    pki = work / "pki"
    run(old, "store", "init", "--store-id", "S001", "--out", str(pki))
    template = (REPO / "configs/terminal.example.toml").read_text().replace(
        '"catalog.example.json"', json.dumps(str(REPO / "configs/catalog.example.json"))).replace(
        '"../models/products.json"', json.dumps(str(REPO / "models/products.json")))
    mesh_ports = {i: free_port(socket.SOCK_DGRAM) for i in range(1, a.tills + 1)}
    for i in range(1, a.tills + 1):
        certs = work / f"certs-{i}"
        run(old, "terminal", "enroll", "--ca-dir", str(pki), "--terminal-id", str(i),
            "--out", str(certs))
        peers = ", ".join(f'"127.0.0.1:{p}"' for j, p in mesh_ports.items() if j != i)
        cfg = template.replace("\nid = 1 ", f"\nid = {i} ", 1) + f"""
[mesh]
listen = "127.0.0.1:{mesh_ports[i]}"
ca_cert = "{certs / 'store-ca.pem'}"
cert = "{certs / f'till-{i}.pem'}"
key = "{certs / f'till-{i}.key'}"
peers = [{peers}]
mdns = false
disable_gso = true
anti_entropy_ms = 500
raft_discovery_window_ms = 1000
store_tills = {a.tills}

[cloud]
url = "{cloud_url}"
token = "{store_token}"
heartbeat_ms = 300
backoff_min_ms = 200
backoff_max_ms = 1000
linger_ms = 50
"""
        path = work / f"till-{i}.toml"
        path.write_text(cfg)
        hport = free_port()
        tills.append(Till(i, path, work / f"data-{i}", work / f"till-{i}.log",
                          f"http://127.0.0.1:{hport}", args=["--listen", f"127.0.0.1:{hport}"]))
    for t in tills:
        t.start(old)
    for t in tills:
        wait(f"till {t.id} to answer", t.status)
    first = leader(tills)
    log(f"{a.tills} tills and the cloud up on {versions[old]}; T{first} leads")
    obs = Observer(tills, cloud_get, store_token)
    obs.start()
    cash = Cashiers(barcodes)
    shifts = Shifts(tills, cash)
    shifts.start()
    # What the old tills hold of kinds they do not know (the new build's returns).
    old_seen_unknown = {}

    def watch_old():
        while not shifts.stop.is_set():
            for t in tills:
                if t.id not in shifts.upgraded and t.up():
                    s = t.status() or {}
                    n = s.get("unknown_kind_events", 0)
                    old_seen_unknown[t.id] = max(old_seen_unknown.get(t.id, 0), n)
            time.sleep(0.3)
    threading.Thread(target=watch_old, daemon=True).start()
    time.sleep(a.settle)

    # Replace the tills one by one, the leader last.
    started = time.monotonic()
    downtime, windows, gap = {}, [], None
    order = [t for t in tills if t.id != first] + [t for t in tills if t.id == first]
    for t in order:
        lead = leader(tills)
        is_leader = t.id == lead
        uploads = None
        if is_leader:
            uploads = Uploads(fleet)
            uploads.start()
            time.sleep(1.0)
        stop_at = time.monotonic()
        code = t.term()
        t.start(new)
        wait(f"till {t.id} on the new build to answer", t.status)
        shifts.upgraded.add(t.id)
        answered = time.monotonic()
        # It sells again once a sale made on the new build is acknowledged (a sale answered
        # just after the SIGTERM was the old process finishing its customer).
        back = wait(f"a sale on till {t.id} after its upgrade", lambda: next(
            (x[4] for x in cash.acked if x[0] == t.id and x[4] > answered), None))
        downtime[t.id] = round((back - stop_at) * 1000)
        windows.append((t.id, stop_at, back))
        log(f"T{t.id}{' (the leader)' if is_leader else ''} replaced: exit code {code} on SIGTERM, "
            f"selling again after {downtime[t.id]} ms")
        if is_leader:
            # The old leader may lead again once restarted: any leader of a later term will do.
            old_term = max((x[0] for x in uploads.seen if x[0] and x[1] == t.id), default=0)

            def later():
                f = fleet() or {}
                return f.get("leader") if (f.get("term") or 0) > old_term else None
            new_leader = wait("an upload in a later term", later)
            time.sleep(2.0)
            uploads.stop.set()
            uploads.join()
            gap = upload_gap(uploads.seen, old_term)
            log(f"T{new_leader} leads; the cloud's upload gap at the hand-over: {gap} ms")
        time.sleep(a.settle)

    # Old tills kept the new build's returns (a kind they do not know) without applying them.
    held_unknown = max(old_seen_unknown.values(), default=0)

    # Then the cloud.
    uploads = Uploads(fleet)
    uploads.start()
    time.sleep(1.0)
    cloud.send_signal(signal.SIGTERM)
    cloud.wait(timeout=30)
    cloud = start_cloud(new)
    time.sleep(3.0)
    uploads.stop.set()
    uploads.join()
    cloud_gap = None
    ups = sorted({u for _, _, u in uploads.seen if u})
    if len(ups) > 1:
        cloud_gap = max(b - a_ for a_, b in zip(ups, ups[1:]))
    log(f"the cloud replaced; longest stretch between accepted batches around it: {cloud_gap} ms")
    time.sleep(a.settle)
    ended = time.monotonic()
    shifts.end()

    statuses = wait("convergence", lambda: converged(tills, fleet), within=120)
    obs.stop.set()
    obs.join()
    log("converged; checking")
    verdicts = check(tills, cash, statuses, fleet(), obs, opening, cloud_get, admin_token)

    # The new build's returns: held unapplied by the tills still on the old release, applied
    # by every till once upgraded (the sales REFUNDED everywhere: checked above).
    left = {t.id: s.get("unknown_kind_events", 0) for t, s in zip(tills, statuses)}
    verdicts.append(("newer_kinds_kept_by_old_tills_then_applied",
                     bool(cash.returned) and held_unknown > 0 and not any(left.values()),
                     f"{len(cash.returned)} returns made on upgraded tills; old tills held up to "
                     f"{held_unknown} unapplied; after the upgrade unapplied: {left}"))
    # Every till talks the new build's newest protocol with every peer.
    newest = statuses[0]["protocol"][1]
    off = [(t.id, p.get("terminal"), p.get("protocol"))
           for t, s in zip(tills, statuses) for p in s.get("peers", []) if p.get("protocol") != newest]
    verdicts.append(("every_till_on_the_new_protocol", not off,
                     f"every peer link at protocol {newest}" if not off else f"not yet: {off[:4]}"))
    # Other tills kept selling while each till was replaced.
    during = [x for x in cash.acked if started <= x[4] <= ended]
    other_gap = 0
    for tid, s_, b_ in windows:
        for o in tills:
            if o.id == tid:
                continue
            times = sorted(x[4] for x in cash.acked if x[0] == o.id and s_ - 5 <= x[4] <= b_ + 5)
            for x, y in zip(times, times[1:]):
                if y >= s_ and x <= b_:
                    other_gap = max(other_gap, round((y - x) * 1000))
    kept = all(any(x[0] != tid and s_ <= x[4] <= b_ for x in cash.acked) for tid, s_, b_ in windows)
    verdicts.append(("the_store_kept_selling_through_every_replacement", kept,
                     f"{len(during)} sales acknowledged during the upgrade, on other tills during "
                     f"each replacement"))
    store_times = sorted(x[4] for x in during)
    store_gap = max((round((y - x) * 1000) for x, y in zip(store_times, store_times[1:])), default=None)
    return {
        "versions": {"old": versions[old], "new": versions[new]},
        "tills": a.tills,
        "sales_during_upgrade": len(during),
        "sales_acknowledged": len(cash.acked),
        "replaced_till_could_not_sell_ms": downtime,
        "other_tills_could_not_sell_max_ms": other_gap,
        "store_longest_without_a_sale_ms": store_gap,
        "returns_during_upgrade": len(cash.returned),
        "old_tills_held_unknown_events_max": held_unknown,
        "leader_handover_upload_gap_ms": gap,
        "cloud_replacement_upload_gap_ms": cloud_gap,
        "verdicts": verdicts,
    }


if __name__ == "__main__":
    sys.exit(main())
