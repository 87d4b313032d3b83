# -*- coding: utf-8 -*-
# Copyright (c) 2026, Agentopia
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This file is private to this collection. It is not a public API and may change without notice.
"""The DTMA agent API client: one place builds URLs, one place turns HTTP answers into typed exceptions."""

from __future__ import annotations

import time
import traceback
from urllib.parse import quote

try:
    import requests
    HAS_REQUESTS = True
    REQUESTS_IMPORT_ERROR = None
except ImportError:
    HAS_REQUESTS = False
    REQUESTS_IMPORT_ERROR = traceback.format_exc()


class DtmaError(Exception):
    """An answer from the agent that is not a success, or no answer at all."""

    def __init__(self, message, status=None, body=None):
        super(DtmaError, self).__init__(message)
        self.message = message
        self.status = status
        self.body = body if isinstance(body, dict) else {}


class DtmaConnectionError(DtmaError):
    """The agent did not answer (down, wrong URL, TLS failure, timeout)."""


class DtmaAuthError(DtmaError):
    """401: the token is missing or wrong."""


class DtmaBlocked(DtmaError):
    """403: the command policy refused the command."""


class DtmaNotFound(DtmaError):
    """404."""


class DtmaConflict(DtmaError):
    """409: a name or port is taken, or the agent's state does not allow the request."""


class DtmaInvalid(DtmaError):
    """400 or 422: the request was refused as invalid; the message names the field."""


class DtmaRateLimited(DtmaError):
    """429: too many restarts or executions; `retry_after` says when to try again."""

    def __init__(self, message, status=None, body=None, retry_after=None):
        super(DtmaRateLimited, self).__init__(message, status, body)
        self.retry_after = retry_after


class DtmaServerError(DtmaError):
    """5xx: the agent or Docker failed."""


_BY_STATUS = {401: DtmaAuthError, 403: DtmaBlocked, 404: DtmaNotFound, 409: DtmaConflict, 400: DtmaInvalid,
              422: DtmaInvalid, 429: DtmaRateLimited}


def error_for(status, body, retry_after=None):
    """The typed exception for a non-success answer, with the agent's own explanation."""
    body = body if isinstance(body, dict) else {}
    text = body.get("message") or body.get("reason") or body.get("error") or "no explanation in the answer"
    message = "DTMA agent answered HTTP %s: %s" % (status, text)
    if status == 401:
        message += " (check the token option or DTMA_BEARER_TOKEN)"
    if status == 429:
        return DtmaRateLimited(message, status, body, retry_after)
    return _BY_STATUS.get(status, DtmaServerError if status >= 500 else DtmaError)(message, status, body)


class DtmaClient(object):
    """requests-based client; GETs (idempotent) are retried on connection errors, nothing else is."""

    GET_RETRIES = 2
    RETRY_DELAY = 0.5

    def __init__(self, url, token, timeout=30, validate_certs=True, ca_path=None):
        self.base_url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["Authorization"] = "Bearer %s" % token
        self.session.headers["User-Agent"] = "agentopia.dtma"
        self.session.verify = (ca_path or True) if validate_certs else False

    def url_for(self, *segments):
        return self.base_url + "".join("/" + quote(str(s), safe="") for s in segments)

    def request(self, method, segments, params=None, json=None, timeout=None, ok=(200, 201, 202)):
        """Call the agent; return (status, body) for a status in `ok`, raise a DtmaError otherwise."""
        url = self.url_for(*segments)
        attempts = 1 + (self.GET_RETRIES if method == "GET" else 0)
        for attempt in range(attempts):
            try:
                # verify per call: requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override Session.verify
                response = self.session.request(method, url, params=params, json=json,
                                                timeout=timeout or self.timeout, verify=self.session.verify)
                break
            except requests.exceptions.SSLError as exc:
                raise DtmaConnectionError("TLS failure talking to the DTMA agent at %s: %s" % (self.base_url, exc))
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
                if attempt + 1 < attempts:
                    time.sleep(self.RETRY_DELAY * (attempt + 1))
                    continue
                raise DtmaConnectionError("the DTMA agent at %s did not answer: %s" % (self.base_url, exc.__class__.__name__))
        try:
            body = response.json()
        except ValueError:
            body = {"message": response.text[:500]}
        if response.status_code in ok:
            return response.status_code, body
        raise error_for(response.status_code, body, response.headers.get("Retry-After"))

    def get(self, *segments, **kwargs):
        return self.request("GET", segments, **kwargs)[1]

    def post(self, *segments, **kwargs):
        return self.request("POST", segments, **kwargs)[1]

    def put(self, *segments, **kwargs):
        return self.request("PUT", segments, **kwargs)[1]

    def delete(self, *segments, **kwargs):
        return self.request("DELETE", segments, **kwargs)[1]
