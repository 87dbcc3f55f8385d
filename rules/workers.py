"""The threads that talk to the outside on the delivery side: one delivery worker per outbox target
(`DeliveryWorkers`, so a slow modem holds up no other channel) and the readers of acknowledgements
from the phone (`AckListeners`: Telegram button presses, `ACK <code>` SMS replies)."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Mapping

from core.clock import Clock
from rules.notifiers.acks import acknowledge_code
from rules.notifiers.gsm import GsmNotifier, read_ack_replies
from rules.notifiers.telegram import TelegramAcks, TelegramNotifier
from rules.notify import Delivery, Notifier, NotifyError
from rules.store import AlertStore

log = logging.getLogger("facmon.rules.delivery")


class AckListeners:
    """Threads that read acknowledgements from the phone: one long-polls each Telegram bot with an
    Acknowledge button for button presses, one reads each GSM modem's inbox for `ACK <code>`
    replies. A failing source (no internet, modem unplugged) is logged and tried again later."""

    def __init__(self, store: AlertStore, notifiers: Mapping[str, Notifier], clock: Clock,
                 modem_interval_s: float = 15.0, retry_s: float = 30.0) -> None:
        acknowledge = functools.partial(acknowledge_code, store)
        self._sources: list[tuple[str, Callable[[], object], float]] = []
        bots: set[str] = set()
        for target, notifier in notifiers.items():
            if isinstance(notifier, TelegramNotifier) and notifier.acknowledge_button \
                    and notifier.api.token not in bots:  # one getUpdates reader per bot, or Telegram answers 409
                bots.add(notifier.api.token)
                self._sources.append((target, TelegramAcks(notifier.api, acknowledge, poll_timeout_s=10).poll,
                                      1.0))  # a long poll; the pause only guards a server answering at once
            elif isinstance(notifier, GsmNotifier) and notifier.read_replies:
                modem = notifier.modem
                self._sources.append((target, lambda m=modem: read_ack_replies(m, acknowledge), modem_interval_s))
        self._clock = clock
        self._retry_s = retry_s
        self._stopping = threading.Event()
        self._threads = [threading.Thread(target=self._loop, args=source, name=f"acks-{source[0]}", daemon=True)
                         for source in self._sources]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout_s: float = 15.0) -> None:
        self._stopping.set()
        deadline = self._clock.monotonic() + timeout_s
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=max(0.0, deadline - self._clock.monotonic()))

    def _loop(self, target: str, poll: Callable[[], object], interval_s: float) -> None:
        while not self._stopping.is_set():
            try:
                poll()
            except NotifyError as err:
                log.warning("cannot read acknowledgements; trying again", extra={"target": target, "error": str(err),
                                                                                 "retry_s": self._retry_s})
                self._stopping.wait(self._retry_s)
                continue
            self._stopping.wait(interval_s)


class DeliveryWorkers:
    """One thread per outbox target, so a modem taking 10 s an SMS holds up no webhook or Telegram
    message, and one more that fails rows for targets no longer configured. `wake()` (on enqueue)
    starts every worker at once; otherwise each looks every `interval_s` (retries, back-off)."""

    def __init__(self, delivery: Delivery, clock: Clock, interval_s: float = 1.0,
                 on_sweep: Callable[[float], None] | None = None) -> None:
        self._on_sweep = on_sweep
        self._delivery = delivery
        self._clock = clock
        self._interval_s = interval_s
        self._stopping = threading.Event()
        self._wakes = {target: threading.Event() for target in delivery.targets}
        self._threads = [threading.Thread(target=self._loop, args=(target, wake), name=f"deliver-{target}",
                                          daemon=True) for target, wake in self._wakes.items()]
        self._threads.append(threading.Thread(target=self._sweep, name="deliver-unknown", daemon=True))

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def wake(self) -> None:
        for event in self._wakes.values():
            event.set()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop every worker after its current send; each drains what is due once more first."""
        self._stopping.set()
        self.wake()
        deadline = self._clock.monotonic() + timeout_s
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=max(0.0, deadline - self._clock.monotonic()))

    def _loop(self, target: str, wake: threading.Event) -> None:
        while not self._stopping.is_set():
            wake.clear()
            self._deliver(target)
            wake.wait(timeout=self._interval_s)
        self._deliver(target)

    def _deliver(self, target: str) -> None:
        try:
            self._delivery.deliver_due(self._clock.now(), only=(target,))
        except Exception:
            # A notifier must raise only NotifyError; one that does not must not kill its channel's thread.
            log.exception("delivery failed unexpectedly; retrying on the next round", extra={"target": target})

    def _sweep(self) -> None:
        while not self._stopping.wait(self._interval_s * 5):
            now = self._clock.now()
            self._delivery.fail_unknown_targets(now)
            if self._on_sweep is not None:
                self._on_sweep(now)
