from __future__ import annotations

from core.settings.base import Section


class DashboardsSettings(Section):
    """Settings of the dashboards stage (owned by that stage; extend here)."""
