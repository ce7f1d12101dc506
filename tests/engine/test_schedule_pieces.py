"""Sampler timesteps, Euler update and re-noising against the official fixtures and by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from multitalk_desktop.engine import schedule
from tests.engine.fixture_cases import cases_of, check_piece_case


@pytest.mark.parametrize("stem", cases_of("schedule"))
def test_schedule_matches_official_fixture(stem):
    result = check_piece_case(stem, "schedule")
    assert result.ok, result.line()


def test_timesteps_are_float32_exact_not_float64_rounded():
    ours = schedule.timesteps(40, 7.0)
    s = np.linspace(1000, 1, 40) / 1000
    float64_way = np.append(7 * s / (1 + 6 * s) * 1000, 0).astype(np.float32)
    assert ours.dtype == torch.float32 and ours.shape == (41,)
    assert ours[0] == 1000 and ours[-1] == 0
    # The two ways differ in the last bits: the port must follow the float32 one.
    assert not np.array_equal(ours.numpy(), float64_way)
    assert np.abs(ours.numpy() - float64_way).max() < 2e-4


def test_default_shift_per_resolution_and_fast_mode():
    assert schedule.default_shift("480p") == 7.0
    assert schedule.default_shift("multitalk-720") == 11.0
    assert schedule.default_shift("480p", fast=True) == 2.0
    with pytest.raises(ValueError):
        schedule.default_shift("1080p")


def test_euler_step_moves_against_the_velocity_by_dt():
    latent, velocity = torch.ones(2, 1, 1, 1), torch.full((2, 1, 1, 1), 4.0)
    out = schedule.euler_step(latent, velocity, torch.tensor([750.0]), torch.tensor([500.0]))
    assert torch.allclose(out, torch.zeros_like(out))


def test_add_noise_interpolates_between_clean_and_noise():
    clean, noise = torch.zeros(3, 2), torch.ones(3, 2)
    assert torch.equal(schedule.add_noise(clean, noise, torch.tensor([0.0])), clean)
    assert torch.equal(schedule.add_noise(clean, noise, torch.tensor([1000.0])), noise)
    assert torch.allclose(schedule.add_noise(clean, noise, torch.tensor([250.0])), torch.full((3, 2), 0.25))


def test_zero_steps_are_rejected():
    with pytest.raises(ValueError):
        schedule.timesteps(0, 7.0)
