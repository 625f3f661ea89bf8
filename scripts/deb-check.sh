#!/usr/bin/env bash
# Packages the tillmesh binary already built (no second build: `--no-build --profile dev` by
# default) as a .deb with cargo-deb, installs it (apt resolves its dependencies), checks the
# systemd units with `systemd-analyze verify`, and starts the installed binary from the
# installed config once, as the service account, with the unit's environment: it must answer
# /health and exit 0 on SIGTERM. The package is purged afterwards. Root only.
#
#     scripts/deb-check.sh            # after `cargo build` / `cargo test`
#     scripts/deb-check.sh release    # a release build
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-dev}"
# Pinned: later cargo-deb releases plan to refuse dev-profile binaries.
if ! cargo deb --version 2>/dev/null | grep -q "3.8.0"; then
  cargo install cargo-deb --version 3.8.0 --locked
fi
out=target/debian
rm -rf "$out"
cargo deb -p tillmesh --no-build --profile "$profile" -o "$out/"
deb="$(ls "$out"/*.deb)"
echo "--- installing $deb"
apt-get install -y -qq "./$deb" >/dev/null
trap 'dpkg --purge tillmesh >/dev/null 2>&1 || true' EXIT
units=(/lib/systemd/system/tillmesh-terminal.service /lib/systemd/system/tillmesh-cloud.service)
echo "--- systemd-analyze verify"
systemd-analyze verify "${units[@]}"
echo "--- the installed till, from the installed config, as the unit runs it"
id tillmesh
mapfile -t envs < <(sed -n 's/^Environment=//p' "${units[0]}")
port=17399
# A throwaway data folder instead of the unit's /var/lib/tillmesh/till, and a free port.
data="$(mktemp -d)"
chown tillmesh:tillmesh "$data"
trap 'dpkg --purge tillmesh >/dev/null 2>&1 || true; rm -rf "$data"' EXIT
envs+=("TILLMESH_TERMINAL__LISTEN=127.0.0.1:$port" "TILLMESH_TERMINAL__DATA_DIR=$data/till"
  "TILLMESH_MESH__CERT=$data/pki/till.pem" "TILLMESH_MESH__KEY=$data/pki/till.key"
  "TILLMESH_MESH__CA_CERT=$data/pki/store-ca.pem" "TILLMESH_MESH__MDNS_INTERFACES=loopback")
env "${envs[@]}" /usr/bin/tillmesh config check --config /etc/tillmesh/terminal.toml
# setpriv execs the till itself (no parent in between), so SIGTERM reaches it as systemd's.
env "${envs[@]}" setpriv --reuid=tillmesh --regid=tillmesh --init-groups \
  /usr/bin/tillmesh terminal --demo --config /etc/tillmesh/terminal.toml > target/debian/till.log 2>&1 &
pid=$!
for _ in $(seq 1 120); do
  if curl -sf "http://127.0.0.1:$port/health" >/dev/null; then break; fi
  if ! kill -0 "$pid" 2>/dev/null; then cat target/debian/till.log >&2; exit 1; fi
  sleep 0.5
done
curl -sf "http://127.0.0.1:$port/health"
echo
# The package's config enrols itself: a fresh disk waits to be admitted, showing its code.
# (Not `tee /dev/stderr`: reopening stderr truncates a log file it is redirected to.)
view="$(curl -sf "http://127.0.0.1:$port/api/v1/enrolment")"
echo "$view"
grep -q '"state":"waiting"' <<<"$view"
kill -TERM "$pid"
wait "$pid"
echo "--- deb-check: the package installs, its units verify, the installed till ran and stopped cleanly"
