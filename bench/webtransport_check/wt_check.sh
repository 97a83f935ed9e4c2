#!/bin/sh
# usage: ./wt_check.sh aioquic|qh3 [extra wt_server.py flags]  -- one real-Chromium WebTransport check
cd "$(dirname "$0")"
PY=${PY:-../../.venv/bin/python}
LOG=$(mktemp /tmp/wt_server_log.XXXXXX)
mkfifo /tmp/wt_ready.$$
$PY ${SERVER:-wt_server.py} --lifetime 40 --stack "$@" >/tmp/wt_ready.$$ 2>"$LOG" &
SPID=$!
read -r READY HTTP_PORT H3_PORT </tmp/wt_ready.$$
rm -f /tmp/wt_ready.$$
echo "== stack=$* http=$HTTP_PORT h3=$H3_PORT"
timeout 40 node wt_check.mjs "http://127.0.0.1:$HTTP_PORT/" ${NETLOG:-}
kill $SPID 2>/dev/null; wait $SPID 2>/dev/null
echo "-- server log:"; cat "$LOG"; rm -f "$LOG"
