"""How the clustering study's agreement with the simulated truth varies with the seed.

Runs the default library chain (simulate -> crops -> train -> encode -> cluster: the same
library functions and schema defaults as the workflow's rules, without the driven run, the
sweep and UMAP, which do not change the scores) once per seed and prints one JSON line per run
(data seed, training seed): the elbow k, ARI/NMI at the elbow and at the true k = 6 (in the default latent space,
and ``ari_none`` with the latents as they are), the held-out L1 and the CPU seconds. ``--train-seeds`` reuses one seed's crops store and varies only the training and
k-means seed, which separates the scatter of the simulated data from that of the training.

    python benchmarks/clustering_seeds.py --seeds 42 1 3 7 5 11 --work /tmp/clu_seeds
    python benchmarks/clustering_seeds.py --seeds 7 --train-seeds 100 101 --work /tmp/clu_seeds

About 2 CPU minutes per run on one thread; the table of its runs is in the README (clustering,
"Measured", "Over seeds").
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from speckleml.clustering import cluster, crops, simulate, train
from speckleml.schema import schema_default


def default(key: str):
    return schema_default(f"clustering.{key}")


def library_crops(work: Path, seed: int) -> Path:
    """Simulate the default library at ``seed`` and cut its crops store (``work/crops.zarr``)."""
    for name in ("library.zarr", "drive.zarr", "crops.zarr"):
        shutil.rmtree(work / name, ignore_errors=True)
    crop, crop_bin = default("crop"), default("crop_bin")
    sim = {k: default(f"simulate.{k}") for k in ("per_class", "frames", "size", "q_inner", "q_outer",
                                                  "mean_counts", "anisotropy", "dt")}
    window = crop * crop_bin   # the shortest driven run the stage accepts: it is not scored here
    simulate.simulate_stores(work / "library.zarr", work / "drive.zarr", drive_frames=window, segment=window,
                             crop=crop, crop_bin=crop_bin, seed=seed, **sim)
    crops.make_crops(work / "library.zarr", work / "crops.zarr", crop=crop, crop_bin=crop_bin,
                     sectors=default("sectors"), normalization=default("normalization"),
                     per_map=default("crops_per_map"), stride=None, seed=seed)
    return work / "crops.zarr"


def cluster_scores(work: Path, seed: int, transform: str) -> dict:
    """k-means with the elbow on the latents of ``model{seed}``, in the space of ``transform``."""
    import pandas as pd

    scores = work / f"scores{seed}_{transform}.csv"
    cluster.cluster_store(work / f"latents{seed}.zarr", k_min=default("cluster.k_min"), k_max=default("cluster.k_max"),
                          embedding="pca", n_neighbors=default("cluster.n_neighbors"),
                          min_dist=default("cluster.min_dist"), seed=seed, latent_transform=transform,
                          assignments_path=work / f"clusters{seed}_{transform}.csv",
                          elbow_path=work / f"elbow{seed}_{transform}.csv", scores_path=scores)
    return pd.read_csv(scores).set_index("metric")["value"]


def score(work: Path, crops_path: Path, seed: int) -> dict:
    """Train, encode and cluster with the schema defaults at ``seed``; the scores as a dict
    (``ari_none``: the same latents clustered as they are, the paper's space)."""
    t = {k: default(f"train.{k}") for k in ("latent", "epochs", "batch_size", "lr", "cycle_epochs", "val_fraction")}
    metrics = train.train_from_store(crops_path, work / f"model{seed}.pt", pools=tuple(default("train.pools")),
                                     seed=seed, device="cpu", **t)
    shutil.rmtree(work / f"latents{seed}.zarr", ignore_errors=True)
    train.encode_store(work / f"model{seed}.pt", crops_path, work / f"latents{seed}.zarr", device="cpu")
    transform = default("cluster.latent_transform")
    values, raw = cluster_scores(work, seed, transform), cluster_scores(work, seed, "none")
    return {"transform": transform, "k": int(values["k"]), "ari": round(float(values["ari"]), 3),
            "nmi": round(float(values["nmi"]), 3),
            "ari_at_true_k": round(float(values["ari_at_true_k"]), 3), "k_none": int(raw["k"]),
            "ari_none": round(float(raw["ari"]), 3), "val_l1": round(metrics["val_l1"], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 3, 7, 5, 11], help="data (and training) seeds (default %(default)s)")
    parser.add_argument("--train-seeds", type=int, nargs="*", default=[],
                        help="training seeds to run on each data seed's crops besides the data seed itself")
    parser.add_argument("--work", type=Path, required=True, help="scratch directory (stores are overwritten)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for seed in args.seeds:
        work = args.work / f"seed{seed}"
        work.mkdir(parents=True, exist_ok=True)
        start = time.process_time()
        crops_path = library_crops(work, seed)
        for train_seed in [seed, *args.train_seeds]:
            row = {"data_seed": seed, "train_seed": train_seed, **score(work, crops_path, train_seed),
                   "cpu_s": round(time.process_time() - start)}
            print(json.dumps(row), flush=True)
            rows.append(row)
            start = time.process_time()
    summary = {"benchmark": "clustering_seeds", "runs": len(rows)}
    for key in ("ari", "ari_none"):
        values = [row[key] for row in rows]
        summary.update({f"{key}_mean": round(sum(values) / len(values), 3), f"{key}_min": min(values),
                        f"{key}_at_least_0.6": sum(v >= 0.6 for v in values)})
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
