"""Real rheo-XPCS data of paper 001 (jhorwath/XPCS_Clustering, see PROVENANCE.md).

(a) The authors' published autoencoder weights load strictly into :class:`C2Autoencoder`;
their real C2 crop is encoded and reconstructed and set beside our own model's
reconstruction (at our crop size) with the L1 errors and the L1 of predicting the crop's
mean. (b) The paper's Fig. 3 on real data: k-means with the automatic elbow on the 900
published latents, clusters numbered slowest first by the relaxation time of the C2 that the
published decoder draws from their latents (the real crops are not published), class
fractions per crop start time across the 18 sectors beside the rheometer's shear stress with
its minima marked, and the UMAP of the latents.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

FILES = {
    "crop": "AccuracyEvaluation_TargetImage.npy",
    "latents": "full_dataset_AugmentedTraining_rheo64.npy",
    "sectors": "E031_256_sectors.npy",
    "starts": "E031_256_start.npy",
    "rheology": "RheoData.pkl",
    "weights": "full_dataset_augmented_training_normbest_model_0051.pth",
}


def real_paths(data_dir) -> dict[str, Path]:
    """Paths of the authors' files in ``data_dir``.

    Parameters
    ----------
    data_dir : path
        The ``horwath_rheo_xpcs`` directory.

    Returns
    -------
    dict of str to Path
        Keys of :data:`FILES`.

    Raises
    ------
    InputError
        Naming the first missing file.
    """
    from ..errors import InputError

    data_dir = Path(data_dir)
    paths = {key: data_dir / name for key, name in FILES.items()}
    for path in paths.values():
        if not path.exists():
            raise InputError(f"{path}: missing (expected the horwath_rheo_xpcs files, see PROVENANCE.md)")
    return paths


def load_crop(path) -> np.ndarray:
    """The authors' real C2 crop.

    Parameters
    ----------
    path : path
        ``.npy`` of a square 2-D map (``AccuracyEvaluation_TargetImage.npy``: 256 x 256 in [0, 1]).

    Returns
    -------
    ndarray (n, n) float32

    Raises
    ------
    InputError
        When the array is not square, not 2-D or not finite.
    """
    from ..errors import InputError

    crop = np.load(path, allow_pickle=False).astype(np.float32)
    if crop.ndim != 2 or crop.shape[0] != crop.shape[1] or not np.isfinite(crop).all():
        raise InputError(f"{path}: expected a finite square 2-D C2 crop, got shape {crop.shape}")
    return crop


def block_mean(image: np.ndarray, size: int) -> np.ndarray:
    """Downsample a square image by averaging ``n/size`` x ``n/size`` blocks.

    Parameters
    ----------
    image : ndarray (n, n)
    size : int
        Output side; must divide ``n``.

    Returns
    -------
    ndarray (size, size)

    Raises
    ------
    ValueError
        When ``size`` does not divide ``n``.
    """
    n = image.shape[0]
    if n % size:
        raise ValueError(f"cannot average a {n}-px image into {size} px blocks")
    f = n // size
    return image.reshape(size, f, size, f).mean(axis=(1, 3))


def reconstruct(model, crop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Latent and reconstruction of one crop (no gradients; the model should be in eval mode).

    Parameters
    ----------
    model : C2Autoencoder
    crop : ndarray (n, n) float32
        The model's input side (scaled to [0, 1] by :func:`~speckleml.clustering.model.to_model_input`).

    Returns
    -------
    latent : ndarray (latent,) float32
    recon : ndarray (n, n) float32
    """
    import torch

    from .model import to_model_input

    with torch.no_grad():
        z = model.encode(to_model_input(crop))
        return z[0].numpy(), model.decode(z)[0, 0].numpy()


def cessation_time(rheology) -> float:
    """Time at which the shear rate drops to zero for the last time.

    Parameters
    ----------
    rheology : pandas.DataFrame
        The rheometer table with ``time`` (s) and ``shear_rate`` (1/s) columns.

    Returns
    -------
    float
        Time (s, rheometer clock) of the first sample after the last one sheared (|rate| > 1e-3).
    """
    rate = np.abs(rheology["shear_rate"].to_numpy())
    sheared = np.flatnonzero(rate > 1e-3)
    last = sheared[-1] if sheared.size else -1
    return float(rheology["time"].to_numpy()[min(last + 1, len(rate) - 1)])


