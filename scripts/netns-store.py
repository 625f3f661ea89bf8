#!/usr/bin/env python3
"""The simulator's real-network tier: real `tillmesh` processes in network namespaces.

A store of tills (one namespace each) and the cloud (its own namespace) on a Linux bridge
that lives in a namespace of its own, so the root namespace is never touched. The tills find
each other over mDNS, elect a leader and upload to the cloud over HTTP. Cashiers sell through
the tills' HTTP API while the script:

1. cuts a follower off the bridge (its bridge port down: packets silently dropped), heals;
2. blackholes another till's outbound packets only (`tc qdisc ... blackhole`: one way);
3. kill -9s the leader, waits for a new one, restarts the killed till on its disk;
4. after the checks below, starts a second host enrolled with till 1's terminal id on the
   same port, and expects till 1 and the twin each to refuse the other and list it.

Then it waits for the store to converge and checks the simulator's invariants against the
real cloud's ledger and reports: no acknowledged sale lost, exactly once in the cloud,
identical state on every till, at most one leader per term, inventory equals opening stock
minus sales, cloud totals equal store totals, watermarks never move backwards.

Needs root, iproute2, tc and curl. Prints a verdict per invariant; exits 1 if one fails,
2 if the set-up fails. Usage:

    sudo scripts/netns-store.py --bin target/debug/tillmesh [--tills 3] [--keep]
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (Cashiers, Observer, SetupError, Till, check, converged,  # noqa: E402
                     enrolled_tills, http, leader, run, run_in_namespaces, start_cloud, wait)

REPO = Path(__file__).resolve().parent.parent
SUBNET = "10.79.0"
CLOUD_IP = f"{SUBNET}.100"
CLOUD_PORT = 8700
# A second host enrolled with till 1's terminal id, listening on the same port.
TWIN_IP = f"{SUBNET}.50"
TILL_API = "http://127.0.0.1:7300"


def curl(ns, method, url, token=None, body=None):
    return http(method, url, token, body, ns)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=str(REPO / "target/debug/tillmesh"))
    ap.add_argument("--tills", type=int, default=3)
    ap.add_argument("--sales", type=int, default=3, help="sales per till per phase")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("netns-store: needs root (ip netns)", file=sys.stderr)
        return 2
    if not 3 <= a.tills <= 9:
        print("netns-store: --tills must be 3 to 9", file=sys.stderr)
        return 2
    binary = str(Path(a.bin).resolve())
    if not os.access(binary, os.X_OK):
        print(f"netns-store: no tillmesh binary at {binary} (cargo build first)", file=sys.stderr)
        return 2
    names = [(f"t{i}", f"{SUBNET}.{i}") for i in range(1, a.tills + 1)]
    return run_in_namespaces(
        "netns-store", names + [("c", CLOUD_IP), ("tw", TWIN_IP)],
        lambda work, net, tills, others: scenario(a, binary, work, net, tills, others),
        a.keep, "every invariant held")


def scenario(a, binary, work, net, tills, others):
    log = lambda msg: print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)
    catalog = json.loads((REPO / "configs/catalog.example.json").read_text())
    barcodes = [(i["barcodes"][0], i["sku"]) for i in catalog["items"][:12] if i["barcodes"]]
    opening = catalog["opening_stock"]

    # The cloud: SQLite, the example store and catalog, in its own namespace.
    _, hq = start_cloud(binary, work, net, "c", CLOUD_IP, CLOUD_PORT, REPO, others)
    cloud_ns = net.nodes["c"]
    store_token = hq("token", "--store", "S001").splitlines()[-1]
    admin_token = hq("token", "--admin").splitlines()[-1]

    # The store CA and one certificate per till; configs from the example till.
    pki = work / "pki"
    cloud = f"""store_tills = {a.tills}

