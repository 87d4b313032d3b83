"""The bearer-token dependency: every route but GET /health depends on it."""

from __future__ import annotations

import hmac

from fastapi import Request

from .errors import ApiError


def require_token(request: Request) -> str:
    """Return the id of the token the caller used ("agent" or "backend"); 401 otherwise."""
    header = request.headers.get("authorization", "")
    scheme, _, supplied = header.partition(" ")
    if not header:
        raise ApiError(401, "missing bearer token", "send an Authorization: Bearer <token> header")
    if scheme.lower() != "bearer" or not supplied.strip():
        raise ApiError(401, "malformed authorization header", "expected Authorization: Bearer <token>")
    supplied_bytes = supplied.strip().encode()
    matched = None
    # Compare against every token in constant time, without an early exit that would leak which one matched.
    for token_id, token in request.app.state.settings.tokens.items():
        if hmac.compare_digest(supplied_bytes, token.encode()):
            matched = token_id
    if matched is None:
        raise ApiError(401, "invalid bearer token", "the token does not match DTMA_BEARER_TOKEN or BACKEND_TO_DTMA_API_KEY")
    request.state.token_id = matched
    return matched
