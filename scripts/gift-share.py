#!/usr/bin/env python3
"""Sums the stored-value invariant over simulator reports: tenders acknowledged, the share of
gift card and store credit tenders refused for lack of rights at the till (after the
cashier's one retry), and tenders tried and refused per kind (coupons presented once, and
presented again: a double spend the tills must refuse).

    tillmesh sim --fuzz --seed 1000 --seeds 200 --jobs 2 --report /tmp/fz
    scripts/gift-share.py /tmp/fz
"""
import glob
import json
import re
import sys

root = sys.argv[1] if len(sys.argv) > 1 else "."
seeds = failed = acked = refused = tried = 0
by_kind_tried, by_kind_refused = {}, {}
for path in sorted(glob.glob(f"{root}/*/report.json")):
    seeds += 1
    for v in json.load(open(path))["verdicts"]:
        if v["name"] != "gift_cards_never_below_zero_nor_lost":
            continue
        if not v["pass"]:
            failed += 1
            print(f"{path}: {v['detail']}")
        m = re.search(r"(\d+) tenders acknowledged.*?(\d+) of (\d+) tried refused", v["detail"])
        if m:
            acked += int(m.group(1))
            refused += int(m.group(2))
            tried += int(m.group(3))
        m = re.search(r"tried (\{.*?\}), refused (\{.*?\})", v["detail"])
        if m:
            for k, n in json.loads(m.group(1)).items():
                by_kind_tried[k] = by_kind_tried.get(k, 0) + n
            for k, n in json.loads(m.group(2)).items():
                by_kind_refused[k] = by_kind_refused.get(k, 0) + n
share = 100.0 * refused / tried if tried else 0.0
print(f"{seeds} seeds, {failed} failed the gift card invariant; {acked} tenders acknowledged; "
      f"gift card and store credit: {refused} of {tried} tried refused for lack of rights at the "
      f"till ({share:.1f}%)")
print(f"tried per kind: {by_kind_tried}")
print(f"refused per kind and reason: {by_kind_refused}")
sys.exit(1 if failed or seeds == 0 else 0)
