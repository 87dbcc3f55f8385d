"""Random streams for the device fleets: per-device, deterministic, and the samplers' distributions."""

from __future__ import annotations

import numpy as np
import pytest

from simulators.noise import FleetRandom, binomial_from_uniform, device_generator, poisson_from_uniform

DRAWS = 200_000


def test_a_devices_values_do_not_depend_on_the_rest_of_its_fleet() -> None:
    alone = FleetRandom([device_generator(7, "uplink-ptcl")], uniforms=3, normals=2)
    crowded = FleetRandom([device_generator(7, "uplink-jazz"), device_generator(7, "uplink-ptcl")], 3, 2)
    for _ in range(150):  # past two refills of the block
        (u1, n1), (u2, n2) = alone.step(), crowded.step()
        assert u1[0].tolist() == u2[1].tolist() and n1[0].tolist() == n2[1].tolist()
        assert u2[0].tolist() != u2[1].tolist()
        assert ((u2 >= 0) & (u2 < 1)).all()


@pytest.mark.parametrize("lam", [0.0, 0.004, 0.15, 1.0, 7.5, 60.0])
def test_poisson_by_inversion_has_the_poisson_mean_and_variance(lam: float) -> None:
    counts = poisson_from_uniform(np.full(DRAWS, lam), np.random.default_rng(1).random(DRAWS))
    tolerance = 5 * np.sqrt(lam / DRAWS) + 1e-12  # five standard errors of the mean
    assert counts.mean() == pytest.approx(lam, abs=tolerance)
    assert counts.var() == pytest.approx(lam, rel=0.05, abs=tolerance)
    assert counts.min() >= 0


@pytest.mark.parametrize(("n", "p"), [(10, 0.0037), (30, 0.2), (40, 0.9), (0, 0.5), (12, 0.0), (12, 1.0)])
def test_binomial_by_inversion_has_the_binomial_mean_and_variance_and_stays_in_0_n(n: int, p: float) -> None:
    counts = binomial_from_uniform(np.full(DRAWS, n), p, np.random.default_rng(2).random(DRAWS))
    mean, var = n * p, n * p * (1 - p)
    tolerance = 5 * np.sqrt(var / DRAWS) + 1e-12
    assert counts.mean() == pytest.approx(mean, abs=tolerance)
    assert counts.var() == pytest.approx(var, rel=0.05, abs=tolerance)
    assert counts.min() >= 0 and counts.max() <= n
