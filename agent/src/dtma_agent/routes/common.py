"""Query parameters shared by the log routes of tools and MCP servers."""

from __future__ import annotations

from datetime import datetime
from typing import Optional

from fastapi import Query

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
