from __future__ import annotations

from typing import Literal

from core.settings.base import Section


class LogSettings(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["logfmt", "json"] = "logfmt"
