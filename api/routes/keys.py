"""API keys, for admins: list, create, revoke. Every change is in the audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from api.deps import Admin, HubDep, KeysDep, Viewer
from api.keys import ApiKey, BadKeyName, KeyNotFound, Role
from api.models import ApiKeyCreate, ApiKeyCreated, ApiKeyOut, iso
from api.problems import ERROR_RESPONSES, NotFound, Unprocessable

KeyId = Annotated[str, Path(pattern=r"^[0-9a-f]{12}$", description="the key id (12 hex digits)")]

router = APIRouter(prefix="/keys", tags=["keys"], responses=ERROR_RESPONSES)


def key_out(key: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(id=key.id, name=key.name, role=key.role.value, created_at=iso(key.created_at),
                     revoked_at=iso(key.revoked_at))


@router.get("/me", response_model=ApiKeyOut, summary="The key this request was made with (its role)")
async def who_am_i(caller: Viewer) -> ApiKeyOut:
    return key_out(caller)


@router.get("", response_model=list[ApiKeyOut], summary="List API keys (never their secrets)")
def list_keys(_: Admin, keys: KeysDep) -> list[ApiKeyOut]:
    return [key_out(k) for k in keys.list()]


@router.post("", response_model=ApiKeyCreated, status_code=201, summary="Create an API key")
def create_key(body: ApiKeyCreate, caller: Admin, keys: KeysDep) -> ApiKeyCreated:
    try:
        key, token = keys.create(body.name, Role(body.role))
    except BadKeyName as err:
        raise Unprocessable.param("name", str(err)) from None
    keys.record(caller, "key.create", key.id, f"name={key.name} role={key.role.value}")
    return ApiKeyCreated(**key_out(key).model_dump(), token=token)


@router.delete("/{key_id}", response_model=ApiKeyOut, summary="Revoke an API key")
def revoke_key(key_id: KeyId, caller: Admin, keys: KeysDep, hub: HubDep) -> ApiKeyOut:
    try:
        key = keys.revoke(key_id)
    except KeyNotFound as err:
        raise NotFound(str(err)) from None
    keys.record(caller, "key.revoke", key.id)
    hub.end_streams_of({key.id})  # at once; keys revoked elsewhere are found by the app's revocation watch
    return key_out(key)
