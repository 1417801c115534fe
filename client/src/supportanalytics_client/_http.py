"""HTTP with the standard library: one request, its status, headers and body; never a redirect
(a POST turned into a GET by one would be lost: the answer is an error to fix the URL)."""

from __future__ import annotations

import email.utils
import http.client
import json
import time
import urllib.error
import urllib.request
from typing import Any, NamedTuple

from supportanalytics_client._version import __version__

USER_AGENT = f"supportanalytics-client/{__version__}"
NETWORK = 0  # the status of a request that got no HTTP answer
# A Retry-After longer than this is taken as this: a broken header must not park the spool.
MAX_RETRY_AFTER = 600.0


class Answer(NamedTuple):
    status: int  # NETWORK when there was no HTTP answer
    headers: dict[str, str]
    body: bytes
    problem: str  # what went wrong, for the log (empty for a 2xx)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def detail(self) -> str:
        data = self.json()
        if isinstance(data, dict) and isinstance(data.get("detail"), str):
            return data["detail"]
        return self.body[:200].decode("utf-8", "replace")

    def retry_after(self) -> float | None:
        """Seconds the server asked us to wait (Retry-After: seconds or an HTTP date)."""
        value = self.headers.get("retry-after")
        if not value:
            return None
        try:
            seconds = float(value)
        except ValueError:
            try:
                moment = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                return None
            seconds = moment.timestamp() - time.time()
        return min(MAX_RETRY_AFTER, max(0.0, seconds))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # the 3xx comes back as an HTTPError


_OPENER = urllib.request.build_opener(_NoRedirect)


def request(method: str, url: str, *, key: str, body: bytes | None = None, timeout: float) -> Answer:
    headers = {"Authorization": f"Bearer {key}", "User-Agent": USER_AGENT, "Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    try:
        with _OPENER.open(
            urllib.request.Request(url, data=body, headers=headers, method=method), timeout=timeout
        ) as response:
            return Answer(response.status, _lower(response.headers), response.read(), "")
    except urllib.error.HTTPError as error:
        with error:
            body = error.read()
        answer = Answer(error.code, _lower(error.headers), body, "")
        where = (
            f" to {answer.headers['location']}"
            if 300 <= error.code < 400 and "location" in answer.headers
            else ""
        )
        return answer._replace(problem=f"HTTP {error.code}{where}: {answer.detail()}")
    except (OSError, http.client.HTTPException, ValueError) as error:
        # URLError, refused or reset connections, timeouts, a malformed answer.
        reason = getattr(error, "reason", None) or error
        return Answer(NETWORK, {}, b"", f"{type(error).__name__}: {reason}")


def _lower(headers: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()} if headers else {}
