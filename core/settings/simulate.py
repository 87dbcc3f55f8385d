from __future__ import annotations

from core.settings.base import Section


class SimulateSettings(Section):
    """Settings of the simulate stage (owned by that stage; extend here)."""
