"""Bearer-token authentication for every route but GET /health (the API schema and docs need the token too).

It is ASGI middleware rather than a route dependency so that it runs first: a caller without a valid
token gets 401 before its body is parsed or validated, whatever it sent.
"""

from __future__ import annotations

import hmac


from .errors import error_response

PUBLIC_PATHS = frozenset({"/health"})


def token_id_for(header: str, tokens: dict[str, str]) -> tuple[str | None, str, str]:
    """(token id, error, message): the id of the token the header carries, or why there is none."""
    if not header:
        return None, "missing bearer token", "send an Authorization: Bearer <token> header"
    scheme, _sep, supplied = header.partition(" ")
    if scheme.lower() != "bearer" or not supplied.strip():
        return None, "malformed authorization header", "expected Authorization: Bearer <token>"
    supplied_bytes = supplied.strip().encode()
    matched = None
    # Compare against every token in constant time, without an early exit that would leak which one matched.
    for token_id, token in tokens.items():
        if hmac.compare_digest(supplied_bytes, token.encode()):
            matched = token_id
    if matched is None:
        return None, "invalid bearer token", "the token does not match DTMA_BEARER_TOKEN or BACKEND_TO_DTMA_API_KEY"
    return matched, "", ""


class BearerAuth:
    def __init__(self, app, tokens: dict[str, str]):
        self.app, self.tokens = app, tokens

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS:
            return await self.app(scope, receive, send)
        header = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), "")
        token_id, error, message = token_id_for(header, self.tokens)
        if token_id is None:
            response = error_response(401, error, message, {"WWW-Authenticate": "Bearer"})
            return await response(scope, receive, send)
        scope.setdefault("state", {})["token_id"] = token_id  # request.state.token_id in the routes
        return await self.app(scope, receive, send)


MAX_BODY_BYTES = 1024 * 1024


class BodyLimit:
    """Request bodies over MAX_BODY_BYTES are a 413 before anything parses them, with or without Content-Length
    (a chunked body is counted as it arrives). The body is read here and replayed to the app: once past the
    limit, the app is never called, so no route or parser sees a partial body."""

    def __init__(self, app, limit: int = MAX_BODY_BYTES):
        self.app, self.limit = app, limit

    async def _too_large(self, scope, receive, send):
        response = error_response(413, "request too large", f"the request body exceeds {self.limit} bytes",
                                  {"Connection": "close"})
        await response(scope, receive, send)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if length is None and all(k != b"transfer-encoding" for k, _v in scope["headers"]):
            return await self.app(scope, receive, send)  # neither a length nor chunked: HTTP/1.1 has no body to count
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await self._too_large(scope, receive, send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            size += len(message.get("body", b""))
            if size > self.limit:
                return await self._too_large(scope, receive, send)
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()  # afterwards: the disconnect, when it comes

        return await self.app(scope, replay, send)
