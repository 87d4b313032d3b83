"""A small but real MCP server (official `mcp` SDK) used by the demo, the tests and the benchmarks.

Transport, port and endpoint path come from the environment so the agent's
`mcpTransportType` / `mcpEndpointPath` / `portBindings` fields drive it.
"""

import os
import signal
import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer(name=os.environ.get("MCP_SERVER_NAME", "dtma-demo"), version="1.0.0")


@server.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def main() -> None:
    # PID 1 ignores SIGTERM unless a handler is installed; stop promptly instead of after the grace period.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    transport = os.environ.get("MCP_TRANSPORT", "streamable-http")
    port = int(os.environ.get("MCP_PORT", "8080"))
    path = os.environ.get("MCP_PATH", "/mcp")
    if transport == "streamable-http":
        server.run("streamable-http", host="0.0.0.0", port=port, streamable_http_path=path)
    elif transport == "sse":
        server.run("sse", host="0.0.0.0", port=port, sse_path=path)
    else:
        server.run("stdio")


if __name__ == "__main__":
    main()
