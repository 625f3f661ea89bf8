#!/usr/bin/env bash
# Checks what operations deploy beside the binary (deploy/): the Prometheus config and alert
# rules (promtool check config, promtool test rules: each rule fires on one series and not on
# another) and the Grafana dashboards (scripts/check_dashboards.py: structure, and every
# panel's PromQL parsed by promtool). Needs promtool (Debian's `prometheus` package).
set -euo pipefail
cd "$(dirname "$0")/.."
promtool check config deploy/prometheus/prometheus.yml
promtool test rules deploy/prometheus/tillmesh-rules.test.yml
python3 scripts/check_dashboards.py deploy/grafana/dashboards/*.json
