from __future__ import annotations

from pathlib import Path

from pydantic import Field

from core.settings.base import Section
from core.settings.rules import EmailSettings


class ReportsSettings(Section):
    """The monthly reports (docs/reports.md): `facmon report` writes them, `facmon report serve` mails
    them on the 1st of every month."""

    out_dir: Path = Path("reports-out")
    """Where `facmon report` writes when no --out is given, and where the monthly e-mail keeps its PDFs."""
    email: EmailSettings | None = None
    """Who gets the monthly e-mail (`host`, `port`, `from_addr`, `to`, `starttls`, `username`, the password
    from FACMON_REPORTS__EMAIL__PASSWORD or `password_file`); null: no e-mail. `language` is unused."""
    mail_hour: int = Field(9, ge=0, le=23)
    """The e-mail goes out on the 1st at this hour in each site's time zone."""
