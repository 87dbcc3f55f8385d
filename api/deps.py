"""What route handlers receive: the services of one app, and the caller's key, as `Annotated` aliases.

`create_app` stores one `ApiServices` on `app.state`; each getter below hands out one part of it,
so a test overrides exactly the part it fakes (`app.dependency_overrides[get_history] = ...`).
Role aliases (`Viewer`, `Operator`, `Admin`) authenticate the caller: no or unknown key → 401,
a key whose role is too low → 403, too many wrong keys from one address or at one key id → 429
(api/auth_failures.py).

Every dependency here is `async def` on purpose: FastAPI runs each plain `def` dependency in a worker
thread, and a thread hop per getter per request cost more than the requests themselves (the
latest-state p99 under load, benchmarks/README.md). They only read attributes and memory; the one
that may touch SQLite (`authenticate`, on a cache miss) hands that to a worker thread itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Protocol

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from api.auth_failures import AuthFailures
from api.device_states import DeviceStates
from api.events import EventHub
from api.feed import LiveFeed
from api.keys import ApiKey, KeyStore, Role
from api.metrics import ApiMetrics
from api.sites import SiteTree
from core.clock import Clock
from core.settings.api import ApiSettings
from rules.access import AlertAccess


class ReadinessCheck(Protocol):
    """One thing /readyz asks about. `check()` returns a short detail when fine and raises
    `NotReady` (with what to look at) when not; it may block briefly (it runs in a thread)."""

    name: str

    def check(self) -> str: ...


class NotReady(Exception):
    pass


class BackgroundService(Protocol):
    """A background part of the API (the MQTT subscription): `start()` once at startup, `stop()` once
    at shutdown, after which it publishes nothing."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass
class ApiServices:
    settings: ApiSettings
    clock: Clock
    states: DeviceStates
    sites: SiteTree
    keys: KeyStore
    hub: EventHub
    metrics: ApiMetrics
    history: Any = None
    """api.history.HistoryReader, or None when no InfluxDB is configured (history → 503)."""
    alerts: AlertAccess | None = None
    """The rules engine's alerts, acks and silences (rules.access), or None when its store is not
    available (alerts → 503)."""
    rule_files: Sequence[Path] = ()
    """The rule files the rules engine runs (listed and shown by /rules)."""
    readiness: Sequence[ReadinessCheck] = ()
    background: Sequence[BackgroundService] = ()
    pollers: Sequence[Callable[[], object]] = ()
    """Called about once a second in a worker thread (e.g. AlertFeed.poll)."""
    extra_metrics: Sequence[Callable[[], str]] = field(default_factory=tuple)
    """Callables returning Prometheus text appended to /metrics (alert gauges, collector figures)."""
    feed: LiveFeed | None = None
    """The API's MQTT subscription and what the sweep last saw of it (GET /api/v1/feed); None: no
    subscription (device state is whatever was loaded, and silence is judged as always)."""


async def get_services(request: Request) -> ApiServices:
    return request.app.state.services


async def get_clock(request: Request) -> Clock:
    return request.app.state.services.clock


async def get_states(request: Request) -> DeviceStates:
    return request.app.state.services.states


async def get_sites(request: Request) -> SiteTree:
    return request.app.state.services.sites


async def get_keys(request: Request) -> KeyStore:
    return request.app.state.services.keys


async def get_hub(request: Request) -> EventHub:
    return request.app.state.services.hub


async def get_history(request: Request) -> Any:
    return request.app.state.services.history


async def get_alerts(request: Request) -> AlertAccess | None:
    return request.app.state.services.alerts


ServicesDep = Annotated[ApiServices, Depends(get_services)]
ClockDep = Annotated[Clock, Depends(get_clock)]
StatesDep = Annotated[DeviceStates, Depends(get_states)]
SitesDep = Annotated[SiteTree, Depends(get_sites)]
KeysDep = Annotated[KeyStore, Depends(get_keys)]
HubDep = Annotated[EventHub, Depends(get_hub)]

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer fmk_...` (create keys with `facmon keys`)")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the same key in an `X-API-Key` header")


async def get_auth_failures(request: Request) -> AuthFailures:
    return request.app.state.auth_failures


AuthFailuresDep = Annotated[AuthFailures, Depends(get_auth_failures)]


def _token(bearer: HTTPAuthorizationCredentials | None, header: str | None) -> str | None:
    return bearer.credentials if bearer is not None else header


def _too_many(wait_s: int) -> HTTPException:
    return HTTPException(429, f"too many requests with a wrong API key; wait {wait_s} s, then retry with a valid key",
                         headers={"Retry-After": str(wait_s)})


async def _check(request: Request, keys: KeyStore, failures: AuthFailures, token: str) -> ApiKey | None:
    """The live key of `token`, or None after counting the failure; raises 429 past the limits."""
    address = request.client.host if request.client is not None else "unknown"
    wait = failures.address_retry_after_s(address)
    if wait is not None:
        raise _too_many(wait)
    token = token[:200]
    key = keys.verified(token) or await run_in_threadpool(keys.authenticate, token)
    if key is None:
        wait = failures.failed(address, token)
        if wait is not None:
            raise _too_many(wait)
    return key


async def authenticate(
    request: Request,
    keys: KeysDep,
    failures: AuthFailuresDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    header: Annotated[str | None, Security(_header)],
) -> ApiKey:
    """The caller's live key. 401 (with `WWW-Authenticate`) when there is none or it is not valid;
    429 (with `Retry-After`) past the failure limits. A key verified within the last second comes from
    memory; otherwise SQLite is asked in a worker thread, never on the event loop."""
    token = _token(bearer, header)
    if not token:
        raise HTTPException(401, "an API key is required: send `Authorization: Bearer <key>` "
                                 "(an admin creates keys with `facmon keys create`)",
                            headers={"WWW-Authenticate": "Bearer"})
    key = await _check(request, keys, failures, token)
    if key is None:
        raise HTTPException(401, "the API key is not valid (unknown, revoked or mistyped)",
                            headers={"WWW-Authenticate": "Bearer"})
    return key


async def caller_if_any(
    request: Request,
    keys: KeysDep,
    failures: AuthFailuresDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    header: Annotated[str | None, Security(_header)],
) -> ApiKey | None:
    """For endpoints open to all that tell a key's holder more: the live key, or None when no key
    or a wrong one was sent (a wrong one counts as a failure; 429 past the limits)."""
    token = _token(bearer, header)
    return await _check(request, keys, failures, token) if token else None


def _require(role: Role) -> Callable[[ApiKey], ApiKey]:
    async def check(key: Annotated[ApiKey, Depends(authenticate)]) -> ApiKey:
        if not key.role.allows(role):
            raise HTTPException(403, f"this needs the {role.value} role; key {key.id} ({key.name}) is "
                                     f"{key.role.value}")
        return key
    check.__name__ = f"require_{role.value}"
    return check


require_viewer = _require(Role.VIEWER)
require_operator = _require(Role.OPERATOR)
require_admin = _require(Role.ADMIN)

Viewer = Annotated[ApiKey, Depends(require_viewer)]
Operator = Annotated[ApiKey, Depends(require_operator)]
Admin = Annotated[ApiKey, Depends(require_admin)]
