#!/usr/bin/env bash
# Quick start: the mock Cleanmail-like API and the gateway in front of it.
# Keeps its token, mock data and gateway state in ./run so a restart changes nothing for Entra.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
RUN_DIR=${RUN_DIR:-run}
HOST=${SCIM_GATEWAY_HOST:-127.0.0.1}
PORT=${SCIM_GATEWAY_PORT:-8080}
MOCK_PORT=${MOCK_PORT:-8081}
mkdir -p "$RUN_DIR"
chmod 700 "$RUN_DIR"

if [ -z "${SCIM_GATEWAY_TOKEN:-}" ]; then
  [ -s "$RUN_DIR/token" ] || (umask 077 && "$BIN/python" -c 'import secrets; print(secrets.token_urlsafe(32))' > "$RUN_DIR/token")
  SCIM_GATEWAY_TOKEN=$(cat "$RUN_DIR/token")
fi
if [ -z "${SCIM_GATEWAY_CLEANMAIL_API_KEY:-}" ]; then
  [ -s "$RUN_DIR/mock-api-key" ] || (umask 077 && "$BIN/python" -c 'import secrets; print(secrets.token_hex(16))' > "$RUN_DIR/mock-api-key")
  SCIM_GATEWAY_CLEANMAIL_API_KEY=$(cat "$RUN_DIR/mock-api-key")
fi
export SCIM_GATEWAY_TOKEN SCIM_GATEWAY_CLEANMAIL_API_KEY
export SCIM_GATEWAY_BACKEND=${SCIM_GATEWAY_BACKEND:-cleanmail}
export SCIM_GATEWAY_CLEANMAIL_URL=${SCIM_GATEWAY_CLEANMAIL_URL:-http://127.0.0.1:$MOCK_PORT}
export SCIM_GATEWAY_CLEANMAIL_DOMAIN=${SCIM_GATEWAY_CLEANMAIL_DOMAIN:-${MOCK_DOMAIN:-example.com}}
export SCIM_GATEWAY_STATE=${SCIM_GATEWAY_STATE:-sqlite:///$RUN_DIR/state.sqlite3}

mock_pid=""
cleanup() { [ -n "$mock_pid" ] && kill "$mock_pid" 2>/dev/null || true; }
trap cleanup EXIT INT TERM

if [ "$SCIM_GATEWAY_BACKEND" = "cleanmail" ] && [ "$SCIM_GATEWAY_CLEANMAIL_URL" = "http://127.0.0.1:$MOCK_PORT" ]; then
  "$BIN/scim-gateway" mock-cleanmail --port "$MOCK_PORT" --api-key "$SCIM_GATEWAY_CLEANMAIL_API_KEY" \
    --data "$RUN_DIR/mock-data.json" --control --auto-create-domains --domain "${MOCK_DOMAIN:-example.com}" >"$RUN_DIR/mock.log" 2>&1 &
  mock_pid=$!
  for _ in $(seq 1 50); do
    "$BIN/python" - "$MOCK_PORT" <<'PY' && break
import socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=0.2).close()
except OSError:
    sys.exit(1)
PY
    sleep 0.1
  done
  echo "Mock Cleanmail API:  http://127.0.0.1:$MOCK_PORT (log: $RUN_DIR/mock.log)"
fi

cat <<MSG

  Tenant URL:    http://$HOST:$PORT/scim/v2
  Secret Token:  $SCIM_GATEWAY_TOKEN

  Entra needs HTTPS: publish this through your reverse proxy and enter https://<your-host>/scim/v2.
  Try it:  curl -H "Authorization: Bearer \$(cat $RUN_DIR/token)" http://$HOST:$PORT/scim/v2/Users

MSG
"$BIN/scim-gateway" serve --host "$HOST" --port "$PORT"
