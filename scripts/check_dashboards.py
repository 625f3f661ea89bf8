#!/usr/bin/env python3
"""Checks Grafana dashboard JSON files: each has a unique uid, a title and a schemaVersion;
panels have unique ids, fit the 24-column grid without overlapping, and each target's PromQL
parses (promtool check rules on the expressions as recording rules, with Grafana's variables
given sample values). Prints one line per problem and exits non-zero on any.

Usage: scripts/check_dashboards.py deploy/grafana/dashboards/*.json
"""

import json
import subprocess
import sys
import tempfile

VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$store": "S001",
             "${datasource}": "prometheus"}


def check(path, uids, exprs):
    problems = []
    try:
        d = json.load(open(path))
    except (OSError, ValueError) as e:
        return [f"{path}: not JSON: {e}"]
    for key in ("uid", "title", "schemaVersion", "panels"):
        if key not in d:
            problems.append(f"{path}: no {key}")
    if d.get("uid") in uids:
        problems.append(f"{path}: uid {d.get('uid')} is used twice")
    uids.add(d.get("uid"))
    ids, cells = set(), {}
    for p in d.get("panels", []):
        pid, g = p.get("id"), p.get("gridPos", {})
        if pid in ids:
            problems.append(f"{path}: panel id {pid} is used twice")
        ids.add(pid)
        x, y, w, h = (g.get(k, -1) for k in ("x", "y", "w", "h"))
        if min(x, y) < 0 or w < 1 or h < 1 or x + w > 24:
            problems.append(f"{path}: panel {pid} ({p.get('title')}) lies off the grid: {g}")
        for cx in range(max(x, 0), x + w):
            for cy in range(max(y, 0), y + h):
                if (cx, cy) in cells:
                    problems.append(f"{path}: panels {cells[(cx, cy)]} and {pid} overlap")
                    break
                cells[(cx, cy)] = pid
            else:
                continue
            break
        if not p.get("targets"):
            problems.append(f"{path}: panel {pid} has no query")
        for t in p.get("targets", []):
            e = t.get("expr", "")
            for k, v in VARIABLES.items():
                e = e.replace(k, v)
            if "$" in e:
                problems.append(f"{path}: panel {pid}: unknown variable in {t.get('expr')}")
            exprs.append((f"{path} panel {pid}", e))
    return problems


def main():
    uids, exprs, problems = set(), [], []
    for path in sys.argv[1:]:
        problems += check(path, uids, exprs)
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        f.write("groups:\n  - name: dashboards\n    rules:\n")
        for i, (_, e) in enumerate(exprs):
            f.write(f"      - record: dashboard:expr{i}\n        expr: {json.dumps(e)}\n")
    r = subprocess.run(["promtool", "check", "rules", f.name], capture_output=True, text=True)
    if r.returncode != 0:
        problems.append("a panel's PromQL does not parse:\n" + r.stdout + r.stderr)
    for p in problems:
        print(p)
    print(f"{len(sys.argv) - 1} dashboards, {len(exprs)} queries: "
          + ("ok" if not problems else f"{len(problems)} problems"))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
