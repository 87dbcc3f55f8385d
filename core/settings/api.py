from __future__ import annotations

from core.settings.base import Section


class ApiSettings(Section):
    """Settings of the api stage (owned by that stage; extend here)."""
