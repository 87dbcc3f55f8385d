from __future__ import annotations

from core.settings.base import Section


class RulesSettings(Section):
    """Settings of the rules stage (owned by that stage; extend here)."""