def recon_figure(crop, published, ours_input, ours, errors: dict, path) -> None:
    """The real crop, the published and our reconstructions and their errors (PNG at ``path``)."""
    from ..plotting import figure, save_figure

    fig, axes = figure(1, 5, 2.2, 2.4)
    panels = [(crop, "real C2 crop (256 px)"),
              (published, f"published weights\nL1 {errors['l1_published']:.3f}"),
              (np.abs(published - crop), "|published - crop|"),
              (ours, f"our model ({ours_input.shape[0]} px)\nL1 {errors['l1_ours']:.3f}"),
              (np.abs(ours - ours_input), "|ours - crop|")]
    for ax, (image, title) in zip(axes[0], panels):
        im = ax.imshow(image, origin="lower", vmin=0, vmax=1, cmap="viridis")
        ax.set_title(title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes[0, -1], fraction=0.05)
    fig.suptitle(f"L1 of predicting the crop's mean: {errors['l1_mean']:.3f}", fontsize=9)
    save_figure(fig, path)


#: Prominence of a marked shear-stress minimum, relative to the median stress after cessation
#: (the three drops of the published run are 4-10 Pa deep at ~85 Pa; the noise is < 1 Pa).
STRESS_MINIMUM_PROMINENCE = 0.02


def stress_minima(time: np.ndarray, stress: np.ndarray, prominence: float = STRESS_MINIMUM_PROMINENCE) -> np.ndarray:
    """Times of the shear-stress minima after cessation, marked in paper 001 Fig. 3.

    Parameters
    ----------
    time : ndarray (T,)
        Time (s) after shear cessation, increasing.
    stress : ndarray (T,)
        Shear stress (Pa).
    prominence : float
        Least depth of a minimum below its surrounding maxima, as a fraction of the median
        stress over ``time >= 0`` (:func:`scipy.signal.find_peaks` prominence).

    Returns
    -------
    ndarray (n,) float
        Times (s) of the minima at ``time >= 0``.
    """
    from scipy.signal import find_peaks

    after = np.asarray(time) >= 0
    t, s = np.asarray(time, np.float64)[after], np.asarray(stress, np.float64)[after]
    if s.size < 3:
        return np.empty(0)
    index, _ = find_peaks(-s, prominence=prominence * float(np.median(s)))
    return t[index]


