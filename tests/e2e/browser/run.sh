#!/usr/bin/env bash
# Starts openvidu-server on an ephemeral port and runs the real-browser suite (openvidu-browser 2.20.0 in
# headless Debian Chromium through playwright-core) against it.
#   tests/e2e/browser/run.sh [test files...]   (default: every test/*.test.js)
#   OPENVIDU_SERVER_BIN, E2E_SERVER_LOG  see ../lib/server.sh
#   E2E_TIMEOUT          seconds allowed for `npm test` (default 240)
#   E2E_MEDIA=1          also run the media tests (publish/subscribe, decoded frames, demo page video)
#   CHROMIUM_BIN         browser executable (default /usr/bin/chromium)
#   E2E_VERBOSE=1        print every client's console warnings/errors and RPC errors as TAP diagnostics
#   BOT_BIN              the Rust bot (default target/debug/examples/bot)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../lib/server.sh"

mkdir -p "$work/recordings"
export OV_RECORDING_PATH="$work/recordings"
start_openvidu_server OPENVIDU_DEMO=true OPENVIDU_RECORDING=true OPENVIDU_RECORDING_PATH="$OV_RECORDING_PATH"

cd "$here"
[[ -d node_modules ]] || npm ci --no-audit --no-fund
if (($#)); then
  # ./run.sh test/media.test.js ...: only those files.
  timeout "${E2E_TIMEOUT:-240}" node --test --test-reporter=tap --test-concurrency=1 "$@"
else
  timeout "${E2E_TIMEOUT:-240}" npm test
fi
