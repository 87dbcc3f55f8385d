"""Silences: mute notifications of matching alerts for a while (the alerts keep their state)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from api.deps import ClockDep, KeysDep, Operator, Viewer
from api.history import BadHistoryRequest, parse_time
from api.models import iso
from api.problems import ERROR_RESPONSES, NotFound, Unprocessable
from api.routes.alerts import StoreDep
from rules.access import SilenceError, SilenceNotFound
from rules.matchers import Matcher, MatcherError, parse_matcher
from rules.silences import Silence

router = APIRouter(prefix="/silences", tags=["silences"], responses=ERROR_RESPONSES)

SilenceId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="the silence id (32 hex digits)")]


class MatcherOut(BaseModel):
    name: str
    op: str
    value: str


class SilenceOut(BaseModel):
    id: str
    matchers: list[MatcherOut]
    starts_at: datetime
    ends_at: datetime
    state: str = Field(description="pending, active or expired")
    created_by: str
    created_at: datetime
    comment: str
    expired_by: str | None


class SilenceIn(BaseModel):
    matchers: list[Annotated[str, Field(max_length=300)]] = Field(
        min_length=1, max_length=20, description="label matchers: name=value, name!=value, name=~re, name!~re")
    starts_at: str | None = Field(None, max_length=40, description="RFC 3339; default now")
    ends_at: str = Field(max_length=40, description="RFC 3339")
    comment: str = Field(min_length=1, max_length=1000, description="why (shown to everyone on call)")


def silence_out(silence: Silence, now: float) -> SilenceOut:
    return SilenceOut(id=silence.id, matchers=[MatcherOut(**m.to_dict()) for m in silence.matchers],
                      starts_at=iso(silence.starts_at), ends_at=iso(silence.ends_at), state=silence.state(now),
                      created_by=silence.created_by, created_at=iso(silence.created_at), comment=silence.comment,
                      expired_by=silence.expired_by)


@router.get("", response_model=list[SilenceOut], summary="List silences")
def list_silences(_: Viewer, store: StoreDep, clock: ClockDep, include_expired: bool = False) -> list[SilenceOut]:
    now = clock.now()
    return [silence_out(s, now) for s in store.list_silences(include_expired=include_expired)]


def _matchers(texts: list[str]) -> list[Matcher]:
    try:
        return [parse_matcher(t) for t in texts]
    except MatcherError as err:
        raise Unprocessable.param("matchers", str(err)) from None


def _time(name: str, text: str) -> float:
    try:
        return parse_time(name, text) / 1000
    except BadHistoryRequest as err:
        raise Unprocessable.param(name, str(err)) from None


@router.post("", response_model=SilenceOut, status_code=201, summary="Create a silence")
def create_silence(body: SilenceIn, caller: Operator, store: StoreDep, keys: KeysDep, clock: ClockDep) -> SilenceOut:
    now = clock.now()
    starts = _time("starts_at", body.starts_at) if body.starts_at else now
    ends = _time("ends_at", body.ends_at)
    if ends <= now:
        raise Unprocessable.param("ends_at", "the silence would already be over; ends_at must be in the future")
    try:
        silence = store.create_silence(_matchers(body.matchers), starts, ends, f"{caller.name} (key {caller.id})",
                                       body.comment)
    except SilenceError as err:
        raise Unprocessable(str(err)) from None
    keys.record(caller, "silence.create", silence.id, f"{', '.join(body.matchers)} until {body.ends_at}")
    return silence_out(silence, now)


@router.get("/{silence_id}", response_model=SilenceOut, summary="One silence")
def get_silence(silence_id: SilenceId, _: Viewer, store: StoreDep, clock: ClockDep) -> SilenceOut:
    silence = store.silence(silence_id)
    if silence is None:
        raise NotFound(f"no silence {silence_id}")
    return silence_out(silence, clock.now())


@router.delete("/{silence_id}", response_model=SilenceOut, summary="Expire a silence now")
def expire_silence(silence_id: SilenceId, caller: Operator, store: StoreDep, keys: KeysDep,
                   clock: ClockDep) -> SilenceOut:
    try:
        silence = store.expire_silence(silence_id, f"{caller.name} (key {caller.id})")
    except SilenceNotFound:
        raise NotFound(f"no silence {silence_id}") from None
    keys.record(caller, "silence.expire", silence_id)
    return silence_out(silence, clock.now())
