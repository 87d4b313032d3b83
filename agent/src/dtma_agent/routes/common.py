"""Query parameters shared by the log routes of tools and MCP servers."""

from __future__ import annotations

from datetime import datetime
from typing import Optional

from fastapi import Query, Request

from ..errors import ApiError


def log_query(tail: int = Query(100, ge=1, le=10000, description="number of lines from the end"),
              since: Optional[str] = Query(None, description="unix seconds or an ISO-8601 time")) -> tuple[int, Optional[int]]:
    if since is None or since == "":
        return tail, None
    if since.isdigit():
        return tail, int(since)
    try:
        return tail, int(datetime.fromisoformat(since.replace("Z", "+00:00")).timestamp())
    except ValueError:
        raise ApiError(422, "invalid request", "since: expected unix seconds or an ISO-8601 time", field="since") from None


def container_action(request: Request, view: dict, action: str, timeout: int) -> tuple[dict, bool]:
    """Start, stop or restart one managed container; return its view afterwards and whether its state changed."""
    gateway = request.app.state.gateway
    if action == "start":
        gateway.api.start(view["container_id"])
    elif action == "stop":
        gateway.api.stop(view["container_id"], timeout=timeout)
    else:
        gateway.api.restart(view["container_id"], timeout=timeout)
    after = gateway.find(view["name"], kind=view["kind"]) or {**view, "state": "removed"}
    return after, action == "restart" or after["state"] != view["state"]
