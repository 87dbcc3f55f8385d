"""Supervising facmon's own child processes for `facmon up`: start them, restart one that dies (with
a doubling back-off, reset after it has run a while), and stop them all, newest first.

A `ChildSpec` is a list of steps: each step is one `facmon` command line. A step that exits 0 hands
over to the next (the simulators first replay a day quickly, then go on live); a step that fails is
restarted. When the last step exits 0 the child is done and not restarted.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from core.clock import Clock

log = logging.getLogger("facmon.up")
HEALTHY_AFTER_S = 30.0


@dataclass(frozen=True)
class ChildSpec:
    name: str
    steps: tuple[tuple[str, ...], ...]
    """Each step: the arguments after `facmon` (e.g. ("collect",))."""
    after: tuple[str, int] | None = None
    """Start only once the named child has reached this step (or finished)."""


class Child:
    def __init__(self, spec: ChildSpec, env: Mapping[str, str], log_dir: Path, clock: Clock,
                 backoff_max_s: float) -> None:
        self.spec = spec
        self._env = dict(env)
        self._log_path = log_dir / f"{spec.name}.log"
        self._clock = clock
        self._backoff_max_s = backoff_max_s
        self._backoff_s = 1.0
        self._step = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._started_at = 0.0
        self._restart_at: float | None = None
        self.restarts = 0
        self.done = False
        self.started = False

    @property
    def step(self) -> int:
        return self._step

    @property
    def log_path(self) -> Path:
        return self._log_path

    def start(self) -> None:
        self.started = True
        args = [sys.executable, "-m", "facmon", *self.spec.steps[self._step]]
        with open(self._log_path, "ab") as out:
            self._process = subprocess.Popen(args, env=self._env, stdout=out, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, start_new_session=True)
        self._started_at = self._clock.monotonic()
        self._restart_at = None
        log.info("started", extra={"child": self.spec.name, "pid": self._process.pid,
                                   "command": " ".join(self.spec.steps[self._step]), "log": str(self._log_path)})

    def check(self) -> None:
        """Restart the child if it died and its back-off has passed; move to the next step on success."""
        now = self._clock.monotonic()
        if self.done:
            return
        if self._process is None:
            if self._restart_at is not None and now >= self._restart_at:
                self.start()
            return
        code = self._process.poll()
        if code is None:
            if now - self._started_at > HEALTHY_AFTER_S:
                self._backoff_s = 1.0
            return
        self._process = None
        if code == 0 and self._step + 1 < len(self.spec.steps):
            self._step += 1
            self.start()
            return
        if code == 0:
            self.done = True
            log.info("finished", extra={"child": self.spec.name})
            return
        self.restarts += 1
        self._restart_at = now + self._backoff_s
        log.warning("exited; restarting", extra={"child": self.spec.name, "exit_code": code,
                                                 "restart_in_s": self._backoff_s, "log": str(self._log_path)})
        self._backoff_s = min(self._backoff_s * 2, self._backoff_max_s)

    def stop(self, timeout_s: float = 20.0) -> int | None:
        process, self._process = self._process, None
        self.done = True
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("did not stop in time; killing", extra={"child": self.spec.name})
            os.killpg(process.pid, signal.SIGKILL)
            return process.wait(timeout=5)


class Supervisor:
    def __init__(self, specs: Sequence[ChildSpec], env: Mapping[str, str], log_dir: Path, clock: Clock,
                 backoff_max_s: float) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.children = [Child(spec, env, log_dir, clock, backoff_max_s) for spec in specs]

    def start(self) -> None:
        for child in self.children:
            if child.spec.after is None:
                child.start()

    def check(self) -> None:
        for child in self.children:
            if child.started:
                child.check()
            elif self._may_start(child):
                child.start()

    def _may_start(self, child: Child) -> bool:
        assert child.spec.after is not None
        name, step = child.spec.after
        other = next((c for c in self.children if c.spec.name == name), None)
        return other is None or other.done or other.step >= step

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()
