#!/usr/bin/env bash
# The browser suite's media tests with subscribers that start from a replayed keyframe: the server
# runs with OPENVIDU_STREAMS_KEYFRAME_REPLAY_MS=5000, so a subscription whose connection comes up
# within 5 s of the publisher's last keyframe is sent that keyframe and what followed from the
# node's history (the default, 100 ms, rarely applies in these tests). The tests check that
# openvidu-browser in Chromium decodes what it gets (VP8, VP9 and H264); this script then checks in
# the server's log that subscriptions did start that way, and adds that check to the TAP summary
# ("# pass N" / "# fail N", one more result).
#   tests/e2e/browser/replay.sh      (the environment of ./run.sh applies)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log="$(mktemp)" tap="$(mktemp)"
trap 'rm -f "$log" "$tap"' EXIT

rc=0
OPENVIDU_STREAMS_KEYFRAME_REPLAY_MS=5000 RUST_LOG="${RUST_LOG:-info},openvidu_media::publisher=debug" \
  E2E_SERVER_LOG="$log" E2E_MEDIA=1 "$here/run.sh" test/media.test.js test/codecs.test.js 2>&1 | tee "$tap" || rc=$?
pass="$(sed -n 's/^# pass \([0-9]\+\)$/\1/p' "$tap" | tail -n 1)"
fail="$(sed -n 's/^# fail \([0-9]\+\)$/\1/p' "$tap" | tail -n 1)"
replayed="$(grep -c 'subscriber starts from the last keyframe' "$log" || true)"
if ((replayed > 0)); then
  echo "ok - $replayed subscriptions started from a replayed keyframe (server log)"
  pass=$((${pass:-0} + 1))
else
  echo "not ok - no subscription started from a replayed keyframe (server log)"
  fail=$((${fail:-0} + 1))
  rc=1
fi
echo "# pass $pass"
echo "# fail ${fail:-1}"
exit "$rc"