[cloud]
url = "http://{CLOUD_IP}:{CLOUD_PORT}"
allow_plain_http = true  # an isolated network of namespaces
token = "{store_token}"
heartbeat_ms = 500
backoff_min_ms = 200
backoff_max_ms = 1000
linger_ms = 50
"""
    for i, cfg in enrolled_tills(binary, work, REPO, SUBNET, range(1, a.tills + 1), cloud):
        path = work / f"till-{i}.toml"
        path.write_text(cfg)
        tills.append(Till(i, path, work / f"data-{i}", work / f"till-{i}.log", TILL_API,
                          ns=net.nodes[f"t{i}"]))
    for t in tills:
        t.start(binary)
    for t in tills:
        wait(f"till {t.id} to answer", t.status)
    cloud_get = lambda path, token: curl(cloud_ns, "GET", f"http://{CLOUD_IP}:{CLOUD_PORT}{path}", token)
    obs = Observer(tills, cloud_get, store_token)
    obs.start()

    cash = Cashiers(barcodes)
    first = leader(tills)
    log(f"{a.tills} tills up, found each other over mDNS; T{first} leads")
    for t in tills:
        cash.sell(t, a.sales)

    followers = [t for t in tills if t.id != first]
    cut, hole = followers[0], followers[1]
    log(f"T{cut.id} off the bridge (silent drop)")
    net.port(f"t{cut.id}", False)
    for t in tills:
        cash.sell(t, a.sales)
    time.sleep(4)
    net.port(f"t{cut.id}", True)
    log(f"healed; T{hole.id}'s outbound packets blackholed (one way)")
    net.blackhole(f"t{hole.id}", True)
    for t in tills:
        cash.sell(t, a.sales)
    time.sleep(4)
    net.blackhole(f"t{hole.id}", False)
    now = leader(tills)
    log(f"healed; kill -9 of the leader T{now}")
    dead = next(t for t in tills if t.id == now)
    dead.kill9()
    alive = [t for t in tills if t is not dead]
    second = leader(alive, not_=now)
    log(f"T{second} leads; selling on the survivors")
    for t in alive:
        cash.sell(t, a.sales)
    dead.start(binary)
    wait(f"till {dead.id} to come back", dead.status)
    log(f"T{dead.id} restarted on its disk; waiting for the store and the cloud to converge")

    def fleet():
        s, f = curl(cloud_ns, "GET", f"http://{CLOUD_IP}:{CLOUD_PORT}/api/v1/reports/fleet",
                    admin_token)
        rows = [r for r in (f or {}).get("stores", []) if r["store_id"] == "S001"]
        return rows[0] if rows else None

    statuses = wait("convergence", lambda: converged(tills, fleet))
    obs.stop.set()
    obs.join()
    log("converged; checking the invariants against the cloud")
    verdicts = check(tills, cash, statuses, fleet(), obs, opening, cloud_get, admin_token)

    # 8. A second host enrolled as till 1, on the same port: both refuse each other. (The CA
    # issues an id once; `--again` is how it would issue it twice, as a mistake does here.)
    one = tills[0]
    certs = work / "certs-twin"
    run(binary, "terminal", "enroll", "--ca-dir", str(pki), "--terminal-id", str(one.id),
        "--again", "--out", str(certs))
    cfg = one.config.read_text().replace(f'listen = "{SUBNET}.{one.id}:7400"',
                                         f'listen = "{TWIN_IP}:7400"')
    cfg = cfg.replace(str(work / f"certs-{one.id}"), str(certs))
    twin_cfg = work / "twin.toml"
    twin_cfg.write_text(cfg)
    twin = Till(one.id, twin_cfg, work / "data-twin", work / "twin.log", TILL_API, ns=net.nodes["tw"])
    tills.append(twin)
    twin.start(binary)
    wait("the twin to answer", twin.status)
    log(f"a second host enrolled as T{one.id} on the same port started")

    def both_see():
        a_, b_ = one.status(), twin.status()
        if a_ and b_ and a_.get("duplicate_terminal_at") and b_.get("duplicate_terminal_at"):
            return a_["duplicate_terminal_at"], b_["duplicate_terminal_at"]
        return None
    try:
        seen = wait("both tills to list the duplicate", both_see, within=30)
        ok = any(TWIN_IP in x for x in seen[0]) and any(f"{SUBNET}.{one.id}" in x for x in seen[1])
        verdicts.append(("duplicate_terminal_refused_both_ways", ok,
                         f"T{one.id} lists {seen[0]}; the twin lists {seen[1]}"))
    except SetupError as e:
        verdicts.append(("duplicate_terminal_refused_both_ways", False, str(e)))
    twin.kill9()
    return verdicts


if __name__ == "__main__":
    sys.exit(main())
