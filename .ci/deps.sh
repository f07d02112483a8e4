#!/usr/bin/env bash
# Installs what the tests need when it is missing: Debian packages, npm packages, a Python venv.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v psql >/dev/null || need_apt+=(postgresql-client)
command -v chromium >/dev/null || need_apt+=(chromium)
# clamd for tests/scan.rs (started per test with its own config and test signatures; no download)
command -v clamd >/dev/null || [ -x /usr/sbin/clamd ] || need_apt+=(clamav-daemon)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need_apt[*]}"
  apt-get update -qq && apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

VENV="${HOME}/.cache/articula/venv"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q -r tests/requirements.txt

for dir in web loadtests/peer tests/clients/node; do
  if [ -f "$dir/package-lock.json" ]; then
    stamp="$dir/node_modules/.installed"
    if [ ! -f "$stamp" ] || [ "$dir/package-lock.json" -nt "$stamp" ]; then
      (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) && touch "$stamp"
    fi
  fi
done
