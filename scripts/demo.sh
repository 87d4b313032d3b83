#!/usr/bin/env bash
# The main job on a local default: start a DTMA agent against the local Docker engine, deploy a demo
# MCP group (a streamable-HTTP and an SSE server built from the official MCP SDK), print its health
# including the MCP probe. `scripts/demo.sh stop` removes the group and stops the agent.
set -euo pipefail
cd "$(dirname "$0")/.."
STATE=.demo
PORT=${DTMA_PORT:-30000}
URL="http://127.0.0.1:$PORT"

stop_agent() {
  if [ -f "$STATE/agent.pid" ] && kill -0 "$(cat "$STATE/agent.pid")" 2>/dev/null; then
    kill "$(cat "$STATE/agent.pid")"; sleep 1
  fi
  rm -f "$STATE/agent.pid"
}

api() {  # method path [json body]
  curl -sS -X "$1" -H "Authorization: Bearer $(cat "$STATE/token")" -H 'Content-Type: application/json' \
    ${3:+--data "$3"} "$URL$2"
}

if [ "${1:-}" = stop ]; then
  if [ -f "$STATE/token" ]; then api DELETE "/mcp/groups/demo?gracefulTimeoutMs=3000" >/dev/null || true; fi
  stop_agent
  echo "demo stopped"
  exit 0
fi

bash scripts/setup.sh
mkdir -p "$STATE" && chmod 700 "$STATE"
if [ ! -s "$STATE/token" ]; then
  (umask 077 && openssl rand -hex 32 >"$STATE/token")
fi
stop_agent
DTMA_BEARER_TOKEN=$(cat "$STATE/token") PYTHONUNBUFFERED=1 setsid .venv/bin/dtma-agent --host 127.0.0.1 --port "$PORT" \
  >"$STATE/agent.log" 2>&1 </dev/null &
echo $! >"$STATE/agent.pid"
for _ in $(seq 1 50); do curl -fsS "$URL/health" >/dev/null 2>&1 && break; sleep 0.2; done
echo "agent: $(curl -sS "$URL/health")"

api POST /mcp/groups '{
  "groupId": "demo",
  "servers": [
    {"instanceNameOnToolbox": "demo-echo-http", "dockerImageUrl": "local/mcp-demo:latest",
     "accountToolInstanceId": "demo-1", "mcpTransportType": "streamable-http", "mcpEndpointPath": "/mcp",
     "portBindings": {"8080": 31801}, "resourceLimits": "small"},
    {"instanceNameOnToolbox": "demo-echo-sse", "dockerImageUrl": "local/mcp-demo:latest",
     "accountToolInstanceId": "demo-2", "mcpTransportType": "sse", "mcpEndpointPath": "/sse",
     "environmentVariables": {"MCP_TRANSPORT": "sse", "MCP_PATH": "/sse"},
     "portBindings": {"8080": 31802}, "resourceLimits": "small"}
  ],
  "options": {"sharedNetworking": true, "maxConcurrentDeployments": 2}
}' | .venv/bin/python scripts/demo_report.py deploy
api GET "/mcp/health/demo?retryFor=5" | .venv/bin/python scripts/demo_report.py health
echo "agent still running at $URL (token in $STATE/token, log in $STATE/agent.log); stop with: scripts/demo.sh stop"
