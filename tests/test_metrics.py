"""Shared evaluation metrics (speckleml.metrics): spectra, EMD, periods, pair distances, clusters."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from speckleml.errors import InputError
from speckleml.metrics import (cluster_sizes, first_peak, oscillation_period, pair_distance_histogram,
                               pair_distances, spectral_emd, spectrum)


def test_spectrum_of_a_pure_sine_peaks_at_its_frequency_and_obeys_parseval():
    dt, n, f0 = 0.5, 400, 0.065  # f0 = 13 bins of df = 1 / (n dt) = 0.005
    t = np.arange(n) * dt
    x = 3.0 + 2.0 * np.sin(2 * math.pi * f0 * t)
    freqs, power = spectrum(x, dt)
    assert freqs.shape == power.shape == (n // 2 + 1,)
    assert freqs[1] == pytest.approx(1 / (n * dt)) and freqs[-1] == pytest.approx(1 / (2 * dt))
    assert freqs[np.argmax(power)] == pytest.approx(f0)
    # all of the (detrended) power sits in that one bin: amplitude^2 / 2 = 2
    df = freqs[1] - freqs[0]
    assert power.sum() * df == pytest.approx(np.mean((x - x.mean()) ** 2), rel=1e-12)
    assert power[np.argmax(power)] * df == pytest.approx(2.0, rel=1e-12)
    assert power[0] == pytest.approx(0.0, abs=1e-20)
    # batched along a leading axis, time last: each row is its own spectrum
    _, both = spectrum(np.stack([x, 2 * x]), dt)
    np.testing.assert_allclose(both[1], 4 * power, rtol=1e-12)


def test_emd_of_identical_spectra_is_zero_and_of_two_spikes_is_their_distance():
    freqs = np.linspace(0.0, 1.0, 101)
    rng = np.random.default_rng(1)
    s = rng.random(101)
    assert spectral_emd(s, s, freqs) == 0.0
    assert spectral_emd(s, 5 * s, freqs) == pytest.approx(0.0, abs=1e-15)  # normalised to unit mass
    a, b = np.zeros(101), np.zeros(101)
    a[12], b[47] = 3.0, 0.1
    assert spectral_emd(a, b, freqs) == pytest.approx(abs(freqs[47] - freqs[12]), rel=1e-12)
    # hand-computed: half the mass moves 0.1, the other half stays -> 0.05
    c = np.zeros(101)
    c[12], c[22] = 1.0, 1.0
    assert spectral_emd(a, c, freqs) == pytest.approx(0.05, rel=1e-12)
    # leading dimensions are paired
    batch = spectral_emd(np.stack([a, a]), np.stack([a, b]), freqs)
    np.testing.assert_allclose(batch, [0.0, 0.35], atol=1e-12)
    with pytest.raises(InputError):
        spectral_emd(a, np.zeros(101), freqs)
    with pytest.raises(InputError):
        spectral_emd(a, -b, freqs)


def test_emd_of_two_sines_equals_their_frequency_shift():
    dt, n = 0.25, 800  # df = 0.005
    t = np.arange(n) * dt
    freqs, pa = spectrum(np.cos(2 * math.pi * 0.05 * t), dt)
    _, pb = spectrum(np.cos(2 * math.pi * 0.065 * t), dt)
    assert spectral_emd(pa, pb, freqs) == pytest.approx(0.015, rel=1e-9)


def test_oscillation_period_of_a_sampled_cosine():
    t = np.linspace(0, 100, 2001)
    assert oscillation_period(t, 1 + np.cos(2 * math.pi * t / 15.39 + 0.3)) == pytest.approx(15.39, rel=1e-4)
    with pytest.raises(InputError):
        oscillation_period(t[:50], np.cos(t[:50] / 100))


def test_cluster_sizes_of_a_hand_made_configuration():
    # a chain of 3 (spacing 1), a pair (spacing 0.9), a square of 4 (side 1), one loner
    chain = [[0, 0], [1, 0], [2, 0]]
    pair = [[10, 0], [10.9, 0]]
    square = [[0, 10], [1, 10], [0, 11], [1, 11]]
    loner = [[20, 20]]
    pos = np.array(chain + pair + square + loner, dtype=float)
    np.testing.assert_array_equal(cluster_sizes(pos, 1.0), [4, 3, 2, 1])
    # the edge length is inclusive; just below it the chain and square fall apart
    np.testing.assert_array_equal(cluster_sizes(pos, 0.95), [2, 1, 1, 1, 1, 1, 1, 1, 1])
    assert cluster_sizes(pos, 100.0).tolist() == [10]
    # periodic box: the chain's ends are 1 apart across the boundary of a box of 3
    across = np.array([[0.2, 0.5], [2.7, 0.5], [1.45, 0.5]])
    assert cluster_sizes(across, 0.6, box=3.0).tolist() == [2, 1]
    assert cluster_sizes(across, 0.6).tolist() == [1, 1, 1]
    with pytest.raises(InputError):
        cluster_sizes(pos, 0.0)


def test_pair_distances_and_histogram():
    rng = np.random.default_rng(3)
    pos = rng.random((30, 2)) * 4
    np.testing.assert_allclose(pair_distances(pos), pdist(pos))
    # minimum image against a brute-force search over the 9 periodic images
    box = 4.0
    shifts = np.array([[a, b] for a in (-box, 0, box) for b in (-box, 0, box)])
    i, j = np.triu_indices(30, 1)
    brute = np.min(np.linalg.norm(pos[j][:, None] + shifts[None] - pos[i][:, None], axis=-1), axis=1)
    np.testing.assert_allclose(pair_distances(pos, box=box), brute, rtol=1e-12)
    counts, edges = pair_distance_histogram(pos, bins=10, range=(0, 6))
    assert counts.sum() == 30 * 29 // 2 and edges[0] == 0 and edges[-1] == 6
    # two tight clusters 5 apart: peaks at ~0.1 (within) and ~5 (between)
    blob = np.array([[0, 0], [0.1, 0], [0, 0.1]])
    counts, edges = pair_distance_histogram(np.vstack([blob, blob + [5, 0]]), bins=60, range=(0, 6))
    assert first_peak(counts, edges) == pytest.approx(0.15)
    with pytest.raises(InputError):
        first_peak(np.zeros(3), np.arange(4))
