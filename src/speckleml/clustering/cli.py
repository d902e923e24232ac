"""`speckleml clustering <stage>`: command line of the clustering study (paper 001, AI-NERD).

simulate -> crops -> train -> encode -> cluster -> similar -> figures, plus `real` (the
authors' published weights and latents of real rheo-XPCS data). Each handler parses, then calls
one library function; defaults of options the config also sets come from its schema.
"""

from __future__ import annotations

import argparse

from ..cli import (add_config_option, add_device, add_seed, add_stage, add_study, add_threads, non_negative_float,
                   positive_float, positive_int)

SIMULATE_EXAMPLE = """\
example (laptop scale, the schema defaults):
  speckleml clustering simulate results/clustering/frames.zarr results/clustering/drive_frames.zarr
"""
CROPS_EXAMPLE = """\
examples:
  speckleml clustering crops results/clustering/frames.zarr results/clustering/crops.zarr --crop 64 --per-map 1
  speckleml clustering crops results/clustering/drive_frames.zarr results/clustering/drive_crops.zarr \\
      --crop 64 --stride 16            # sliding windows: class fractions over time
"""
TRAIN_EXAMPLE = """\
example:
  speckleml clustering train results/clustering/crops.zarr results/clustering/model.pt --epochs 8 \\
      --history results/clustering/history.csv --metrics results/clustering/train_metrics.json
"""
ENCODE_EXAMPLE = """\
example:
  speckleml clustering encode results/clustering/model.pt results/clustering/crops.zarr results/clustering/latents.zarr
"""
CLUSTER_EXAMPLE = """\
example:
  speckleml clustering cluster results/clustering/latents.zarr --assignments clusters.csv --elbow elbow.csv \\
      --scores scores.csv --apply results/clustering/drive_latents.zarr --apply-out drive_clusters.csv
"""
SIMILAR_EXAMPLE = """\
examples:
  # a C2 of your own (2-D .npy; the first crop along its diagonal is used)
  speckleml clustering similar model.pt results/clustering/latents.zarr my_c2.npy -k 4 --out neighbours.csv
  # query crops of one simulated class drawn from the crops store
  speckleml clustering similar results/clustering/model.pt results/clustering/latents.zarr \\
      --crops results/clustering/crops.zarr --query-class heterodyne_flow --n-queries 4 -k 4 --out nn.csv
"""
FIGURES_EXAMPLE = """\
example:
  speckleml clustering figures --crops crops.zarr --clusters clusters.csv --elbow elbow.csv --scores scores.csv \\
      --drive-frames drive_frames.zarr --drive-clusters drive_clusters.csv --neighbours neighbours.csv \\
      --sweep sweep/latent2.json sweep/latent64.json --out-dir figures
"""
REAL_EXAMPLE = """\
example:
  speckleml clustering real ../shared/data/real/horwath_rheo_xpcs --model model.pt --out-dir results/clustering/real
"""


def _opt(parser, flags, key: str, help: str, **kwargs):
    """An option (flag or tuple of flags): default and bounds from the schema of ``clustering.<key>``."""
    flags = (flags,) if isinstance(flags, str) else flags
    return add_config_option(parser, *flags, key=f"clustering.{key}", help=f"{help} (default %(default)s)", **kwargs)


def _add_cluster_options(p) -> None:
    _opt(p, "--k-min", "cluster.k_min", "smallest k", type=positive_int)
    _opt(p, "--k-max", "cluster.k_max", "largest k", type=positive_int)
    _opt(p, "--embedding", "cluster.embedding", "2-D embedding", choices=("umap", "pca"))
    _opt(p, "--n-neighbors", "cluster.n_neighbors", "UMAP n_neighbors", type=positive_int)
    _opt(p, "--min-dist", "cluster.min_dist", "UMAP min_dist", type=non_negative_float)
    _opt(p, "--latent-transform", "cluster.latent_transform", "latents before k-means", choices=("none", "log1p"))


