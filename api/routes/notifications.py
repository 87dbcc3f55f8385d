"""The local notifications feed: what the rules engine told people, newest first (the status page's
feed card polls it with `after_id`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.deps import Viewer
from api.models import iso
from api.problems import ERROR_RESPONSES
from api.routes.alerts import StoreDep

SQLITE_INT_MAX = 2**63 - 1  # a larger id cannot exist, and SQLite cannot even compare with it
router = APIRouter(prefix="/notifications", tags=["notifications"], responses=ERROR_RESPONSES)


class FeedEntryOut(BaseModel):
    id: int = Field(description="grows with every entry: pass the highest seen as after_id to get only newer ones")
    at: datetime
    receiver: str
    notification_id: str = Field(description="the same id the notification carries on every channel")
    status: str = Field(description="firing or resolved")
    severity: str
    site: str
    title: str
    body: str = Field(description="the message as sent, times in the site's time zone")


@router.get("", response_model=list[FeedEntryOut], summary="The notifications feed, newest first")
def list_notifications(_: Viewer, store: StoreDep,
                       after_id: Annotated[int, Query(ge=0, le=SQLITE_INT_MAX,
                                                      description="only entries with a higher id")] = 0,
                       limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[FeedEntryOut]:
    return [FeedEntryOut(id=e.id, at=iso(e.at), receiver=e.receiver, notification_id=e.notification_id,
                         status=e.status, severity=e.severity, site=e.site, title=e.title, body=e.body)
            for e in store.feed(after_id, limit)]
