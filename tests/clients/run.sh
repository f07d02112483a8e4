#!/usr/bin/env bash
# Clients we did not write against a real server:
# - python, node: tuspy and tus-js-client each upload a 200 MB binary STL, lose their connection in
#   the middle, resume from the offset the server reports, and check what the server lists and
#   serves (size and SHA-256);
# - ws: Python `websockets` + `msgpack` drive the WebSocket protocol in both codecs
#   (ws_protocol.py: frames pipelined in one write and answered in order; ids as REST's strings);
# - decrypt: tuspy uploads two files, then decrypt_object.py reads the encrypted objects and keys
#   from the server's data dir and decrypts them with Python's `cryptography`, from the format
#   alone (src/objects/crypto.rs), and compares with what was uploaded.
#
#   bash tests/clients/run.sh            # every client
#   bash tests/clients/run.sh python     # only tuspy      (or: node, ws, decrypt; several may be named)
#   WSTEST_GROUPS=ids bash tests/clients/run.sh ws     # only the id/codec checks of ws_protocol.py
#
# ARTICULA_BIN names the server binary (default $CARGO_TARGET_DIR/debug/articula); the Python
# venv is the one .ci/deps.sh fills ($HOME/.cache/articula/venv), the Node.js packages are in
# tests/clients/node (npm ci). TUSTEST_TRIANGLES changes the file size (84 + 50·n bytes).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
: "${CARGO_TARGET_DIR:=$HOME/.cache/articula/target}"
bin="${ARTICULA_BIN:-$CARGO_TARGET_DIR/debug/articula}"
venv="${ARTICULA_VENV:-$HOME/.cache/articula/venv}"
clients=("$@")
[ ${#clients[@]} -gt 0 ] || clients=(python node ws decrypt)
for c in "${clients[@]}"; do
  case "$c" in python | node | ws | decrypt) ;; *) echo "unknown client '$c' (python, node, ws or decrypt)" >&2; exit 2 ;; esac
done
# ordering and/or ids (ws_protocol.py's two groups of checks); both by default.
read -r -a ws_groups <<<"${WSTEST_GROUPS:-}"

[ -x "$bin" ] || { echo "no server binary at $bin (cargo build --bin articula, or set ARTICULA_BIN)" >&2; exit 1; }
[ -x "$venv/bin/python" ] || { echo "no Python venv at $venv (run bash .ci/deps.sh)" >&2; exit 1; }
if [[ " ${clients[*]} " == *" node "* ]] && [ ! -d "$here/node/node_modules/tus-js-client" ]; then
  (cd "$here/node" && npm ci --no-audit --no-fund --loglevel=error)
fi

# The server refuses unknown ARTICULA_* variables (ARTICULA_BIN, ARTICULA_TEST_PG_URL…): it gets
# exactly the settings below and nothing else from the caller's environment.
while read -r name; do unset "$name"; done < <(compgen -e | grep '^ARTICULA_' || true)

work="$(mktemp -d)"
server_pid=""
client_pids=()
cleanup() {
  local status=$?
  for pid in "${client_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ] && [ -s "$work/server.log" ]; then
    echo "--- server log (last 40 lines) ---" >&2
    tail -n 40 "$work/server.log" >&2
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
export ARTICULA_BIND="127.0.0.1:$port"
export ARTICULA_DATA_DIR="$work/data"
export ARTICULA_LOG=warn
export ARTICULA_ARGON2_MEMORY_KIB=64
export ARTICULA_ARGON2_ITERATIONS=1
base="https://127.0.0.1:$port"
cert="$ARTICULA_DATA_DIR/tls/cert.pem"
email="doctor@clients.test"
password="a long password for the tus clients"

json() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# Organisations and a doctor, with the command line on the same data dir.
"$bin" org create --name "Client Test Clinic" --kind clinic >/dev/null
"$bin" org create --name "Client Test Lab" --kind lab >/dev/null
echo -n "$password" | "$bin" user create --email "$email" --name "Dr Client" \
  --org "Client Test Clinic" --role doctor --password-stdin >/dev/null

"$bin" serve >"$work/server.log" 2>&1 &
server_pid=$!
ready=""
for _ in $(seq 1 600); do
  kill -0 "$server_pid" 2>/dev/null || { echo "the server stopped while starting" >&2; exit 1; }
  if [ -f "$cert" ] && curl -sf --cacert "$cert" "$base/healthz" >/dev/null 2>&1; then
    ready=1
    break
  fi
  sleep 0.1
done
[ -n "$ready" ] || { echo "the server did not become ready at $base" >&2; exit 1; }

token="$(curl -sf --cacert "$cert" "$base/api/v1/auth/login" -H 'content-type: application/json' \
  -d "{\"email\":\"$email\",\"password\":\"$password\",\"portal\":\"clinic\"}" | json access_token)"
case_id="$(curl -sf --cacert "$cert" "$base/api/v1/cases" -H 'content-type: application/json' \
  -H "authorization: Bearer $token" -d '{"label":"tus client resume test"}' | json id)"
echo "server $base ready (pid $server_pid), case $case_id"

export TUSTEST_BASE_URL="$base" TUSTEST_CA="$cert" TUSTEST_TOKEN="$token" TUSTEST_CASE_ID="$case_id"
# ws_protocol.py signs in and creates its cases itself, over REST.
export WSTEST_BASE_URL="$base" WSTEST_CA="$cert" WSTEST_EMAIL="$email" WSTEST_PASSWORD="$password"
# The clients run at the same time (the debug server is CPU-bound: this halves the wall time), each
# into its own log, printed when it ends; each is stopped after TUSTEST_TIMEOUT seconds.
limit="${TUSTEST_TIMEOUT:-1200}"
declare -A pid_of
began=$SECONDS
for c in "${clients[@]}"; do
  mkdir -p "$work/$c"
  if [ "$c" = python ]; then
    TUSTEST_WORK_DIR="$work/$c" REQUESTS_CA_BUNDLE="$cert" \
      timeout "$limit" "$venv/bin/python" -u "$here/tuspy_resume.py" >"$work/$c.log" 2>&1 &
  elif [ "$c" = decrypt ]; then
    # It reads the server's data dir (keys, SQLite, objects) itself: the decryption is its own.
    TUSTEST_WORK_DIR="$work/$c" DECRYPTTEST_DATA_DIR="$ARTICULA_DATA_DIR" REQUESTS_CA_BUNDLE="$cert" \
      timeout "$limit" "$venv/bin/python" -u "$here/decrypt_object.py" >"$work/$c.log" 2>&1 &
  elif [ "$c" = ws ]; then
    timeout "$limit" "$venv/bin/python" -u "$here/ws_protocol.py" ${ws_groups[@]+"${ws_groups[@]}"} \
      >"$work/$c.log" 2>&1 &
  else
    TUSTEST_WORK_DIR="$work/$c" timeout "$limit" node "$here/node/tus_resume.mjs" >"$work/$c.log" 2>&1 &
  fi
  pid_of[$c]=$!
  client_pids+=("$!")
done
failed=()
for c in "${clients[@]}"; do
  status=0
  wait "${pid_of[$c]}" || status=$?
  echo "=== $c (exit $status) ==="
  sed "s/^/[$c] /" "$work/$c.log"
  [ "$status" -eq 0 ] || failed+=("$c")
done

passed=$((${#clients[@]} - ${#failed[@]}))
echo "clients ran in $((SECONDS - began)) s"
echo "clients: $passed passed, ${#failed[@]} failed"
[ ${#failed[@]} -eq 0 ] || { echo "failed: ${failed[*]}" >&2; exit 1; }