def register(commands) -> None:
    stages = add_study(commands, "clustering", "AI-NERD autoencoder classes of two-time maps (paper 001)")

    p = add_stage(stages, "simulate", simulate,
                  "simulate non-equilibrium XPCS frames with known dynamics classes", epilog=SIMULATE_EXAMPLE)
    p.add_argument("output", help="frames store of the class library (*.zarr)")
    p.add_argument("drive_output", help="frames store of the driven stress-relaxation run (*.zarr)")
    _opt(p, "--per-class", "simulate.per_class", "series per dynamics class", type=positive_int)
    _opt(p, "--frames", "simulate.frames", "frames per library series", type=positive_int)
    _opt(p, "--drive-frames", "simulate.drive_frames", "frames of the driven run", type=positive_int)
    _opt(p, "--segment", "simulate.segment", "frames per class segment of the driven run", type=positive_int)
    _opt(p, "--crop", "crop", "crop side (pixels); crop x crop-bin frames set the class time scales", type=positive_int)
    _opt(p, "--crop-bin", "crop_bin", "frames per crop pixel", type=positive_int)
    _opt(p, "--size", "simulate.size", "detector side in pixels", type=positive_int)
    _opt(p, "--q-inner", "simulate.q_inner", "ring inner radius / detector size", type=positive_float)
    _opt(p, "--q-outer", "simulate.q_outer", "ring outer radius / detector size", type=positive_float)
    _opt(p, "--mean-counts", "simulate.mean_counts", "Poisson counts per pixel; 0 = noise-free", type=non_negative_float)
    _opt(p, "--anisotropy", "simulate.anisotropy", "shear anisotropy of the driven run's rates", type=non_negative_float)
    _opt(p, "--dt", "simulate.dt", "frame time in seconds", type=positive_float)
    add_seed(p)

    p = add_stage(stages, "crops", crops,
                  "C2 of azimuthal sectors (shared correlation engine) and min-max crops along the diagonal",
                  epilog=CROPS_EXAMPLE)
    p.add_argument("frames", help="frames store (*.zarr)")
    p.add_argument("output", help="crops store to write (*.zarr)")
    _opt(p, "--crop", "crop", "crop side in pixels (the autoencoder input)", type=positive_int)
    _opt(p, "--crop-bin", "crop_bin", "frames per crop pixel: windows of crop x crop-bin frames, block-averaged",
         type=positive_int)
    _opt(p, "--sectors", "sectors", "azimuthal sectors of the q-ring", type=positive_int)
    p.add_argument("--q-edges", type=float, nargs=2, metavar=("INNER", "OUTER"),
                   help="ring edges in the store's q units (default: the simulator's ring)")
    _opt(p, "--normalization", "normalization", "C2 normalisation (ring_mean = paper 001 eq. 1-2)",
         choices=("pixel_mean", "ring_mean", "classical", "covariance"))
    group = p.add_mutually_exclusive_group()
    _opt(group, "--per-map", "crops_per_map", "random crops per C2 map", type=positive_int)
    group.add_argument("--stride", type=positive_int, help="sliding crops every STRIDE frames instead of random ones")
    add_seed(p)

    p = add_stage(stages, "train", train, "train the C2 autoencoder (L1, Adam + CyclicLR triangular2)",
                  epilog=TRAIN_EXAMPLE)
    p.add_argument("crops", help="crops store (*.zarr)")
    p.add_argument("output", help="model checkpoint to write (*.pt)")
    _opt(p, "--latent", "train.latent", "latent size", type=positive_int)
    _opt(p, "--pools", "train.pools", "max-pool factor of each encoder stage", type=positive_int, nargs=3,
         metavar=("P1", "P2", "P3"))
    _opt(p, "--epochs", "train.epochs", "epochs", type=positive_int)
    _opt(p, "--batch-size", "train.batch_size", "batch size", type=positive_int)
    _opt(p, "--lr", "train.lr", "peak learning rate", type=positive_float)
    _opt(p, "--cycle-epochs", "train.cycle_epochs", "CyclicLR half cycle in epochs", type=positive_int)
    _opt(p, "--val-fraction", "train.val_fraction", "fraction of series held out", type=positive_float)
    p.add_argument("--history", help="output CSV of per-epoch losses")
    p.add_argument("--metrics", help="JSON with the held-out reconstruction errors of the kept weights")
    add_threads(p)
    add_seed(p)
    add_device(p)

    p = add_stage(stages, "encode", encode, "encode crops into latent vectors", epilog=ENCODE_EXAMPLE)
    p.add_argument("model", help="model checkpoint (*.pt)")
    p.add_argument("crops", help="crops store (*.zarr)")
    p.add_argument("output", help="latents store to write (*.zarr)")
    # memory only (not the training batch size of the config): results do not depend on it
    p.add_argument("--batch-size", dest="encode_batch", type=positive_int, default=64,
                   help="crops per forward pass (default %(default)s)")
    add_threads(p)
    add_device(p)

    p = add_stage(stages, "cluster", cluster, "k-means with an automatic elbow, UMAP, ARI/NMI against truth",
                  epilog=CLUSTER_EXAMPLE)
    p.add_argument("latents", help="latents store (*.zarr)")
    _add_cluster_options(p)
    p.add_argument("--k", type=positive_int, help="use this k instead of the elbow")
    p.add_argument("--assignments", required=True, help="output CSV: one row per crop with its cluster and embedding")
    p.add_argument("--elbow", required=True, help="output CSV: distortion per k and the chosen k")
    p.add_argument("--scores", required=True, help="output CSV: ARI, NMI, k (and per-class relaxation times)")
    p.add_argument("--apply", help="another latents store to assign to the same centroids")
    p.add_argument("--apply-out", help="output CSV of the assignments of --apply")
    add_seed(p)

    p = add_stage(stages, "similar", similar, "nearest neighbours of a C2 in the latent space", epilog=SIMILAR_EXAMPLE)
    p.add_argument("model", help="model checkpoint (*.pt)")
    p.add_argument("latents", help="latents store to search (*.zarr)")
    p.add_argument("query", nargs="?", help="query C2 (.npy, 2-D); omit with --query-class")
    p.add_argument("--query-start", type=int, default=0, help="diagonal start of the crop taken from the query (default %(default)s)")
    p.add_argument("--crops", help="crops store the latents were made from (for --query-class)")
    p.add_argument("--query-class", help="draw queries from the crops of this true class")
    _opt(p, "--n-queries", "similar.n_queries", "queries drawn with --query-class", type=positive_int)
    _opt(p, ("-k", "--neighbours"), "similar.neighbours", "neighbours per query", type=positive_int)
    _opt(p, "--exclude-series", "similar.exclude_series", "leave out the crops of a store query's own series",
         action=argparse.BooleanOptionalAction)
    p.add_argument("--out", required=True, help="output CSV of the neighbours")
    p.add_argument("--precision", help="output CSV of the per-class precision of the neighbours (queries and library)")
    add_seed(p)
    add_device(p)

    p = add_stage(stages, "figures", figures, "the paper's figures and the beyond-paper checks", epilog=FIGURES_EXAMPLE)
    for name, text in (("crops", "crops store"), ("clusters", "cluster CSV"), ("elbow", "elbow CSV"),
                       ("scores", "scores CSV"), ("drive-frames", "driven-run frames store"),
                       ("drive-clusters", "driven-run cluster CSV"), ("neighbours", "neighbours CSV")):
        p.add_argument(f"--{name}", required=True, help=text)
    p.add_argument("--sweep", nargs="*", help="train metrics JSON of the latent-size sweep")
    p.add_argument("--out-dir", required=True, help="directory for the PNG figures")
    add_seed(p)

    p = add_stage(stages, "real", real, "published weights and latents on real rheo-XPCS data (paper Fig. 3)",
                  epilog=REAL_EXAMPLE)
    p.add_argument("data_dir", help="directory with the authors' files (horwath_rheo_xpcs)")
    p.add_argument("--model", required=True, help="our model checkpoint (*.pt) to compare reconstructions")
    p.add_argument("--out-dir", required=True, help="directory for tables and figures")
    _add_cluster_options(p)
    add_seed(p)


