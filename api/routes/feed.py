"""The API's own live feed: whether it hears the broker now (a lost feed is not devices offline)."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ServicesDep, Viewer
from api.models import FeedOut, feed_out
from api.problems import ERROR_RESPONSES

router = APIRouter(prefix="/feed", tags=["events"], responses=ERROR_RESPONSES)


@router.get("", response_model=FeedOut, summary="Whether the API hears the broker now")
async def get_feed(_: Viewer, services: ServicesDep) -> FeedOut:
    """While `mqtt_connected` is false, device states are frozen at their last known values (no device
    is judged stale), and the live stream sends a `feed` event at every change."""
    return feed_out(services.feed.watch.state if services.feed is not None else None)
