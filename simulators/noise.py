"""Per-device random streams: reproducible from (seed, device id), cheap to draw.

Each device owns a numpy `Generator` seeded from the run's seed and the device's id (not its
position), so adding a device to a site does not change the others' streams. One numpy call per
value costs more than the physics it feeds (the simulators are also the load generator), so values
are drawn in blocks: `DeviceRandom` hands one device's values out one by one; `FleetRandom` gives a
whole fleet of one kind, which steps together, a fixed number of values per device per step as
arrays, so a model computes every device of its kind with a few numpy operations.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

_BLOCK = 512
_FLEET_BLOCK_STEPS = 64


def device_seed(seed: int, device_id: str) -> int:
    """A 64-bit seed for `device_id` under run seed `seed`; stable across Python runs and platforms."""
    digest = hashlib.blake2b(f"{seed}\x00{device_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def device_generator(seed: int, device_id: str) -> np.random.Generator:
    return np.random.default_rng(device_seed(seed, device_id))


class DeviceRandom:
    """Buffered draws from one device's generator. Deterministic: the same (seed, id) and the same
    sequence of calls give the same values."""

    def __init__(self, seed: int, device_id: str) -> None:
        self.generator = device_generator(seed, device_id)
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


class FleetRandom:
    """Each step, `uniforms` uniform [0, 1) and `normals` standard normal values for every device of
    a fleet: arrays of shape (devices, uniforms) and (devices, normals). Row d comes from device d's
    own generator only, and every step takes the same number of values whatever the models do with
    them, so a device's values depend on (seed, id, step) alone. Drawn `_FLEET_BLOCK_STEPS` steps at
    a time: one numpy call per device per block."""

    def __init__(self, generators: Sequence[np.random.Generator], uniforms: int, normals: int) -> None:
        self._generators = list(generators)
        self._shape_u = (_FLEET_BLOCK_STEPS, len(self._generators), uniforms)
        self._shape_n = (_FLEET_BLOCK_STEPS, len(self._generators), normals)
        self._u = np.empty(self._shape_u)
        self._n = np.empty(self._shape_n)
        self._next = _FLEET_BLOCK_STEPS

    def step(self) -> tuple[np.ndarray, np.ndarray]:
        """This step's (uniforms, normals)."""
        if self._next == _FLEET_BLOCK_STEPS:
            for row, generator in enumerate(self._generators):
                self._u[:, row, :] = generator.random((_FLEET_BLOCK_STEPS, self._shape_u[2]))
                self._n[:, row, :] = generator.standard_normal((_FLEET_BLOCK_STEPS, self._shape_n[2]))
            self._next = 0
        step = self._next
        self._next += 1
        return self._u[step], self._n[step]


def poisson_from_uniform(lam: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Poisson(lam) counts by inversion of the uniforms `u` (elementwise): exact in distribution,
    vectorised, a few passes for the small means the models use. Bounded: a pass stops an element
    once its next probability underflows to 0."""
    count = np.zeros(lam.shape, dtype=np.int64)
    p = np.exp(-lam)
    cdf = p.copy()
    active = u >= cdf
    while active.any():
        count += active
        p = np.where(active, p * lam / np.maximum(count, 1), p)
        cdf = np.where(active, cdf + p, cdf)
        active &= (u >= cdf) & (p > 0)
    return count


def binomial_from_uniform(n: np.ndarray, p: float, u: np.ndarray) -> np.ndarray:
    """Binomial(n, p) counts by inversion of the uniforms `u` (elementwise, one `p` for all):
    exact in distribution, at most max(n) passes."""
    if p <= 0:
        return np.zeros(n.shape, dtype=np.int64)
    if p >= 1:
        return n.astype(np.int64)
    odds = p / (1 - p)
    count = np.zeros(n.shape, dtype=np.int64)
    pk = (1 - p) ** n.astype(float)
    cdf = pk.copy()
    active = (u >= cdf) & (count < n)
    while active.any():
        pk = np.where(active, pk * (n - count) / (count + 1) * odds, pk)
        count += active
        cdf = np.where(active, cdf + pk, cdf)
        active &= (u >= cdf) & (count < n) & (pk > 0)
    return count
