"""Query parameters shared by the log routes of tools and MCP servers."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Optional

from fastapi import Query
from pydantic import BeforeValidator

from ..errors import ApiError


def _ascii_int(value):
    """Query integers in ASCII digits only: Python's int() also reads "٣" and "²"-like digits."""
    if isinstance(value, str) and not re.fullmatch(r"-?[0-9]{1,18}", value):
        raise ValueError("must be an integer in ASCII digits")
    return value


def _ascii_number(value):
    if isinstance(value, str) and not re.fullmatch(r"-?[0-9]{1,9}(\.[0-9]{1,9})?", value):
        raise ValueError("must be a number in ASCII digits")
    return value


def _strict_bool(value):
    """Only true or false: "yes", "on" and "1" are not coerced."""
    if isinstance(value, str):
        if value not in ("true", "false"):
            raise ValueError("must be true or false")
        return value == "true"
    return value


QueryInt = Annotated[int, BeforeValidator(_ascii_int)]
QueryFloat = Annotated[float, BeforeValidator(_ascii_number)]
QueryBool = Annotated[bool, BeforeValidator(_strict_bool)]


def log_query(tail: Annotated[QueryInt, Query(ge=1, le=10000, description="number of lines from the end")] = 100,
              since: Optional[str] = Query(None, max_length=64, description="unix seconds or an ISO-8601 time")
              ) -> tuple[int, Optional[int]]:
    if since is None or since == "":
        return tail, None
    invalid = ApiError(422, "invalid request", "since: expected unix seconds or an ISO-8601 time (ASCII digits)",
                       field="since", fields=[{"field": "since", "message": "expected unix seconds or an ISO-8601 time"}])
    if not since.isascii():
        raise invalid
    if since.isdigit():
        return tail, int(since)
    try:
        return tail, int(datetime.fromisoformat(since.replace("Z", "+00:00")).timestamp())
    except (ValueError, OverflowError, OSError):
        raise invalid from None
