#!/usr/bin/env python3
"""Sums the gift card invariant over simulator reports: tenders acknowledged, and the share
refused for lack of rights at the till (after the cashier's one retry).

    tillmesh sim --fuzz --seed 1000 --seeds 200 --jobs 2 --report /tmp/fz
    scripts/gift-share.py /tmp/fz
"""
import glob
import json
import re
import sys

root = sys.argv[1] if len(sys.argv) > 1 else "."
seeds = failed = acked = refused = tried = 0
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
share = 100.0 * refused / tried if tried else 0.0
print(f"{seeds} seeds, {failed} failed the gift card invariant; {acked} tenders acknowledged; "
      f"{refused} of {tried} tried refused for lack of rights at the till ({share:.1f}%)")
sys.exit(1 if failed or seeds == 0 else 0)
