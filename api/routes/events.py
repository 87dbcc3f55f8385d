"""Live events as server-sent events: device readings and presence changes, alert transitions."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from api.deps import HubDep, Viewer
from api.problems import ERROR_RESPONSES

router = APIRouter(prefix="/events", tags=["events"], responses=ERROR_RESPONSES)


@router.get("", summary="Live event stream (text/event-stream)",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "events `reading`, `presence` (data: a DeviceOut) and `alert` "
                                            "(data: an alert transition); `overflow` ends a stream that fell "
                                            "behind, `revoked` one whose key was revoked (within 1 s)"}})
async def events(caller: Viewer, hub: HubDep) -> StreamingResponse:
    return StreamingResponse(hub.stream(caller.id), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
