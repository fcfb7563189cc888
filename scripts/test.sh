#!/usr/bin/env bash
# The test command: installs what the tests need (real MCP peers from PyPI and npm, Debian
# packages), then runs formatting, lints and the whole test suite. Safe to run again: installs
# are skipped when already current.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

# Each step with the minutes and seconds since the start, so a slow step shows in CI's log.
step() { printf '\n== [%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  step "apt-get install ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
# A real Prometheus (promtool) and Alertmanager for the alerting tests.
apt_install prometheus prometheus-alertmanager
# Cluster mode's store: a real Redis (the tests start their own on free ports).
apt_install redis-server redis-tools
# Audit events to syslog: a real rsyslog (with its TLS driver) receives them in the tests.
apt_install rsyslog rsyslog-gnutls
# The side-by-side speed benchmark: a stock nginx (as competitor and fast upstream) and wrk.
apt_install nginx-light wrk
# A real headless browser for the status-page tests (driven by playwright-core from npm).
apt_install chromium
command -v python3 >/dev/null || apt_install python3 python3-venv

# The official Python MCP SDK (client and server), pinned in tests/peers/requirements.txt.
venv="$root/target/peers-venv"
stamp="$venv/.installed-$(sha256sum tests/peers/requirements.txt | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  step "pip install -r tests/peers/requirements.txt into target/peers-venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r tests/peers/requirements.txt
  touch "$stamp"
fi

# @modelcontextprotocol/server-everything and playwright-core, pinned by tests/peers/package-lock.json.
lock_stamp="tests/peers/node_modules/.installed-$(sha256sum tests/peers/package-lock.json | cut -c1-16)"
if [ ! -f "$lock_stamp" ]; then
  step "npm ci in tests/peers"
  (cd tests/peers && npm ci --no-audit --no-fund --loglevel=error)
  touch "$lock_stamp"
fi

# A real Backstage backend (catalog + MCP Actions), pinned by tests/backstage/package-lock.json.
# better-sqlite3 compiles from source here (its prebuilt download is unreachable): needs g++ and make.
command -v g++ >/dev/null && command -v make >/dev/null || apt_install g++ make
bs_stamp="tests/backstage/node_modules/.installed-$(sha256sum tests/backstage/package-lock.json | cut -c1-16)"
if [ ! -f "$bs_stamp" ]; then
  step "npm ci in tests/backstage (a few minutes on a cold machine)"
  (cd tests/backstage && npm ci --no-audit --no-fund --loglevel=error)
  touch "$bs_stamp"
fi

# The dependency policy (deny.toml): licenses, duplicate versions, sources. cargo-deny is pinned
# and built once into target/tools (about 3.5 minutes cold, then cached with target/).
deny="$root/target/tools/bin/cargo-deny"
if [ ! -x "$deny" ] || ! "$deny" --version | grep -q "0.20.2"; then
  step "cargo install cargo-deny 0.20.2 into target/tools"
  cargo install --quiet --locked --version 0.20.2 --root "$root/target/tools" cargo-deny
fi

step "cargo deny check licenses bans sources"
"$deny" check licenses bans sources

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --locked --all-targets -- -D warnings

# The fuzz targets (fuzz/, nightly cargo fuzz), each run 10 s from its seed corpus: at the lowest
# CPU priority while the tests run, so it takes the time the tests leave idle. A long run:
# scripts/fuzz.sh SECONDS.
step "scripts/fuzz.sh --smoke 10 (in the background, at low priority)"
nice -n 19 scripts/fuzz.sh --smoke 10 >target/fuzz-smoke.log 2>&1 &
fuzz_pid=$!
trap 'kill "$fuzz_pid" 2>/dev/null || true' EXIT

step "cargo test"
cargo test --locked --all-targets 2>&1 | tee target/test-output.txt

step "fuzz smoke (scripts/fuzz.sh --smoke 10)"
if ! wait "$fuzz_pid"; then
  cat target/fuzz-smoke.log
  echo "the fuzz smoke failed: see the table above" >&2
  exit 1
fi
grep '^|' target/fuzz-smoke.log

# The precision and recall tables of tests/e2e/findings.rs (healthy day: no finding; incident
# day: each incident found once).
for day in healthy-day incident-day; do
  printf '\nfindings, %s:\n' "$day"
  cat "target/findings-$day.md"
done

# Memory under hostile clients, small size: fails when peak RSS passes the ceiling in docs/operations.md (Memory ceiling).
step "bench/memory.py --quick"
"$venv/bin/python" bench/memory.py --quick --binary target/debug/mcp-tap

# Speed next to nginx, small size, on the release build: fails only when a throughput ratio falls
# below a generous floor (a regression, not noise). The full table: bench/speed.py (docs/performance.md).
step "cargo build --release; bench/speed.py --quick"
cargo build --locked --release
python3 bench/speed.py --quick --binary target/release/mcp-tap

# Audit outputs whose receivers are down for 60 s under 2,000 req/s: no failed request, throughput
# as without them, flat memory, every undelivered event counted, and syslog catching up after.
step "bench/siem_outage.py"
python3 bench/siem_outage.py --binary target/release/mcp-tap

step "done"
