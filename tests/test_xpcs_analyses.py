"""Analyses after g2: tau(q) power law, partial g2, bad frames, excluded frames, dark/flat."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli
from speckleml.correlation import g2_from_c2, two_time
from speckleml.errors import InputError
from speckleml.stores import read_c2, read_frames, write_frames
from speckleml.synthetic import ou_speckle
from speckleml.xpcs.analyses import fit_tau_q, partial_g2
from speckleml.xpcs.badframes import MAD_SCALE, flag_frames, outlier_frames
from speckleml.xpcs.correlate import correlate_frames

RINGS = dict(q_first=4, q_width=3, q_step=3, n_rings=3, n_sectors=1, normalization="pixel_mean",
             min_pixel_mean=0.0, max_memory_mib=0)


# ------------------------------------------------------------------------------- tau(q)


@pytest.mark.parametrize("n_true", [2.0, 1.0])
def test_tau_q_fit_recovers_d_and_n_from_noisy_taus(n_true):
    rng = np.random.default_rng(3)
    q = np.geomspace(1.5e-3, 1.2e-2, 12)          # 1/Angstrom
    d_true = 2.0e6 if n_true == 2 else 4.0e3      # Angstrom^n / s
    rel = 0.05
    tau = 1 / (d_true * q**n_true) * np.exp(rel * rng.standard_normal(q.size))
    result = fit_tau_q(q, tau, rel * tau)
    assert abs(result["n"] - n_true) < 3 * result["n_err"] and result["n_err"] < 0.1
    assert abs(np.log(result["D"] / d_true)) < 3 * result["D_err"] / result["D"]
    assert abs(result["D"] / d_true - 1) < 0.25
    # the diffusion check: n = 2 is accepted for diffusive data and rejected for ballistic data
    assert result["diffusive"] is (n_true == 2)
    if n_true == 2:
        assert abs(result["D2"] / d_true - 1) < 0.05


def test_tau_q_fit_needs_three_points():
    with pytest.raises(InputError, match="at least 3 points"):
        fit_tau_q([1e-3, 2e-3, np.nan], [1.0, 0.5, 0.2])


# ------------------------------------------------------------------------------- partial g2


def _c2(frames):
    size = frames.shape[-1]
    yy, xx = np.indices((size, size)) - size // 2
    r = np.hypot(yy, xx)
    labels = ((r >= 4) & (r < 12)).astype(np.int32)
    return two_time(frames, labels, "pixel_mean", n_roi=1)


def test_partial_g2_of_a_stationary_stack_equals_the_full_g2():
    frames = ou_speckle(400, 32, tau=6.0, seed=2, mean_counts=50.0)
    c2 = _c2(frames)
    full, full_err = g2_from_c2(c2)
    edges, part, part_err = partial_g2(c2, 4)
    assert edges.tolist() == [0, 100, 200, 300, 400] and part.shape == (1, 4, 100)
    lags = slice(1, 13)   # where g2 - 1 is well above its noise
    spread = np.abs(part[0, :, lags] - full[0, lags])
    # diagonal-mean errors ignore the correlation of neighbouring elements (a lower bound),
    # so allow 5 of them; the curves decay by ~0.9 over these lags
    assert np.all(spread < 5 * np.hypot(part_err[0, :, lags], full_err[0, lags]))
    assert full[0, 1] - full[0, 12] > 0.5


def test_partial_g2_sees_a_change_of_dynamics():
    slow = ou_speckle(200, 32, tau=20.0, seed=4, mean_counts=50.0)
    fast = ou_speckle(200, 32, tau=2.0, seed=5, mean_counts=50.0)
    c2 = _c2(np.concatenate([slow, fast], axis=1))
    _, part, err = partial_g2(c2, 2)
    assert part[0, 0, 3] - part[0, 1, 3] > 10 * np.hypot(err[0, 0, 3], err[0, 1, 3])


# ------------------------------------------------------------------------------- bad frames


def _poisson_stack(n_frames=200, size=24, mean=5.0, seed=0):
    return np.random.default_rng(seed).poisson(mean, (1, n_frames, size, size)).astype(np.float32)


def test_outlier_rule_flags_injected_bright_and_dark_frames_only(tmp_path):
    frames = _poisson_stack()
    clean = frames.mean(axis=(2, 3))[0]
    assert not outlier_frames(clean, 6.0).any()
    frames[0, 17] *= 1.3   # a bright frame (beam spike)
    frames[0, 80] *= 0.7   # a dark frame (shutter)
    write_frames(tmp_path / "f.zarr", frames)
    table = flag_frames(tmp_path / "f.zarr", tmp_path / "bad.csv", k_mad=6.0, user_frames=[150])
    assert table["frame"].tolist() == [17, 80, 150]
    assert table["reason"].tolist() == ["outlier", "outlier", "user"]
    # the rule, by hand: |I - median| > k * 1.4826 * MAD
    intensity = frames[0].mean(axis=(1, 2), dtype=np.float64)
    median = np.median(intensity)
    mad = np.median(np.abs(intensity - median))
    assert np.flatnonzero(np.abs(intensity - median) > 6.0 * MAD_SCALE * mad).tolist() == [17, 80]
    assert pd.read_csv(tmp_path / "bad.csv")["frame"].tolist() == [17, 80, 150]


def test_clean_stack_flags_nothing(tmp_path):
    write_frames(tmp_path / "f.zarr", _poisson_stack(seed=1))
    assert flag_frames(tmp_path / "f.zarr", tmp_path / "bad.csv", k_mad=6.0).empty
    assert pd.read_csv(tmp_path / "bad.csv").columns.tolist()[:2] == ["series", "frame"]


def test_excluded_frames_change_c2_exactly_as_dropping_them_by_hand(tmp_path):
    frames = ou_speckle(60, 32, tau=5.0, seed=6, mean_counts=10.0)
    drop = [3, 10, 11, 59]
    write_frames(tmp_path / "all.zarr", frames)
    write_frames(tmp_path / "kept.zarr", np.delete(frames, drop, axis=1))
    pd.DataFrame({"frame": drop}).to_csv(tmp_path / "bad.csv", index=False)
    args = ("--q-first", "4", "--q-width", "3", "--q-step", "3", "--n-rings", "3")
    run_cli("correlate", tmp_path / "all.zarr", tmp_path / "ex.zarr", *args, "--exclude-frames",
            tmp_path / "bad.csv", check=True)
    correlate_frames(tmp_path / "kept.zarr", tmp_path / "hand.zarr", **RINGS)
    excluded, by_hand = read_c2(tmp_path / "ex.zarr"), read_c2(tmp_path / "hand.zarr")
    assert excluded["c2"].shape == (1, 3, 56, 56)
    np.testing.assert_array_equal(excluded["c2"], by_hand["c2"])
    np.testing.assert_array_equal(excluded["g2"], by_hand["g2"])
    assert excluded.attrs["excluded_frames"] == drop
    plain = read_c2(correlate_frames(tmp_path / "all.zarr", tmp_path / "plain.zarr", **RINGS))
    assert plain["c2"].shape[-1] == 60 and plain.attrs["excluded_frames"] == []


def test_exclude_frames_out_of_range_is_a_one_line_error(tmp_path):
    write_frames(tmp_path / "f.zarr", _poisson_stack(n_frames=20))
    pd.DataFrame({"frame": [25]}).to_csv(tmp_path / "bad.csv", index=False)
    proc = run_cli("correlate", tmp_path / "f.zarr", tmp_path / "c2.zarr", "--q-first", "2", "--q-width", "3",
                   "--q-step", "3", "--n-rings", "2", "--exclude-frames", tmp_path / "bad.csv")
    assert proc.returncode == 2 and "out of range" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "c2.zarr").exists()


# ------------------------------------------------------------------------------- dark / flat


def test_dark_and_flat_field_arithmetic(tmp_path):
    rng = np.random.default_rng(9)
    raw = rng.uniform(50, 100, (5, 6, 7)).astype(np.float32)
    darks = rng.uniform(1, 3, (4, 6, 7))
    flat = rng.uniform(0.5, 1.5, (6, 7))
    mask = np.ones((6, 7), bool)
    mask[0, :3] = False
    flat[0, 0] = 0.0           # dead pixel, masked: allowed
    for name, value in (("raw", raw), ("dark", darks), ("flat", flat), ("mask", mask)):
        np.save(tmp_path / f"{name}.npy", value)
    run_cli("import-frames", tmp_path / "raw.npy", tmp_path / "f.zarr", "--dt", "0.1", "--mask", tmp_path / "mask.npy",
            "--dark", tmp_path / "dark.npy", "--flat", tmp_path / "flat.npy", check=True)
    got = read_frames(tmp_path / "f.zarr")["frames"][0]
    dark = darks.mean(axis=0)
    gain = flat / flat[mask].mean()
    expected = raw.astype(np.float64).copy()
    expected[:, mask] = (raw[:, mask] - dark[mask]) / gain[mask]
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    np.testing.assert_array_equal(got[:, ~mask], raw[:, ~mask])


@pytest.mark.parametrize("case, message", [
    ("shape", "does not match the frames"),
    ("zero", "flat field is <= 0"),
])
def test_bad_dark_or_flat_is_a_one_line_error(tmp_path, case, message):
    np.save(tmp_path / "raw.npy", np.ones((3, 4, 5), np.float32))
    np.save(tmp_path / "flat.npy", np.ones((4, 4)) if case == "shape" else np.zeros((4, 5)))
    proc = run_cli("import-frames", tmp_path / "raw.npy", tmp_path / "f.zarr", "--dt", "1", "--flat",
                   tmp_path / "flat.npy")
    assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "f.zarr").exists()


def test_tau_q_stage_with_too_few_fits_writes_a_failed_row(tmp_path):
    frames = ou_speckle(40, 32, tau=5.0, seed=1, mean_counts=10.0)
    write_frames(tmp_path / "f.zarr", frames)
    correlate_frames(tmp_path / "f.zarr", tmp_path / "c2.zarr", **RINGS)
    pd.DataFrame({"series": [0, 0], "roi": [0, 1], "q": [5.5, 8.5], "success": [True, True], "beta": 1.0,
                  "tau": [0.1, 0.05], "tau_err": 0.01, "gamma": 1.0, "baseline": 0.0}).to_csv(
        tmp_path / "fits.csv", index=False)
    run_cli("tau-q", tmp_path / "c2.zarr", tmp_path / "fits.csv", tmp_path / "tq.csv", "--figure",
            tmp_path / "tq.png", check=True)
    row = pd.read_csv(tmp_path / "tq.csv").iloc[0]
    assert not row["success"] and np.isnan(row["n"]) and "at least 3 points" in row["message"]
    assert (tmp_path / "tq.png").stat().st_size > 0


def test_partial_g2_stage_recovers_the_known_tau_in_every_segment_and_age(tmp_path):
    # g2 - 1 = exp(-2 t / tau) with tau = 6 frames = 0.06 s (speckleml.synthetic.ou_speckle)
    write_frames(tmp_path / "f.zarr", ou_speckle(400, 32, tau=6.0, seed=8, mean_counts=50.0), attrs={"dt": 0.01})
    correlate_frames(tmp_path / "f.zarr", tmp_path / "c2.zarr", **{**RINGS, "n_rings": 2})
    run_cli("partial-g2", tmp_path / "c2.zarr", tmp_path / "p.csv", "--figure", tmp_path / "p.png", "--segments", "4",
            "--ages", "4", "--max-lag-fraction", "0.3", check=True)
    table = pd.read_csv(tmp_path / "p.csv")
    assert sorted(table.groupby("kind").size().items()) == [("age", 8), ("partial", 8)]
    assert table["success"].all()
    # each estimate within 4 of its fit errors (which are scaled by the reduced chi^2), and the
    # mean of the 16 within 10 %; a wrong lag unit or segment would miss by a factor >= 2
    assert np.all(np.abs(table["tau"] - 0.06) < 4 * table["tau_err"]), table[["tau", "tau_err"]]
    assert abs(table["tau"].mean() / 0.06 - 1) < 0.1
    partial = table[table["kind"] == "partial"]
    np.testing.assert_allclose(partial["t_start"].unique(), [0, 1, 2, 3])
