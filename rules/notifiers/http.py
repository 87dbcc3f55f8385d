"""One HTTP request for a notifier, with the answer's back-off signals turned into `NotifyError`.

`send_request` returns the answer's status and body on 2xx; otherwise raises `NotifyError`:
retryable for connection failures, timeouts, 408, 429 and 5xx (with `retry_after_s` from a
`Retry-After` header in seconds), not for other 4xx. `describe` lets a channel say what a refusal
means in its own terms (Telegram's `description`, ntfy's `error`).

    NotifyError
      SentNoAnswer   the request went out whole, the answer never came (timed out, or the connection
                     dropped while waiting): the service may have acted on it, so a retry may
                     deliver a second copy. A channel whose service takes an idempotency key sends
                     the same key again; one without (Telegram) marks its retry as a repeat."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from rules.notify import NotifyError


class SentNoAnswer(NotifyError):
    """The request was sent; no answer came. Always retryable; the service may already have it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, True)


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    body: bytes
    headers: Mapping[str, str]


def send_request(method: str, url: str, body: bytes | None, headers: Mapping[str, str], timeout_s: float,
                 shown_url: str | None = None,
                 describe: Callable[[HttpAnswer], NotifyError | None] | None = None) -> HttpAnswer:
    """`shown_url` is what error messages name (a URL without its secret token)."""
    shown = shown_url or url
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers))
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return HttpAnswer(response.status, response.read(), dict(response.headers))
    except urllib.error.HTTPError as err:
        answer = HttpAnswer(err.code, err.read()[:4000], dict(err.headers or {}))
        described = describe(answer) if describe is not None else None
        if described is not None:
            raise described from None
        detail = answer.body[:300].decode("utf-8", "replace")
        raise NotifyError(f"{method} {shown} answered {err.code}: {detail}", _retryable(err.code),
                          retry_after_of(answer.headers)) from None
    except urllib.error.URLError as err:
        reason = err.reason
        if isinstance(reason, socket.gaierror):
            raise NotifyError(f"{method} {shown} failed: DNS cannot resolve the host ({reason.strerror}); check the "
                              "URL and the site's DNS/uplink", True) from None
        if isinstance(reason, TimeoutError | socket.timeout):
            raise NotifyError(f"{method} {shown} timed out after {timeout_s:g} s", True) from None
        raise NotifyError(f"{method} {shown} failed: {reason}", True) from None
    # urllib wraps what fails while connecting or sending in URLError (above); what fails after
    # the request went out, waiting for the answer, arrives bare.
    except TimeoutError:
        raise SentNoAnswer(f"{method} {shown} sent, but no answer within {timeout_s:g} s (it may have "
                           "been delivered)") from None
    except ConnectionError as err:
        raise SentNoAnswer(f"{method} {shown} sent, but the connection dropped before the answer ({err}; "
                           "it may have been delivered)") from None


def _retryable(status: int) -> bool:
    return status >= 500 or status in (408, 429)


def retry_after_of(headers: Mapping[str, str]) -> float | None:
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: the outbox's own back-off applies
