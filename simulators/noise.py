"""Per-device random streams: reproducible from (seed, device id), cheap to draw one value at a time.

Each device owns a `DeviceRandom`, a numpy `Generator` seeded from the run's seed and the device's
id (not its position), so adding a device to a site does not change the others' streams. Values are
drawn in blocks and handed out one by one, because one numpy call per value costs more than the
physics it feeds (the simulators are also the load generator).
"""

from __future__ import annotations

import hashlib

import numpy as np

_BLOCK = 512


def device_seed(seed: int, device_id: str) -> int:
    """A 64-bit seed for `device_id` under run seed `seed`; stable across Python runs and platforms."""
    digest = hashlib.blake2b(f"{seed}\x00{device_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


class DeviceRandom:
    """Buffered draws from one device's generator. Deterministic: the same (seed, id) and the same
    sequence of calls give the same values."""

    def __init__(self, seed: int, device_id: str) -> None:
        self.generator = np.random.default_rng(device_seed(seed, device_id))
        self._normals: list[float] = []
        self._uniforms: list[float] = []

    def normal(self) -> float:
        """A standard normal value."""
        if not self._normals:
            self._normals = self.generator.standard_normal(_BLOCK).tolist()
        return self._normals.pop()

    def uniform(self) -> float:
        """A uniform value in [0, 1)."""
        if not self._uniforms:
            self._uniforms = self.generator.random(_BLOCK).tolist()
        return self._uniforms.pop()

    def chance(self, probability: float) -> bool:
        return self.uniform() < probability

    def poisson(self, lam: float) -> int:
        return int(self.generator.poisson(lam)) if lam > 0 else 0

    def binomial(self, n: int, p: float) -> int:
        return int(self.generator.binomial(n, p)) if n > 0 and p > 0 else 0
