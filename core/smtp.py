"""Sending one e-mail over SMTP, as the notifiers (rules/notify.py) and the monthly reports
(reports/mail.py) both do: STARTTLS and login when configured, a bounded wait, and a failure told
apart as worth retrying (a 4xx answer, a network error) or not (5xx: the server refused the message)."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage


class SmtpFailure(Exception):
    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def send_mail(message: EmailMessage, host: str, port: int, timeout_s: float, *, starttls: bool = False,
              username: str | None = None, password: str | None = None) -> None:
    """Send `message`; raises `SmtpFailure` saying what the server answered or what failed."""
    try:
        with smtplib.SMTP(host, port, timeout=timeout_s) as smtp:
            if starttls:
                smtp.starttls()
            if username:
                smtp.login(username, password or "")
            smtp.send_message(message)
    except smtplib.SMTPResponseException as err:
        raise SmtpFailure(f"SMTP {host}:{port} answered {err.smtp_code}: {err.smtp_error!r}",
                          400 <= err.smtp_code < 500) from None
    except (smtplib.SMTPException, OSError) as err:
        raise SmtpFailure(f"SMTP {host}:{port} failed: {err}", True) from None
