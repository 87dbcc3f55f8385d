"""Path and query parameters shared by routers, validated before any handler (and any query) sees them."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from core.contract import ID_PATTERN

_ID = rf"^{ID_PATTERN}$"

SiteId = Annotated[str, Path(pattern=_ID, max_length=64, description="site id ([a-z0-9][a-z0-9_-]{0,63})")]
DeviceId = Annotated[str, Path(pattern=_ID, max_length=64, description="device id ([a-z0-9][a-z0-9_-]{0,63})")]
