"""The app factory: `create_app(settings, services)` builds one FastAPI app; nothing is created at import.

    /healthz /readyz /metrics          health (no key)
    /api/v1/sites/...                  site tree, device state          viewer
    /api/v1/history/...                InfluxQL history                 viewer
    /api/v1/alerts, /silences, /rules  rules store                      viewer / operator / admin
    /api/v1/incidents                  active alerts grouped by cause   viewer / operator (ack)
    /api/v1/events                     live events (SSE)                viewer
    /api/v1/feed                       whether the API hears the broker viewer
    /api/v1/keys                       API keys                         admin
    /status/                           the live status page (static; asks for a key in the browser)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth_failures import AuthFailures
from api.body_limit import BodyLimit
from api.deps import ApiServices
from api.device_states import DeviceEvent
from api.events import LiveEvent
from api.models import device_out, feed_out
from api.problems import install_problem_handlers
from api.routes import (
    alerts,
    events,
    feed,
    health,
    history,
    incidents,
    keys,
    kinds,
    notifications,
    reports,
    rules,
    silences,
    sites,
    unmatched,
)
from api.security_headers import SecurityHeaders

API_PREFIX = "/api/v1"
STATIC_DIR = Path(__file__).parent / "static"
SWEEP_INTERVAL_S = 1.0
REVOCATION_CHECK_S = 0.5
"""How often open event streams' keys are checked against SQLite: a key revoked by another process
(`facmon keys revoke`) loses its streams within this plus one query; one revoked through the API, at once."""
log = logging.getLogger("facmon.api")

DESCRIPTION = """Facility state, history and alerts of facmon.

Every `/api/v1` endpoint needs an API key (`Authorization: Bearer fmk_…`, or `X-API-Key`), created
with `facmon keys create --name WHO --role viewer|operator|admin`. Viewers read; operators also
acknowledge alerts and manage silences; admins also validate rules and manage keys.
Errors are RFC 9457 problem details (`application/problem+json`)."""


def publish_device_events(services: ApiServices, device_events: Iterable[DeviceEvent]) -> None:
    """Turn state changes into live events (`reading`, `presence`) carrying the device as the API shows it.
    Only while an event stream is open: with nobody watching, a reading costs no JSON and no wake-up of
    the event loop (a stream opened later starts from the current state, as the status page does)."""
    if not services.hub.subscriber_count:
        return
    for event in device_events:
        configured = services.sites.device(event.state.device.site, event.state.device.device)
        body = device_out(event.state, configured).model_dump(mode="json")
        services.hub.publish(LiveEvent(event.kind.value, body))


class _RequestMetrics:
    """Pure ASGI middleware: count and time requests by route template (not the raw path)."""

    def __init__(self, app: ASGIApp, services: ApiServices) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        clock = self.services.clock
        started = clock.monotonic()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = _route_template(scope)
            self.services.metrics.observe_request(scope["method"], route, status, clock.monotonic() - started)


def _route_template(scope: Scope) -> str:
    """The matched route's template with its router prefix (scope["route"] holds the path without it)."""
    path = getattr(scope.get("route"), "path", None)
    if path is None:
        return "(unmatched)"
    if scope["path"].startswith(API_PREFIX + "/") and not path.startswith(API_PREFIX):
        return API_PREFIX + path
    return path


def sweep_once(services: ApiServices) -> None:
    """Note the API's own feed (a change is a `feed` live event), then judge silent devices, unless
    the silence is the API's own (api/feed.py): a lost feed never marks devices offline."""
    now = services.clock.now()
    feed = services.feed
    if feed is not None:
        changed = feed.watch.update(feed.is_connected(), now)
        if changed is not None:
            if changed.connected:
                log.info("api feed restored", extra={"judging_silence_after_s": services.settings.stale_after_s})
            else:
                log.warning("api feed lost: device presence frozen at the last known state until it is back")
            services.hub.publish(LiveEvent("feed", feed_out(changed).model_dump(mode="json")))
        if not feed.watch.may_judge_silence(now):
            return
    publish_device_events(services, services.states.sweep(now))


async def _sweep_forever(services: ApiServices) -> None:
    while True:
        await asyncio.sleep(SWEEP_INTERVAL_S)
        sweep_once(services)
        for poll in services.pollers:
            try:
                await asyncio.to_thread(poll)
            except Exception:  # a poller's failure (store locked, disk full) must not end the sweep
                log.exception("poller failed", extra={"poller": getattr(poll, "__qualname__", repr(poll))})


async def _end_revoked_streams_forever(services: ApiServices) -> None:
    while True:
        await asyncio.sleep(REVOCATION_CHECK_S)
        key_ids = services.hub.key_ids()
        if not key_ids:
            continue
        try:
            live = await asyncio.to_thread(services.keys.live_ids, key_ids)
        except sqlite3.Error:  # the keys file locked or gone: keep the streams, try again next time
            log.exception("cannot check the keys of open event streams")
            continue
        ended = services.hub.end_streams_of(key_ids - live)
        if ended:
            log.info("ended event streams of revoked keys", extra={"streams": ended,
                                                                  "keys": ",".join(sorted(key_ids - live))})


def create_app(services: ApiServices) -> FastAPI:
    """One app serving `services` (configured by `services.settings`). Background parts
    (`services.background`) start with the app's lifespan and stop with it; so does the sweep that
    marks silent devices stale."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        services.hub.bind(asyncio.get_running_loop())
        started = []
        tasks = [asyncio.create_task(_sweep_forever(services)),
                 asyncio.create_task(_end_revoked_streams_forever(services))]
        try:
            for part in services.background:
                await asyncio.to_thread(part.start)
                started.append(part)
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for part in reversed(started):
                await asyncio.to_thread(part.stop)

    app = FastAPI(title="facmon API", version="1", description=DESCRIPTION, lifespan=lifespan,
                  openapi_url=f"{API_PREFIX}/openapi.json", docs_url=f"{API_PREFIX}/docs", redoc_url=None)
    app.state.services = services
    settings = services.settings
    app.state.auth_failures = AuthFailures(services.clock, settings.auth_failure_limit,
                                           settings.auth_failure_window_s)
    install_problem_handlers(app)
    app.include_router(health.router)
    for module in (sites, kinds, history, reports, alerts, incidents, silences, rules, events, feed,
                   keys, notifications):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(unmatched.router, prefix=API_PREFIX)  # last: it answers what no route above matched
    app.mount("/status", StaticFiles(directory=STATIC_DIR, html=True), name="status")

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/status/")

    # Added innermost first: a request meets SecurityHeaders, CORS, metrics, then BodyLimit, which
    # refuses an oversized body before routing or any key check.
    app.add_middleware(unmatched.KeepEncodedSlashes)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(_RequestMetrics, services=services)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["*"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type"])
    app.add_middleware(SecurityHeaders, docs_path=app.docs_url or "")
    return app


