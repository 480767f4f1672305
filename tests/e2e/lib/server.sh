# Sourced by the e2e launchers: starts openvidu-server on an ephemeral port, waits for its readiness
# line, exports OV_URL/OV_SECRET, and on exit stops exactly the process it started (printing the
# server's log when the suite failed).
#   start_openvidu_server [NAME=value ...]   extra environment for the server
#   OPENVIDU_SERVER_BIN  server binary (default target/debug/openvidu-server, relative to the repo root)
#   E2E_SERVER_LOG=FILE  keep the server's stdout+stderr in FILE (also when the suite passes)
# Sets: work (a temporary folder removed on exit), server_pid.

e2e_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
work="$(mktemp -d)"
server_pid=""

e2e_cleanup() {
  local rc=$?
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [[ -n "${E2E_SERVER_LOG:-}" ]]; then
    cat "$work/server.out" "$work/server.err" >"$E2E_SERVER_LOG" 2>/dev/null || true
  fi
  if [[ $rc -ne 0 ]]; then
    echo "----- openvidu-server stdout -----"; cat "$work/server.out" 2>/dev/null || true
    echo "----- openvidu-server stderr -----"; cat "$work/server.err" 2>/dev/null || true
    echo "----- end of server log -----"
  fi
  rm -rf "$work"
  exit $rc
}
trap e2e_cleanup EXIT

start_openvidu_server() {
  local bin="${OPENVIDU_SERVER_BIN:-target/debug/openvidu-server}"
  [[ "$bin" == /* ]] || bin="$e2e_root/$bin"
  if [[ ! -x "$bin" ]]; then
    echo "run.sh: server binary not found: $bin (run cargo build first)" >&2
    exit 1
  fi
  local secret url deadline
  secret="e2e-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
  # The readiness loop reads server.out at once: it must exist before the server writes it.
  : >"$work/server.out"
  env OPENVIDU_SECRET="$secret" HTTPS_PORT=0 DOMAIN_OR_PUBLIC_IP=127.0.0.1 "$@" \
    "$bin" >"$work/server.out" 2>"$work/server.err" </dev/null &
  server_pid=$!

  # Wait for the one readiness line: "openvidu-server listening on https://127.0.0.1:PORT".
  deadline=$((SECONDS + 30))
  while :; do
    url="$(sed -n 's#^openvidu-server listening on \(https://[^[:space:]]*\)[[:space:]]*$#\1#p' "$work/server.out" | head -n 1)"
    [[ -n "$url" ]] && break
    if ! kill -0 "$server_pid" 2>/dev/null; then
      echo "run.sh: openvidu-server exited before it was ready" >&2
      exit 1
    fi
    if ((SECONDS >= deadline)); then
      echo "run.sh: openvidu-server did not print its listening line within 30 s" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "run.sh: openvidu-server ready at $url (pid $server_pid)"
  export OV_URL="$url" OV_SECRET="$secret"
}
