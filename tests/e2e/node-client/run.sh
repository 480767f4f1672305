#!/usr/bin/env bash
# Starts openvidu-server on an ephemeral port and runs the openvidu-node-client suite against it.
#   OPENVIDU_SERVER_BIN, E2E_SERVER_LOG  see ../lib/server.sh
#   E2E_TIMEOUT          seconds allowed for `npm test` (default 300)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../lib/server.sh"

mkdir "$work/recordings"
start_openvidu_server OPENVIDU_RECORDING=true OPENVIDU_RECORDING_PATH="$work/recordings"

cd "$here"
[[ -d node_modules ]] || npm ci --no-audit --no-fund
timeout "${E2E_TIMEOUT:-300}" npm test