def decoded_relaxation(model, latents: np.ndarray, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """KWW relaxation time of the C2 that the published decoder draws from each latent.

    The authors published latents, not the 900 real C2 crops they encode; their decoder turns
    each latent back into a crop, whose diagonal profile gives a relaxation time
    (:func:`~speckleml.clustering.crops.fit_crops_kww`, free baseline: the crops are min-max
    scaled). This is the physical quantity that orders the real-data clusters.

    Parameters
    ----------
    model : C2Autoencoder
        The published model (eval mode).
    latents : ndarray (N, latent)
    batch_size : int

    Returns
    -------
    tau : ndarray (N,) float64
        Relaxation time in frames of the crop (NaN where the fit failed).
    bound : ndarray (N,) int8
        ``+1`` / ``-1`` where ``tau`` sits above / below the crop's lag range.
    """
    import torch

    from .crops import fit_crops_kww

    crops = []
    with torch.no_grad():
        for start in range(0, len(latents), batch_size):
            z = torch.from_numpy(np.ascontiguousarray(latents[start:start + batch_size], np.float32))
            crops.append(model.decode(z)[:, 0].numpy())
    tau, _, bound = fit_crops_kww(np.concatenate(crops), baseline=None)
    return tau, bound


def fig3_real(table, rheology, t0: float, path) -> None:
    """Paper 001 Fig. 3 on real data: class fractions per crop start beside the shear stress.

    Parameters
    ----------
    table : pandas.DataFrame
        ``start`` (s after cessation) and ``cluster`` of each real latent.
    rheology : pandas.DataFrame
        ``time`` (s), ``shear_stress`` (Pa).
    t0 : float
        Shear cessation time (s, rheometer clock).
    path : path
        PNG to write.

    The shear-stress minima (:func:`stress_minima`) are drawn as vertical black lines in both
    panels, as in the paper.
    """
    from ..plotting import figure, save_figure
    from .cluster import class_fractions
    from .figures import stacked_fractions

    k = int(table["cluster"].max()) + 1
    times, fractions = class_fractions(table["start"].to_numpy(), table["cluster"].to_numpy(), k)
    width = float(np.median(np.diff(times))) if times.size > 1 else 1.0
    fig, axes = figure(2, 1, 7.0, 2.3, sharex=True)
    stacked_fractions(axes[0, 0], times, fractions, width)
    axes[0, 0].set_title(f"A: real rheo-XPCS, class fractions across 18 sectors (k = {k}, elbow; "
                         "slowest decoded C2 first)", fontsize=8)
    axes[0, 0].legend(fontsize=6, ncol=min(k, 6), loc="upper right")
    t = rheology["time"].to_numpy() - t0
    stress = rheology["shear_stress"].to_numpy()
    # from cessation on: the stress during shear (up to 4e4 Pa) would flatten the relaxation
    keep = (t >= 0) & (t <= times.max() + 2 * width) & (stress > 0)
    ax = axes[1, 0]
    ax.plot(t[keep], stress[keep], color="k", lw=1)
    ax.set_yscale("log")
    ax.set_ylabel("shear stress (Pa)")
    ax.set_xlabel("time after shear cessation (s)")
    ax.set_title("B: rheometer shear stress; vertical lines: stress minima")
    for minimum in stress_minima(t, stress):
        for panel in (axes[0, 0], ax):
            panel.axvline(minimum, color="k", lw=1.2)
    save_figure(fig, path)


def umap_real(table, elbow_table, path) -> None:
    """Embedding of the real latents by cluster, and their elbow curve (PNG at ``path``)."""
    from ..plotting import figure, save_figure
    from .figures import _colour

    fig, axes = figure(1, 2, 3.6, 3.0)
    ax = axes[0, 0]
    for c in sorted(table["cluster"].unique()):
        part = table[table["cluster"] == c]
        ax.scatter(part["embed_x"], part["embed_y"], s=5, color=_colour(c), label=f"cluster {c}")
    ax.set_xlabel("embedding 1")
    ax.set_ylabel("embedding 2")
    ax.set_title("published latents of 900 real C2")
    ax.legend(fontsize=6, markerscale=2)
    ax = axes[0, 1]
    ax.plot(elbow_table["k"], elbow_table["distortion"], "o-", color="0.3")
    chosen = elbow_table[elbow_table["chosen"]]
    ax.plot(chosen["k"], chosen["distortion"], "o", ms=11, mfc="none", mec="C3", mew=2)
    ax.set_xlabel("k")
    ax.set_ylabel("distortion")
    ax.set_title(f"elbow: k = {int(chosen['k'].iloc[0])}")
    save_figure(fig, path)


def run_real(*, data_dir, model_path, out_dir, k_min: int, k_max: int, embedding: str, n_neighbors: int,
             min_dist: float, seed: int, latent_transform: str) -> dict:
    """The ``real`` stage: the authors' weights and latents of real rheo-XPCS data (paper 001 Fig. 3).

    Parameters
    ----------
    data_dir : path
        Directory of the authors' files (:data:`FILES`, see its PROVENANCE.md).
    model_path : path
        Our checkpoint; its reconstruction of the real crop (block-averaged to its input side
        and min-max scaled) is set beside the published one.
    out_dir : path
        Directory of ``real_clusters.csv``, ``real_elbow.csv``, ``real_summary.json`` and the
        figures ``real_recon``, ``real_fig3``, ``real_umap``.
    k_min, k_max : int
        Elbow scan range, ``1 <= k_min < k_max < 900``.
    embedding : {"umap", "pca"}
    n_neighbors, min_dist
        UMAP settings (paper: 5 and 0.25).
    seed : int
        Seeds k-means and UMAP.
    latent_transform : {"none", "log1p"}
        Space of the clustering and the embedding
        (:func:`~speckleml.clustering.cluster.transform_latents`); the decoder always gets the latents.

    Returns
    -------
    dict
        The summary written to ``real_summary.json`` (L1 errors, elbow k, cluster sizes...).

    Raises
    ------
    InputError
        When a file is missing or malformed, the published weights do not fit, our model's
        crop does not divide the real crop, the k range is invalid or the transform does not fit the latents.
    """
    import pandas as pd

    from ..atomic import write_csv, write_text
    from ..errors import InputError
    from .cluster import elbow_curve, elbow_point, embed, fit_clusters, latent_space
    from .model import load_model, load_published

    paths = real_paths(data_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    crop = load_crop(paths["crop"])
    published = load_published(paths["weights"], crop=crop.shape[0])
    latent_pub, recon_pub = reconstruct(published, crop)
    ours, _ = load_model(model_path)
    try:
        ours_input = block_mean(crop, ours.config.crop)
    except ValueError as exc:
        raise InputError(f"{model_path}: {exc}") from None
    # our crops are min-max normalised: keep the averaged crop on the same [0, 1] scale
    ours_input = ((ours_input - ours_input.min()) / max(np.ptp(ours_input), 1e-12)).astype(np.float32)
    _, recon_ours = reconstruct(ours, ours_input)
    errors = {"l1_published": float(np.abs(recon_pub - crop).mean()),
              "l1_mean": float(np.abs(crop - crop.mean()).mean()),
              "l1_ours": float(np.abs(recon_ours - ours_input).mean()),
              "l1_mean_ours_scale": float(np.abs(ours_input - ours_input.mean()).mean())}
    recon_figure(crop, recon_pub, ours_input, recon_ours, errors, out / "real_recon.png")

    latents = np.load(paths["latents"], allow_pickle=False).astype(np.float64)
    sectors = np.load(paths["sectors"], allow_pickle=False).astype(np.int64)
    starts = np.load(paths["starts"], allow_pickle=False).astype(np.float64)
    if not (latents.ndim == 2 and len(latents) == len(sectors) == len(starts)):
        raise InputError(f"{data_dir}: latents {latents.shape}, sectors {sectors.shape} and starts {starts.shape} disagree")
    if not 1 <= k_min < k_max < len(latents):
        raise InputError(f"--k-min/--k-max: need 1 <= k_min < k_max < {len(latents)} (the real latents), "
                         f"got {k_min}..{k_max}")
    space = latent_space(latents, latent_transform, paths["latents"])
    ks = np.arange(k_min, k_max + 1)
    distortion = elbow_curve(space, ks, seed)
    k = elbow_point(ks, distortion)
    # the real C2 crops are not published: relaxation times of the crops the decoder draws
    tau, bound = decoded_relaxation(published, latents)
    labels, _ = fit_clusters(space, k, seed, tau=tau, bound=bound)
    coords = embed(space, embedding, seed, n_neighbors, min_dist)
    table = pd.DataFrame({"item": np.arange(len(latents)), "sector": sectors, "start": starts, "cluster": labels,
                          "decoded_kww_tau": tau, "decoded_kww_bound": bound,
                          "embed_x": coords[:, 0], "embed_y": coords[:, 1]})
    elbow_table = pd.DataFrame({"k": ks, "distortion": distortion, "chosen": ks == k})
    write_csv(table, out / "real_clusters.csv")
    write_csv(elbow_table, out / "real_elbow.csv")
    rheology = pd.read_pickle(paths["rheology"])
    t0 = cessation_time(rheology)
    fig3_real(table, rheology, t0, out / "real_fig3.png")
    umap_real(table, elbow_table, out / "real_umap.png")
    summary = {**errors, "published_latent_size": int(latent_pub.size),
               "published_latent_min": float(latent_pub.min()), "published_latent_nonzero": int((latent_pub > 0).sum()),
               "our_crop": int(ours.config.crop), "k_elbow": int(k), "latent_transform": latent_transform,
               "n_latents": int(len(latents)),
               "cluster_sizes": np.bincount(labels, minlength=k).tolist(), "shear_cessation_time_s": t0,
               "cluster_order": "slowest first by the median KWW time (frames) of the decoded crops, "
                                "fits at a bound left out",
               "cluster_decoded_tau_frames": [_median_inside(tau, bound, labels == c) for c in range(k)],
               "cluster_decoded_bound_hits": [[int((bound[labels == c] > 0).sum()), int((bound[labels == c] < 0).sum())]
                                              for c in range(k)],
               "stress_minima_s": stress_minima(rheology["time"].to_numpy() - t0,
                                                rheology["shear_stress"].to_numpy()).tolist()}
    write_text(json.dumps(summary, indent=2) + "\n", out / "real_summary.json")
    log.info("real data: published L1 %.3f (mean-prediction L1 %.3f), ours %.3f; k = %d",
             errors["l1_published"], errors["l1_mean"], errors["l1_ours"], k)
    return summary


def _median_inside(tau: np.ndarray, bound: np.ndarray, members: np.ndarray) -> float | None:
    """Median of the fits inside the lag range among ``members`` (None when there is none)."""
    inside = members & (bound == 0) & np.isfinite(tau)
    return float(np.median(tau[inside])) if inside.any() else None
