"""SMS through a GSM modem (a USB 3G/4G dongle) with Gammu: pages that need no internet.

    GammuModem(device, connection, model)   the one adapter around python-gammu (`gammu` imported
                                            only here): connect on first use, send parts, read inbox
    GsmNotifier                             the Notifier: SMS-length text, cut to `max_parts`, to
                                            every configured number
    read_ack_replies(modem, acknowledge)    `ACK <code>` replies from the inbox → acknowledgements

Every modem failure becomes `NotifyError(..., retryable=True)` naming the cause and the fix (modem
absent or unplugged, no permission, no SIM, PIN needed, no network, timeout): the outbox keeps the
notification and tries again; the modem is reconnected on the next attempt. A number that already
got this notification (a retry after another number failed) is not sent it again.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from rules.notifiers.sms_text import fit
from rules.notify import NotifyError, Zones, notification_id, render_sms

log = logging.getLogger("facmon.rules.gsm")

# Gammu's error names → what a person on site should do. Anything else is shown as Gammu says it.
_GAMMU_HINTS = {
    "ERR_DEVICENOTEXIST": "the modem is absent or unplugged: plug the dongle in, check gsm.device "
                          "(ls /dev/serial/by-id/)",
    "ERR_DEVICENOPERMISSION": "facmon may not open the modem: add its user to the dialout group, or check "
                              "gsm.device",
    "ERR_DEVICEOPENERROR": "the modem cannot be opened: is another program (ModemManager) holding it?",
    "ERR_DEVICEBUSY": "the modem is busy (another program holds it)",
    "ERR_DEVICENOTWORK": "the modem does not answer: replug it",
    "ERR_NOSIM": "no SIM card in the modem: insert one",
    "ERR_SECURITYERROR": "the SIM needs its PIN: disable the PIN on a phone",
    "ERR_TIMEOUT": "the modem did not answer in time: replug it or check gsm.connection",
    "ERR_NETWORK_ERROR": "the mobile network refused the message: check the SIM's credit and signal",
    "ERR_GETTING_SMSC": "the SIM has no SMS centre number: set it with a phone",
    "ERR_EMPTYSMSC": "the SIM has no SMS centre number: set it with a phone",
    "ERR_NOSERVICE": "no mobile network: move the dongle or check the SIM",
}
REGISTERED = ("HomeNetwork", "RoamingNetwork")


class Modem(Protocol):
    """What GsmNotifier needs of a modem. Every method raises `NotifyError` on failure."""

    device: str

    def send_text(self, number: str, text: str, unicode: bool) -> int:
        """Send `text` (already fitted) as one or more concatenated parts; returns the part count."""
        ...

    def inbox(self) -> list[tuple[str, str]]:
        """Unread received messages as (sender, text), removed from the modem once read."""
        ...


def _error(device: str, err: Exception) -> NotifyError:
    name = type(err).__name__
    detail = err.args[0].get("Text", "") if err.args and isinstance(err.args[0], dict) else str(err)
    hint = _GAMMU_HINTS.get(name, detail)
    return NotifyError(f"GSM modem {device}: {hint} (Gammu {name}: {detail})", True)


class GammuModem:
    """A modem through python-gammu. Thread-safe: one lock around the state machine."""

    def __init__(self, device: str, connection: str = "at", model: str = "",
                 state_machine_factory: Callable[[], Any] | None = None) -> None:
        import gammu  # the one import of python-gammu

        self._gammu = gammu
        self.device = device
        self._config = {"Device": device, "Connection": connection, "Model": model}
        self._factory = state_machine_factory or gammu.StateMachine
        self._machine: Any = None
        self._lock = threading.Lock()

    def _connected(self) -> Any:
        if self._machine is None:
            machine = self._factory()
            machine.SetConfig(0, self._config)
            machine.Init()
            self._machine = machine
        return self._machine

    def _call(self, action: Callable[[Any], Any]) -> Any:
        with self._lock:
            try:
                return action(self._connected())
            except self._gammu.GSMError as err:
                self._drop()
                raise _error(self.device, err) from None

    def _drop(self) -> None:
        machine, self._machine = self._machine, None
        if machine is not None:
            # Already gone (unplugged) is fine: reconnecting next time is all there is to do.
            with contextlib.suppress(self._gammu.GSMError):
                machine.Terminate()

    def send_text(self, number: str, text: str, unicode: bool) -> int:
        encoded = self._gammu.EncodeSMS({"Class": -1, "Unicode": unicode,
                                         "Entries": [{"ID": "ConcatenatedTextLong", "Buffer": text}]})

        def send(machine: Any) -> int:
            network = machine.GetNetworkInfo()
            if network.get("State") not in REGISTERED:
                raise NotifyError(f"GSM modem {self.device}: not registered on a mobile network "
                                  f"({network.get('State')}): check the SIM, its signal and credit", True)
            for part in encoded:
                machine.SendSMS({**part, "SMSC": {"Location": 1}, "Number": number})
            return len(encoded)
        return int(self._call(send))

    def inbox(self) -> list[tuple[str, str]]:
        def read(machine: Any) -> list[tuple[str, str]]:
            messages: list[tuple[str, str]] = []
            start = True
            location = None
            for _ in range(1000):  # bounded: a modem holds tens of messages
                try:
                    found = machine.GetNextSMS(Start=True, Folder=0) if start else machine.GetNextSMS(
                        Location=location, Folder=0)
                except self._gammu.ERR_EMPTY:
                    break
                start = False
                for part in found:
                    location = part["Location"]
                    messages.append((str(part.get("Number", "")), str(part.get("Text", ""))))
                    machine.DeleteSMS(Folder=0, Location=part["Location"])
            return messages
        return list(self._call(read))

    def close(self) -> None:
        with self._lock:
            self._drop()


@dataclass(frozen=True, slots=True)
class SmsSent:
    number: str
    parts: int
    unicode: bool
    cut: bool


class GsmNotifier:
    def __init__(self, name: str, modem: Modem, numbers: Sequence[str], max_parts: int = 3, language: str = "en",
                 zones: Zones | None = None, read_replies: bool = False) -> None:
        self.name = name
        self.read_replies = read_replies
        """Whether the service reads this modem's inbox for `ACK <code>` replies."""
        self.modem = modem
        self.numbers = tuple(numbers)
        self.max_parts = max_parts
        self.language = language
        self.zones = zones or {}
        self.sent: list[SmsSent] = []
        """What this notifier sent (number, parts, encoding), newest last, at most 1000."""
        self._delivered: set[tuple[str, str]] = set()

    def send(self, payload: Mapping) -> None:
        plan = fit(render_sms(payload, self.language, self.zones), self.max_parts)
        nid = notification_id(payload)
        for number in self.numbers:
            if (nid, number) in self._delivered:
                continue
            parts = self.modem.send_text(number, plan.text, plan.unicode)
            self.sent = [*self.sent[-999:], SmsSent(number, parts, plan.unicode, plan.cut)]
            if nid:
                self._delivered.add((nid, number))


ACK_REPLY = re.compile(r"^\s*ack\s+([0-9a-f]{4,16})\b", re.IGNORECASE)


def read_ack_replies(modem: Modem, acknowledge: Callable[[str, str], str]) -> list[str]:
    """Hand each `ACK <code>` reply in the modem's inbox to `acknowledge(code, by)` (by: `sms:<number>`);
    returns what `acknowledge` answered, one per reply. Other messages are logged and dropped."""
    answers = []
    for sender, text in modem.inbox():
        match = ACK_REPLY.match(text)
        if match is None:
            log.info("SMS reply is not an acknowledgement; ignored", extra={"sender": sender, "text": text[:80]})
            continue
        answers.append(acknowledge(match.group(1).lower(), f"sms:{sender}"))
    return answers