def simulate(args) -> None:
    from .simulate import simulate_stores

    simulate_stores(args.output, args.drive_output, per_class=args.per_class, frames=args.frames,
                    drive_frames=args.drive_frames, segment=args.segment, crop=args.crop,
                    crop_bin=args.crop_bin, size=args.size,
                    q_inner=args.q_inner, q_outer=args.q_outer, mean_counts=args.mean_counts,
                    anisotropy=args.anisotropy, dt=args.dt, seed=args.seed)


def crops(args) -> None:
    from .crops import make_crops

    make_crops(args.frames, args.output, crop=args.crop, sectors=args.sectors, normalization=args.normalization,
               per_map=args.per_map, stride=args.stride, seed=args.seed, crop_bin=args.crop_bin,
               q_edges=args.q_edges)


def train(args) -> None:
    from ..runtime import set_torch_threads
    from .train import train_from_store

    set_torch_threads(args.threads)
    train_from_store(args.crops, args.output, latent=args.latent, epochs=args.epochs, batch_size=args.batch_size,
                     lr=args.lr, cycle_epochs=args.cycle_epochs, pools=tuple(args.pools),
                     val_fraction=args.val_fraction, seed=args.seed, device=args.device,
                     history_path=args.history, metrics_path=args.metrics)


def encode(args) -> None:
    from ..runtime import set_torch_threads
    from .train import encode_store

    set_torch_threads(args.threads)
    encode_store(args.model, args.crops, args.output, device=args.device, batch_size=args.encode_batch)


def cluster(args) -> None:
    from .cluster import cluster_store

    cluster_store(args.latents, k_min=args.k_min, k_max=args.k_max, k=args.k, embedding=args.embedding,
                  n_neighbors=args.n_neighbors, min_dist=args.min_dist, seed=args.seed,
                  assignments_path=args.assignments, elbow_path=args.elbow, scores_path=args.scores,
                  apply_path=args.apply, apply_out_path=args.apply_out, latent_transform=args.latent_transform)


def similar(args) -> None:
    from .search import similarity_search

    similarity_search(args.model, args.latents, args.out, neighbours=args.neighbours, seed=args.seed,
                      device=args.device, exclude_series=args.exclude_series, query_path=args.query,
                      query_start=args.query_start, crops_path=args.crops, query_class=args.query_class,
                      n_queries=args.n_queries, precision_path=args.precision)


def figures(args) -> None:
    from .figures import make_figures

    make_figures(crops_path=args.crops, clusters_path=args.clusters, elbow_path=args.elbow,
                 scores_path=args.scores, drive_frames_path=args.drive_frames,
                 drive_clusters_path=args.drive_clusters, neighbours_path=args.neighbours,
                 sweep_paths=args.sweep or [], out_dir=args.out_dir, seed=args.seed)


def real(args) -> None:
    from .real import run_real

    run_real(data_dir=args.data_dir, model_path=args.model, out_dir=args.out_dir, k_min=args.k_min,
             k_max=args.k_max, embedding=args.embedding, n_neighbors=args.n_neighbors, min_dist=args.min_dist,
             seed=args.seed, latent_transform=args.latent_transform)
