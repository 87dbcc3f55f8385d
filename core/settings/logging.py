from __future__ import annotations

from typing import Literal

from core.settings.base import Section


class LogSettings(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    """Least severe log level written."""
    format: Literal["logfmt", "json"] = "logfmt"
    """One line per event: key=value (logfmt) or JSON."""
