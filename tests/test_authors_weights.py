"""The authors' published AI-NERD weights on their own real C2 crop (paper 001, Fig. 1D)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import real_file
from speckleml.clustering.model import load_published, to_model_input

REAL_DIR = ("horwath_rheo_xpcs",)
WEIGHTS = "full_dataset_augmented_training_normbest_model_0051.pth"
CROP = "AccuracyEvaluation_TargetImage.npy"


@pytest.mark.realdata
def test_published_weights_reconstruct_the_authors_crop_well_below_its_mean():
    torch.set_num_threads(1)
    crop = np.load(real_file(*REAL_DIR, CROP))
    model = load_published(real_file(*REAL_DIR, WEIGHTS))
    with torch.no_grad():
        recon = model(to_model_input(crop))[0, 0].double().numpy()
    l1 = np.abs(recon - crop).mean()
    l1_mean = np.abs(crop - crop.mean()).mean()
    # measured: L1 0.0368 against 0.0939 for predicting the crop's mean (0.341 with a Sigmoid output)
    assert l1 < 0.5 * l1_mean
    assert abs(l1 - 0.0368) < 0.002 and abs(l1_mean - 0.0939) < 0.001
    # the crop is symmetric with t1 = t2 on the main diagonal: time-reversal (both axes flipped)
    # keeps the reconstruction, mirroring one axis (anti-diagonal) breaks it
    mirrored = np.ascontiguousarray(crop[:, ::-1])
    with torch.no_grad():
        recon_mirrored = model(to_model_input(mirrored))[0, 0].double().numpy()
    assert np.abs(recon_mirrored - mirrored).mean() > 2 * l1


def test_to_model_input_is_nchw_float32_min_max_per_crop():
    rng = np.random.default_rng(0)
    crops = rng.normal(1.2, 0.1, (3, 8, 8))
    crops[1] = 5.0                                   # constant crop -> zeros, not NaN
    x = to_model_input(crops)
    assert x.shape == (3, 1, 8, 8) and x.dtype == torch.float32
    assert float(x[0].min()) == 0.0 and float(x[0].max()) == 1.0 and float(x[1].abs().max()) == 0.0
    expected = (crops[2] - crops[2].min()) / np.ptp(crops[2])
    np.testing.assert_allclose(x[2, 0].numpy(), expected, rtol=1e-6)
    assert to_model_input(crops[0]).shape == (1, 1, 8, 8)
    with pytest.raises(ValueError, match="square"):
        to_model_input(np.zeros((4, 5)))
    with pytest.raises(ValueError, match="finite"):
        to_model_input(np.full((4, 4), np.nan))
