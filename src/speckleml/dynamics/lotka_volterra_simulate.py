"""The ``simulate`` stage of the fluctuating-source case (paper 000 Case study 3).

:func:`run_simulation` draws one random object per series, integrates the Lotka-Volterra
motion of its centre of mass (:func:`~speckleml.dynamics.systems.lotka_volterra.simulate_states`)
and writes the training states, the training frames (point model under a Gaussian probe,
:class:`~speckleml.dynamics.systems.lotka_volterra.FluctuatingSourceSpeckle`) and the test
states (new objects, long horizon). The objects are rebuilt from the geometry's seed, so the
frames store's ``geometry`` attr is all the training needs to know of the sample.
"""

from __future__ import annotations

import logging

import numpy as np

from ..errors import InputError

log = logging.getLogger(__name__)

#: Seed offset of each split's objects: independent objects for training and test.
SPLITS = {"train": 0, "test": 1}


def run_simulation(*, states, frames, test_states, series: int, t_max: float, dt: float, test_series: int,
                   test_t_max: float, test_dt: float, n_particles: int, box: float, particle_radius: float,
                   probe_sigma: float, detector: int, dq_factor: float, render_dtype: str, seed: int,
                   run_config: dict | None = None) -> None:
    """Simulate the truth and the training frames of the fluctuating-source case.

    Parameters
    ----------
    states, frames, test_states : path
        Output training states store ``(series, time, 2)`` (``x, y`` = centre of mass + offset,
        length units), training frames store ``(series, time, qy, qx)`` (intensity, probe peak
        amplitude 1) and test states store.
    series, t_max, dt : int, float, float
        Training series and window ``0, dt, ..., t_max`` (paper: 100, 16, 2).
    test_series, test_t_max, test_dt : int, float, float
        Evaluation series (new objects) and their horizon and sampling (paper: 50, 500).
    n_particles, box, particle_radius, probe_sigma, detector, dq_factor, render_dtype :
        :class:`~speckleml.dynamics.systems.lotka_volterra.LotkaVolterraGeometry` fields
        (lengths in units of ``box``, ``dq_factor`` in units of pi / box).
    seed : int
        Drives everything: the objects of split ``s`` are drawn from ``default_rng([seed, s])``.
    run_config : dict, optional
        The stage's parameters, recorded in the provenance.

    Raises
    ------
    InputError
        Invalid times or geometry.
    """
    import torch

    from ..provenance import make_provenance
    from ..runtime import seed_everything
    from ..scattering import detector_q_axes
    from ..stores import write_frames, write_states
    from .systems.lotka_volterra import SYSTEM, FluctuatingSourceSpeckle, LotkaVolterraGeometry, simulate_states

    seed_everything(seed)
    geometry = LotkaVolterraGeometry(n_series=series, n_particles=n_particles, object_seed=(seed, SPLITS["train"]),
                                     box=box, particle_radius=particle_radius, probe_sigma=probe_sigma,
                                     detector=detector, dq_factor=dq_factor, render_dtype=render_dtype)
    provenance = make_provenance(config=run_config, seed=seed)
    attrs = {"units": "length (box side L = box)", "box": box, "n_particles": n_particles,
             "offset": [1.0, 1.0], "parameters": {"alpha": 1 / 3, "beta": 2 / 3, "gamma": 0.5, "delta": 0.5}}
    runs = [("train", states, series, t_max, dt), ("test", test_states, test_series, test_t_max, test_dt)]
    values = t = None
    for split, path, n_series, window, step in runs:
        rng = np.random.default_rng([seed, SPLITS[split]])
        out, times = simulate_states(n_series, window, step, rng, n_particles=n_particles, box_length=box)
        write_states(path, out, times, system=SYSTEM, dims=("series", "time", "coordinate"),
                     attrs={**attrs, "split": split, "dt": step,
                            "object_seed": [seed, SPLITS[split]]}, provenance=provenance)
        if split == "train":
            values, t = out, times
    forward = FluctuatingSourceSpeckle(geometry)
    with torch.no_grad():
        images = forward(torch.as_tensor(values, dtype=torch.float64)).numpy().astype(np.float32)
    if not np.all(np.isfinite(images)):
        raise InputError("non-finite speckle frames (check the geometry)")
    qy, qx = detector_q_axes(detector, geometry.dq, dtype=torch.float64)
    write_frames(frames, images, mask=np.ones(images.shape[-2:], bool), qx=qx.numpy(), qy=qy.numpy(),
                 attrs={"t": t.tolist(), "dt": dt, "geometry": geometry.as_attrs(), "lambda_max": None,
                        "units": "intensity (probe peak amplitude 1)", "q_units": "1/length"},
                 provenance=provenance)
    log.info("simulated %d training series (%d frames of %dx%d) and %d test series to t = %g",
             series, len(t), detector, detector, test_series, test_t_max)
