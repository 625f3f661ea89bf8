#!/usr/bin/env python3
"""Tills that join at first boot, with real processes in network namespaces.

A store of two enrolled tills and the cloud (each in its own namespace, on a bridge in a
namespace of its own), HQ holding the store's CA (`hq add-store --ca-dir`). Then:

1. **Approval in the store.** A third till starts from the package's config
   (`configs/terminal.package.toml`: no store, no identity, no cloud) on an empty disk. It
   advertises itself over mDNS; a manager on till 1 finds it in the waiting list and
   approves its code with their PIN; HQ issues it terminal 3. It joins the mesh and the
   Raft group, syncs every past sale, and sells.
2. **A join token while the cloud is unreachable.** The cloud's bridge port goes down. A
   token made at HQ beforehand (`hq join-token`) is typed into a fourth till started from
   the package's config: it redeems the token at the store's leader, joins and sells. The
   same token on a fifth machine is refused (`token_used`) and that machine writes nothing.

Prints a verdict per step; exits 1 if one fails, 2 if the set-up fails. Needs root,
iproute2 and curl. Usage:

    sudo scripts/netns-enrol.py --bin target/debug/tillmesh [--keep]
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (Cashiers, SetupError, Till, enrolled_tills, leader, run,  # noqa: E402
                     run_in_namespaces, start_cloud, wait)

REPO = Path(__file__).resolve().parent.parent
SUBNET = "10.78.0"
CLOUD_IP = f"{SUBNET}.100"
CLOUD_PORT = 8700
TILL_API = "http://127.0.0.1:7300"
MANAGER = ("M005", "5955")
CASHIER = ("E005", "5151")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=str(REPO / "target/debug/tillmesh"))
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("netns-enrol: needs root (ip netns)", file=sys.stderr)
        return 2
    binary = str(Path(a.bin).resolve())
    if not os.access(binary, os.X_OK):
        print(f"netns-enrol: no tillmesh binary at {binary} (cargo build first)", file=sys.stderr)
        return 2
    names = [(f"t{i}", f"{SUBNET}.{i}") for i in range(1, 6)] + [("c", CLOUD_IP)]
    return run_in_namespaces(
        "netns-enrol", names,
        lambda work, net, tills, others: scenario(binary, work, net, tills, others),
        a.keep, "every step held", log_lines=20)


def package_till(binary, work, net, n):
    """Till `n` as the package starts it: the package's config, with the environment moving
    its files into the work folder (as a package's paths would be on a fresh disk)."""
    root = work / f"fresh-{n}"
    env = {
        "TILLMESH_MESH__CA_CERT": str(root / "pki/store-ca.pem"),
        "TILLMESH_MESH__CERT": str(root / "pki/till.pem"),
        "TILLMESH_MESH__KEY": str(root / "pki/till.key"),
        "TILLMESH_MESH__MDNS_INTERFACES": "eth0",
        "TILLMESH_MESH__ANTI_ENTROPY_MS": "500",
        "TILLMESH_CATALOG__PATH": str(REPO / "configs/catalog.example.json"),
        "TILLMESH_VISION__CARD": str(REPO / "models/products.json"),
    }
    t = Till(n, REPO / "configs/terminal.package.toml", root / "till", work / f"till-{n}.log",
             TILL_API, ns=net.nodes[f"t{n}"], env=env)
    t.start(binary)
    return t


def waiting_code(t):
    s, v = t.api("GET", "/api/v1/enrolment")
    return v["code"] if s == 200 and (v or {}).get("state") == "waiting" else None


def serving_as(t, terminal):
    st = t.status()
    return st if st and st.get("terminal_id") == terminal else None


def same_sales(tills):
    """Every till's statuses once all hold the same events."""
    ss = [t.status() for t in tills]
    if not all(ss):
        return None
    vvs = {json.dumps(s["version_vector"], sort_keys=True) for s in ss}
    return ss if len(vvs) == 1 else None


def can_login(t):
    """Waits until HQ's cashier signs in on `t` (its accounts come as master data)."""
    wait(f"HQ's cashier on till {t.id}", lambda: t.api(
        "POST", "/api/v1/auth/login",
        body={"employee_id": CASHIER[0], "pin": CASHIER[1]})[0] == 200, within=60)


def scenario(binary, work, net, tills, others):
    log = lambda msg: print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)
    catalog = json.loads((REPO / "configs/catalog.example.json").read_text())
    barcodes = [(i["barcodes"][0], i["sku"]) for i in catalog["items"][:12] if i["barcodes"]]
    verdicts = []

    # The cloud, and HQ's accounts for the store's staff (they reach every till, a new one
    # too, as master data through the store's Raft group).
    cloud_cfg, hq = start_cloud(binary, work, net, "c", CLOUD_IP, CLOUD_PORT, REPO, others)
    store_token = hq("token", "--store", "S001").splitlines()[-1]
    for (who, pin), role in [(MANAGER, "manager"), (CASHIER, "cashier")]:
        hq("cashier", "--employee-id", who, "--name", f"HQ {role}", "--role", role, "--pin", pin)

    # The store CA; tills 1 and 2 enrolled from its folder, then the folder handed to HQ.
    pki = work / "pki"
    cloud = f"""
[cloud]
url = "http://{CLOUD_IP}:{CLOUD_PORT}"
allow_plain_http = true  # an isolated network of namespaces
token = "{store_token}"
heartbeat_ms = 500
backoff_min_ms = 200
backoff_max_ms = 1000
linger_ms = 50
"""
    for i, cfg in enrolled_tills(binary, work, REPO, SUBNET, (1, 2), cloud):
        path = work / f"till-{i}.toml"
        path.write_text(cfg)
        # Its API on the LAN too: a new till redeems its join token there.
        tills.append(Till(i, path, work / f"data-{i}", work / f"till-{i}.log", TILL_API,
                          ns=net.nodes[f"t{i}"], args=["--listen", "0.0.0.0:7300"]))
    print(hq("add-store", "S001", "--name", "Tillmesh Demo Mart", "--ca-dir", str(pki)))
    refused = run(binary, "store", "token", "--ca-dir", str(pki), "--valid-for", "1h",
                  check=False)
    verdicts.append(("ca_folder_issues_no_id_once_at_hq", refused.returncode != 0,
                     (refused.stderr.strip().splitlines() or ["?"])[-1][:120]))
    for t in tills:
        t.start(binary)
    for t in tills:
        wait(f"till {t.id} to answer", t.status)
    first = leader(tills)
    cash = Cashiers(barcodes)
    # HQ's staff come down as master data first.
    for t in tills:
        can_login(t)
    for t in tills:
        cash.sell(t, 3, CASHIER)
    wait("the two tills to agree", lambda: same_sales(tills))
    log(f"tills 1 and 2 up and selling; T{first} leads")

    # 1. Approval in the store.
    t3 = package_till(binary, work, net, 3)
    tills.append(t3)
    code = wait("till 3 to wait with a code", lambda: waiting_code(t3))
    log(f"till 3 from the package's config waits with code {code}")
    one = tills[0]
    s, login = one.api("POST", "/api/v1/auth/login",
                       body={"employee_id": MANAGER[0], "pin": MANAGER[1]})
    if s != 200:
        raise SetupError(f"manager login on till 1: {s} {login}")
    mtok = login["token"]
    listed = wait("till 1 to list the waiting till (mDNS)", lambda: next(
        (w for w in (one.api("GET", "/api/v1/enrolment/waiting", mtok)[1] or [])
         if w.get("code") == code), None))
    verdicts.append(("waiting_till_found_over_mdns", True,
                     f"till 1 lists code {code} at {listed['address']}"))
    s, r = one.api("POST", "/api/v1/enrolment/approve", mtok,
                   {"code": code, "employee_id": MANAGER[0], "pin": MANAGER[1]})
    verdicts.append(("manager_approved_hq_issued_t3", s == 200 and (r or {}).get("terminal") == 3,
                     f"{s} {r}"))
    wait("till 3 to run as terminal 3", lambda: serving_as(t3, 3))
    sts = wait("till 3 to hold every past sale", lambda: same_sales(tills), within=60)
    voters = wait("till 3 to be a Raft voter", lambda: (lambda st: st if st and 3 in (
        (st.get("raft") or {}).get("voters") or []) else None)(one.status()), within=60)
    verdicts.append(("t3_joined_mesh_and_raft", bool(sts) and bool(voters),
                     f"voters {(voters.get('raft') or {}).get('voters')}"))
    can_login(t3)
    before = len(cash.acked)
    cash.sell(t3, 2, CASHIER)
    cash.sell(one, 1, CASHIER)
    agreed = wait("the three tills to agree", lambda: same_sales(tills), within=60)
    verdicts.append(("t3_sells_and_syncs", len(cash.acked) == before + 3 and bool(agreed),
                     f"{len(cash.acked)} sales acknowledged, every till holds them"))

    # 2. A join token, the cloud unreachable.
    out = run(binary, "hq", "--config", str(cloud_cfg), "join-token", "--store", "S001",
              "--valid-for", "1h", "--cloud-url", f"http://{CLOUD_IP}:{CLOUD_PORT}",
              "--cloud-plain-http")
    token = out.stdout.strip().splitlines()[0]
    net.port("c", False)
    log("the cloud is off the bridge; till 4 gets a join token made at HQ")
    t4 = package_till(binary, work, net, 4)
    tills.append(t4)
    wait("till 4 to wait", lambda: waiting_code(t4))
    s, r = t4.api("POST", "/api/v1/enrolment/token", body={"token": token})
    verdicts.append(("token_admits_t4_offline", s == 200 and (r or {}).get("terminal") == 4,
                     f"{s} {r}"))
    wait("till 4 to run as terminal 4", lambda: serving_as(t4, 4))
    wait("till 4 to hold every sale", lambda: same_sales(tills), within=60)
    can_login(t4)
    before = len(cash.acked)
    cash.sell(t4, 2, CASHIER)
    agreed = wait("the four tills to agree", lambda: same_sales(tills), within=60)
    verdicts.append(("t4_sells_and_syncs", len(cash.acked) == before + 2 and bool(agreed),
                     f"{len(agreed)} tills hold {len(cash.acked)} sales"))

    t5 = package_till(binary, work, net, 5)
    others_t5 = [t5]
    try:
        wait("till 5 to wait", lambda: waiting_code(t5))
        s, r = t5.api("POST", "/api/v1/enrolment/token", body={"token": token})
        written = (work / "fresh-5/pki/till.pem").exists() or (work / "fresh-5/pki/till.key").exists()
        still = waiting_code(t5) is not None
        verdicts.append(("token_reuse_refused", s == 409 and (r or {}).get("error") == "token_used"
                         and not written and still, f"{s} {(r or {}).get('error')}; files written: "
                         f"{written}; still waiting: {still}"))
    finally:
        for t in others_t5:
            t.kill9()
    net.port("c", True)
    return verdicts


if __name__ == "__main__":
    sys.exit(main())
