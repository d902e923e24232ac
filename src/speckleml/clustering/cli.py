"""`speckleml clustering <stage>`: command line of the clustering study (paper 001, AI-NERD).

simulate -> crops -> train -> encode -> cluster -> similar -> figures, plus `real` (the
authors' published weights and latents of real rheo-XPCS data).
"""

from __future__ import annotations

import logging

from ..cli import add_device, add_seed, add_stage, add_study, add_threads
from ..runtime import set_torch_threads

log = logging.getLogger(__name__)

SIMULATE_EXAMPLE = """\
example:
  speckleml clustering simulate results/clustering/frames.zarr results/clustering/drive_frames.zarr \\
      --per-class 4 --frames 96 --drive-frames 512 --segment 64 --crop 64 --size 64 --mean-counts 20
"""
CROPS_EXAMPLE = """\
examples:
  speckleml clustering crops results/clustering/frames.zarr results/clustering/crops.zarr --crop 64 --per-map 1
  speckleml clustering crops results/clustering/drive_frames.zarr results/clustering/drive_crops.zarr \\
      --crop 64 --stride 16            # sliding windows: class fractions over time
"""
TRAIN_EXAMPLE = """\
example:
  speckleml clustering train results/clustering/crops.zarr results/clustering/model.pt \\
      --latent 64 --epochs 5 --augment 4 --history results/clustering/history.csv \\
      --metrics results/clustering/train_metrics.json
"""
ENCODE_EXAMPLE = """\
example:
  speckleml clustering encode results/clustering/model.pt results/clustering/crops.zarr results/clustering/latents.zarr
"""
CLUSTER_EXAMPLE = """\
example:
  speckleml clustering cluster results/clustering/latents.zarr --k-min 2 --k-max 12 --embedding umap \\
      --assignments clusters.csv --elbow elbow.csv --scores scores.csv \\
      --apply results/clustering/drive_latents.zarr --apply-out drive_clusters.csv
"""
SIMILAR_EXAMPLE = """\
examples:
  # a C2 of your own (2-D .npy; the first crop along its diagonal is used)
  speckleml clustering similar results/clustering/model.pt results/clustering/latents.zarr my_c2.npy -k 4 \\
      --out neighbours.csv
  # query crops of one simulated class drawn from the crops store
  speckleml clustering similar results/clustering/model.pt results/clustering/latents.zarr \\
      --crops results/clustering/crops.zarr --query-class heterodyne_flow --n-queries 4 -k 4 --out nn.csv
"""
FIGURES_EXAMPLE = """\
example:
  speckleml clustering figures --crops crops.zarr --latents latents.zarr --clusters clusters.csv \\
      --elbow elbow.csv --scores scores.csv --drive-frames drive_frames.zarr --drive-clusters drive_clusters.csv \\
      --neighbours neighbours.csv --sweep sweep/latent2.json sweep/latent64.json --out-dir figures
"""
REAL_EXAMPLE = """\
example:
  speckleml clustering real ../shared/data/real/horwath_rheo_xpcs --model results/clustering/model.pt \\
      --out-dir results/clustering/real
"""


def register(commands) -> None:
    stages = add_study(commands, "clustering", "AI-NERD autoencoder classes of two-time maps (paper 001)")

    p = add_stage(stages, "simulate", simulate,
                  "simulate non-equilibrium XPCS frames with known dynamics classes", epilog=SIMULATE_EXAMPLE)
    p.add_argument("output", help="frames store of the class library (*.zarr)")
    p.add_argument("drive_output", help="frames store of the driven stress-relaxation run (*.zarr)")
    p.add_argument("--per-class", type=int, default=4, help="series per dynamics class (default %(default)s)")
    p.add_argument("--frames", type=int, default=96, help="frames per library series (default %(default)s)")
    p.add_argument("--drive-frames", type=int, default=512, help="frames of the driven run (default %(default)s)")
    p.add_argument("--segment", type=int, default=64, help="frames per class segment of the driven run (default %(default)s)")
    p.add_argument("--crop", type=int, default=64, help="crop size that sets the class time scales (default %(default)s)")
    p.add_argument("--size", type=int, default=64, help="detector side in pixels (default %(default)s)")
    p.add_argument("--q-inner", type=float, default=0.15, help="ring inner radius / detector size (default %(default)s)")
    p.add_argument("--q-outer", type=float, default=0.45, help="ring outer radius / detector size (default %(default)s)")
    p.add_argument("--mean-counts", type=float, default=20.0, help="Poisson counts per pixel; 0 = noise-free (default %(default)s)")
    p.add_argument("--anisotropy", type=float, default=1.0, help="shear anisotropy of the driven run's rates (default %(default)s)")
    p.add_argument("--dt", type=float, default=1.0, help="frame time in seconds (default %(default)s)")
    add_seed(p)

    p = add_stage(stages, "crops", crops,
                  "C2 of azimuthal sectors (shared correlation engine) and min-max crops along the diagonal",
                  epilog=CROPS_EXAMPLE)
    p.add_argument("frames", help="frames store (*.zarr)")
    p.add_argument("output", help="crops store to write (*.zarr)")
    p.add_argument("--crop", type=int, default=64, help="crop side in frames (default %(default)s)")
    p.add_argument("--sectors", type=int, default=18, help="azimuthal sectors of the q-ring (default %(default)s)")
    p.add_argument("--q-edges", type=float, nargs=2, metavar=("INNER", "OUTER"),
                   help="ring edges in the store's q units (default: the simulator's ring)")
    p.add_argument("--normalization", choices=("pixel_mean", "ring_mean", "classical", "covariance"),
                   default="pixel_mean", help="C2 normalisation (default %(default)s; ring_mean = paper 001 eq. 1-2)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--per-map", type=int, default=1, help="random crops per C2 map (default %(default)s)")
    group.add_argument("--stride", type=int, help="sliding crops every STRIDE frames instead of random ones")
    add_seed(p)

    p = add_stage(stages, "train", train, "train the C2 autoencoder (L1, Adam + CyclicLR triangular2)",
                  epilog=TRAIN_EXAMPLE)
    p.add_argument("crops", help="crops store (*.zarr)")
    p.add_argument("output", help="model checkpoint to write (*.pt)")
    p.add_argument("--latent", type=int, default=64, help="latent size (default %(default)s)")
    p.add_argument("--epochs", type=int, default=5, help="epochs (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=32, help="batch size (default %(default)s)")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default %(default)s)")
    p.add_argument("--augment", type=int, default=4, help="wrapped diagonal shifts per crop and epoch (default %(default)s)")
    p.add_argument("--cycle-epochs", type=int, default=6, help="CyclicLR half cycle in epochs (default %(default)s)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="fraction of series held out (default %(default)s)")
    p.add_argument("--history", help="CSV of per-epoch losses")
    p.add_argument("--metrics", help="JSON with the held-out reconstruction errors of the kept weights")
    add_threads(p)
    add_seed(p)
    add_device(p)

    p = add_stage(stages, "encode", encode, "encode crops into latent vectors", epilog=ENCODE_EXAMPLE)
    p.add_argument("model", help="model checkpoint (*.pt)")
    p.add_argument("crops", help="crops store (*.zarr)")
    p.add_argument("output", help="latents store to write (*.zarr)")
    p.add_argument("--batch-size", type=int, default=64, help="batch size (default %(default)s)")
    add_threads(p)
    add_device(p)

    p = add_stage(stages, "cluster", cluster, "k-means with an automatic elbow, UMAP, ARI/NMI against truth",
                  epilog=CLUSTER_EXAMPLE)
    p.add_argument("latents", help="latents store (*.zarr)")
    p.add_argument("--k-min", type=int, default=2, help="smallest k (default %(default)s)")
    p.add_argument("--k-max", type=int, default=12, help="largest k (default %(default)s)")
    p.add_argument("--k", type=int, help="use this k instead of the elbow")
    p.add_argument("--embedding", choices=("umap", "pca"), default="umap", help="2-D embedding (default %(default)s)")
    p.add_argument("--n-neighbors", type=int, default=5, help="UMAP n_neighbors (default %(default)s)")
    p.add_argument("--min-dist", type=float, default=0.25, help="UMAP min_dist (default %(default)s)")
    p.add_argument("--assignments", required=True, help="CSV: one row per crop with its cluster and embedding")
    p.add_argument("--elbow", required=True, help="CSV: distortion per k and the chosen k")
    p.add_argument("--scores", required=True, help="CSV: ARI, NMI, k (and per-class relaxation times)")
    p.add_argument("--apply", help="another latents store to assign to the same centroids")
    p.add_argument("--apply-out", help="CSV of the assignments of --apply")
    add_seed(p)

    p = add_stage(stages, "similar", similar, "nearest neighbours of a C2 in the latent space", epilog=SIMILAR_EXAMPLE)
    p.add_argument("model", help="model checkpoint (*.pt)")
    p.add_argument("latents", help="latents store to search (*.zarr)")
    p.add_argument("query", nargs="?", help="query C2 (.npy, 2-D); omit with --query-class")
    p.add_argument("--query-start", type=int, default=0, help="diagonal start of the crop taken from the query (default %(default)s)")
    p.add_argument("--crops", help="crops store the latents were made from (for --query-class)")
    p.add_argument("--query-class", help="draw queries from the crops of this true class")
    p.add_argument("--n-queries", type=int, default=4, help="queries drawn with --query-class (default %(default)s)")
    p.add_argument("-k", "--neighbours", type=int, default=4, help="neighbours per query (default %(default)s)")
    p.add_argument("--out", required=True, help="CSV of the neighbours")
    add_seed(p)
    add_device(p)

    p = add_stage(stages, "figures", figures, "the paper's figures and the beyond-paper checks", epilog=FIGURES_EXAMPLE)
    for name, text in (("crops", "crops store"), ("latents", "latents store"), ("clusters", "cluster CSV"),
                       ("elbow", "elbow CSV"), ("scores", "scores CSV"), ("drive-frames", "driven-run frames store"),
                       ("drive-clusters", "driven-run cluster CSV"), ("neighbours", "neighbours CSV")):
        p.add_argument(f"--{name}", required=True, help=text)
    p.add_argument("--sweep", nargs="+", default=[], help="train metrics JSON of the latent-size sweep")
    p.add_argument("--out-dir", required=True, help="directory for the PNG figures")
    add_seed(p)

    p = add_stage(stages, "real", real, "published weights and latents on real rheo-XPCS data (paper Fig. 3)",
                  epilog=REAL_EXAMPLE)
    p.add_argument("data_dir", help="directory with the authors' files (horwath_rheo_xpcs)")
    p.add_argument("--model", required=True, help="our model checkpoint (*.pt) to compare reconstructions")
    p.add_argument("--out-dir", required=True, help="directory for tables and figures")
    p.add_argument("--k-min", type=int, default=2, help="smallest k (default %(default)s)")
    p.add_argument("--k-max", type=int, default=12, help="largest k (default %(default)s)")
    p.add_argument("--embedding", choices=("umap", "pca"), default="umap", help="2-D embedding (default %(default)s)")
    p.add_argument("--n-neighbors", type=int, default=5, help="UMAP n_neighbors (default %(default)s)")
    p.add_argument("--min-dist", type=float, default=0.25, help="UMAP min_dist (default %(default)s)")
    add_seed(p)


# --------------------------------------------------------------------------- helpers


def _positive(name: str, value, minimum=1) -> None:
    from ..errors import InputError

    if value is None or value < minimum:
        raise InputError(f"{name} must be >= {minimum}, got {value}")



# --------------------------------------------------------------------------- stages


def simulate(args) -> int:
    import numpy as np

    from ..errors import InputError
    from ..progress import progress
    from ..provenance import provenance_from_args
    from ..stores import write_frames
    from .simulate import CLASSES, Detector, simulate_drive, simulate_library

    for name in ("per_class", "frames", "drive_frames", "segment", "crop"):
        _positive(f"--{name.replace('_', '-')}", getattr(args, name))
    if args.crop > args.frames or args.segment > args.drive_frames or args.crop > args.drive_frames:
        raise InputError("--crop must be <= --frames and --drive-frames, and --segment <= --drive-frames")
    if args.mean_counts < 0 or args.dt <= 0:
        raise InputError("--mean-counts must be >= 0 and --dt > 0")
    try:
        detector = Detector(args.size, args.q_inner, args.q_outer)
    except ValueError as exc:
        raise InputError(f"--size/--q-inner/--q-outer: {exc}") from None
    counts = args.mean_counts or None
    frames, labels, params = simulate_library(args.per_class, args.frames, args.crop, detector, args.seed,
                                              mean_counts=counts, progress=progress)
    axis = detector.axis
    common = {"dt": args.dt, "units": {"t": "s", "q": "pixel", "intensity": "counts" if counts else "a.u."},
              "source": "speckleml clustering simulate", "q_edges": list(detector.q_edges)}
    write_frames(args.output, frames, qx=axis, qy=axis, provenance=provenance_from_args(args),
                 attrs={**common, "truth": {"classes": list(CLASSES), "series_class": labels.tolist(),
                                            "params": params}})
    log.info("wrote %s: %d series x %d frames, classes %s", args.output, frames.shape[0], frames.shape[1],
             np.bincount(labels, minlength=len(CLASSES)).tolist())
    drive = simulate_drive(args.drive_frames, args.crop, args.segment, detector, args.seed + 1,
                           anisotropy=args.anisotropy, mean_counts=counts)
    write_frames(args.drive_output, drive["frames"], qx=axis, qy=axis, provenance=provenance_from_args(args),
                 attrs={**common, "truth": {"classes": list(CLASSES), "frame_class": [drive["frame_class"].tolist()],
                                            "segments": drive["segments"]},
                        "drive": {"name": "shear stress", "units": "relative (1 at cessation)",
                                  "values": [drive["stress"].tolist()]}})
    log.info("wrote %s: driven run of %d frames, segments %s", args.drive_output, args.drive_frames, drive["segments"])
    return 0


def _crop_labels(truth: dict, series: int, starts, crop: int) -> list[int]:
    """True class of each crop: the series class, or the majority class of the crop window."""
    import numpy as np

    if "series_class" in truth:
        return [int(truth["series_class"][series])] * len(starts)
    if "frame_class" in truth:
        frame_class = np.asarray(truth["frame_class"][series])
        return [int(np.bincount(frame_class[s:s + crop]).argmax()) for s in starts]
    return [-1] * len(starts)


def crops(args) -> int:
    import numpy as np

    from ..errors import InputError
    from ..progress import progress
    from ..provenance import provenance_from_args
    from ..stores import read_frames, write_store
    from .crops import (CROPS, diagonal_crops, fit_crops_kww, minmax_normalise, random_starts, sector_c2,
                        sector_labels, sliding_starts)

    _positive("--crop", args.crop, 2)
    _positive("--sectors", args.sectors)
    _positive("--per-map", args.per_map)
    if args.stride is not None:
        _positive("--stride", args.stride)
    store = read_frames(args.frames, lazy=True)
    n_series, n_frames = store["frames"].shape[:2]
    if args.crop > n_frames:
        raise InputError(f"{args.frames}: {n_frames} frames are fewer than --crop {args.crop}")
    q_edges = args.q_edges or store.attrs.get("q_edges")
    if q_edges is None:
        raise InputError(f"{args.frames}: no q_edges attr; give --q-edges INNER OUTER")
    try:
        labels, _ = sector_labels(store["qx"], store["qy"], tuple(q_edges), args.sectors, mask=store["mask"])
    except ValueError as exc:
        raise InputError(f"{args.frames}: {exc}") from None
    truth = store.attrs.get("truth", {})
    rng = np.random.default_rng(args.seed)
    pieces = {k: [] for k in ("crops", "label", "series", "sector", "start", "c2_min", "c2_max")}
    for s in progress(range(n_series), "crops"):
        c2 = sector_c2(store["frames"][s], labels, args.normalization)
        for sector in range(args.sectors):
            starts = (sliding_starts(n_frames, args.crop, args.stride) if args.stride
                      else random_starts(n_frames, args.crop, args.per_map, rng))
            raw = diagonal_crops(c2[sector], starts, args.crop)
            if not np.isfinite(raw).all():
                raise InputError(f"{args.frames}: series {s} sector {sector} has a non-finite C2 (empty sector?)")
            scaled, low, high = minmax_normalise(raw)
            pieces["crops"].append(scaled)
            pieces["c2_min"].append(low)
            pieces["c2_max"].append(high)
            pieces["start"].append(starts)
            pieces["series"].append(np.full(starts.size, s))
            pieces["sector"].append(np.full(starts.size, sector))
            pieces["label"].append(_crop_labels(truth, s, starts, args.crop))
    arrays = {k: np.concatenate([np.asarray(v) for v in vals]) for k, vals in pieces.items()}
    for key in ("label", "series", "sector", "start"):
        arrays[key] = arrays[key].astype(np.int64)
    arrays["kww_tau"], arrays["kww_gamma"] = fit_crops_kww(arrays["crops"], progress)
    attrs = {"classes": truth.get("classes", []), "crop": args.crop, "dt": store.attrs.get("dt", 1.0),
             "n_sectors": args.sectors, "normalization": args.normalization, "q_edges": list(q_edges),
             "n_frames": int(n_frames), "source": str(args.frames)}
    write_store(args.output, CROPS, arrays, attrs=attrs, provenance=provenance_from_args(args, inputs=[args.frames]))
    log.info("wrote %s: %d crops of %d px from %d series x %d sectors", args.output, len(arrays["label"]),
             args.crop, n_series, args.sectors)
    return 0


def train(args) -> int:
    import json

    import pandas as pd

    from ..atomic import write_csv, write_text
    from ..errors import InputError
    from ..stores import read_store
    from ..runtime import resolve_device
    from .crops import CROPS
    from .model import AutoencoderConfig, save_model
    from .train import TrainConfig, train_autoencoder

    set_torch_threads(args.threads)
    store = read_store(args.crops, CROPS)
    try:
        model_config = AutoencoderConfig(crop=int(store.attrs["crop"]), latent=args.latent)
        train_config = TrainConfig(args.epochs, args.batch_size, args.lr, args.augment, args.cycle_epochs,
                                   args.val_fraction)
    except ValueError as exc:
        raise InputError(f"{args.crops}: {exc}") from None
    device = resolve_device(args.device)
    try:
        model, history = train_autoencoder(store["crops"], store["series"], model_config, train_config,
                                           args.seed, device)
    except ValueError as exc:
        raise InputError(f"{args.crops}: {exc}") from None
    best = min(history, key=lambda row: row["val_l1"])
    metrics = {"latent": args.latent, "crop": model_config.crop, "epochs": args.epochs,
               "best_epoch": best["epoch"], "val_l1": best["val_l1"], "val_mse": best["val_mse"],
               "n_parameters": sum(p.numel() for p in model.parameters())}
    save_model(model.cpu(), args.output, extra={"metrics": metrics, "history": history})
    if args.history:
        write_csv(pd.DataFrame(history), args.history)
    if args.metrics:
        write_text(json.dumps(metrics, indent=2) + "\n", args.metrics)
    log.info("wrote %s: latent %d, best val L1 %.4f (MSE %.5f) at epoch %d", args.output, args.latent,
             best["val_l1"], best["val_mse"], best["epoch"])
    return 0


def encode(args) -> int:
    from ..provenance import provenance_from_args
    from ..stores import read_store, write_store
    from ..runtime import resolve_device
    from .cluster import LATENTS
    from .crops import CROPS
    from .model import load_model
    from .train import encode_crops

    set_torch_threads(args.threads)
    _positive("--batch-size", args.batch_size)
    store = read_store(args.crops, CROPS)
    model, _ = load_model(args.model)
    if model.config.crop != int(store.attrs["crop"]):
        from ..errors import InputError

        raise InputError(f"{args.crops}: crops are {store.attrs['crop']} px but {args.model} expects {model.config.crop}")
    latents, errors = encode_crops(model, store["crops"], resolve_device(args.device), args.batch_size)
    arrays = {"latent": latents, "recon_l1": errors, "kww_tau": store["kww_tau"],
              **{k: store[k] for k in ("label", "series", "sector", "start")}}
    attrs = {k: store.attrs[k] for k in ("classes", "dt", "crop")}
    write_store(args.output, LATENTS, arrays, attrs={**attrs, "model": str(args.model), "source": str(args.crops)},
                provenance=provenance_from_args(args, inputs=[args.model, args.crops]))
    log.info("wrote %s: %d latents of size %d, mean L1 %.4f", args.output, *latents.shape, float(errors.mean()))
    return 0


def _latent_table(store, labels, embedding=None):
    import pandas as pd

    table = pd.DataFrame({k: store[k] for k in ("series", "sector", "start", "label", "kww_tau", "recon_l1")})
    table.insert(0, "item", range(len(table)))
    classes = store.attrs.get("classes", [])
    table["class"] = [classes[i] if 0 <= i < len(classes) else "" for i in table["label"]]
    table["t_start"] = table["start"] * float(store.attrs.get("dt", 1.0))
    table["cluster"] = labels
    if embedding is not None:
        table["embed_x"], table["embed_y"] = embedding[:, 0], embedding[:, 1]
    return table


def cluster(args) -> int:
    import numpy as np
    import pandas as pd

    from ..atomic import write_csv
    from ..errors import InputError
    from ..stores import read_store
    from .cluster import LATENTS, agreement_scores, assign, elbow_curve, elbow_point, embed, fit_clusters

    store = read_store(args.latents, LATENTS)
    latents = store["latent"].astype(np.float64)
    n = latents.shape[0]
    if not 1 <= args.k_min < args.k_max or args.k_max >= n:
        raise InputError(f"need 1 <= --k-min < --k-max < number of crops ({n}), got {args.k_min}..{args.k_max}")
    if (args.apply is None) != (args.apply_out is None):
        raise InputError("--apply and --apply-out go together")
    ks = np.arange(args.k_min, args.k_max + 1)
    distortion = elbow_curve(latents, ks, args.seed)
    k = args.k or elbow_point(ks, distortion)
    labels, centres = fit_clusters(latents, k, args.seed, tau=store["kww_tau"])
    embedding = embed(latents, args.embedding, args.seed, args.n_neighbors, args.min_dist)
    table = _latent_table(store, labels, embedding)
    write_csv(table, args.assignments)
    write_csv(pd.DataFrame({"k": ks, "distortion": distortion, "chosen": ks == k}), args.elbow)
    truth = store["label"]
    rows = [{"metric": "k", "value": k}]
    if (truth >= 0).any():
        for name, value in agreement_scores(truth, labels).items():
            rows.append({"metric": name, "value": value})
        n_classes = int(truth.max()) + 1
        for name, value in agreement_scores(truth, fit_clusters(latents, n_classes, args.seed)[0]).items():
            rows.append({"metric": f"{name}_at_true_k", "value": value})
    write_csv(pd.DataFrame(rows), args.scores)
    log.info("k = %d (elbow of k=%d..%d); %s", k, args.k_min, args.k_max,
             ", ".join(f"{r['metric']}={r['value']:.3f}" for r in rows[1:]))
    if args.apply:
        other = read_store(args.apply, LATENTS)
        if other["latent"].shape[1] != latents.shape[1]:
            raise InputError(f"{args.apply}: latent size {other['latent'].shape[1]} differs from {latents.shape[1]}")
        write_csv(_latent_table(other, assign(other["latent"], centres)), args.apply_out)
    return 0


def similar(args) -> int:
    import numpy as np
    import pandas as pd

    from ..atomic import write_csv
    from ..errors import InputError
    from ..stores import read_store
    from ..runtime import resolve_device
    from .cluster import LATENTS, nearest_neighbours
    from .crops import CROPS, minmax_normalise
    from .model import load_model
    from .train import encode_crops

    _positive("-k", args.neighbours)
    store = read_store(args.latents, LATENTS)
    model, _ = load_model(args.model)
    crop = model.config.crop
    if store["latent"].shape[1] != model.config.latent:
        raise InputError(f"{args.latents}: latent size {store['latent'].shape[1]} does not match {args.model}")
    exclude = None
    if args.query is not None:
        if args.query_class:
            raise InputError("give either a query file or --query-class, not both")
        query = _load_query(args.query, crop, args.query_start)
        queries, names = minmax_normalise(query[None])[0], [str(args.query)]
        query_items = [-1]
    else:
        if not args.query_class or not args.crops:
            raise InputError("give a query .npy file, or --query-class with --crops")
        _positive("--n-queries", args.n_queries)
        crops_store = read_store(args.crops, CROPS)
        classes = list(crops_store.attrs.get("classes", []))
        if args.query_class not in classes:
            raise InputError(f"--query-class {args.query_class!r} is not one of {classes}")
        candidates = np.flatnonzero(crops_store["label"] == classes.index(args.query_class))
        if candidates.size == 0:
            raise InputError(f"{args.crops}: no crops of class {args.query_class!r}")
        rng = np.random.default_rng(args.seed)
        query_items = np.sort(rng.choice(candidates, size=min(args.n_queries, candidates.size), replace=False))
        queries = crops_store["crops"][query_items]
        names = [f"item {i}" for i in query_items]
        exclude = query_items
    latents_q, _ = encode_crops(model, queries, resolve_device(args.device))
    index, distance = nearest_neighbours(latents_q, store["latent"], args.neighbours, exclude=exclude)
    rows = []
    for q, (name, item) in enumerate(zip(names, query_items)):
        for rank in range(index.shape[1]):
            i = int(index[q, rank])
            rows.append({"query": q, "query_name": name, "query_item": int(item), "rank": rank + 1,
                         "item": i, "distance": float(distance[q, rank]), "label": int(store["label"][i]),
                         "series": int(store["series"][i]), "sector": int(store["sector"][i]),
                         "start": int(store["start"][i])})
    write_csv(pd.DataFrame(rows), args.out)
    log.info("wrote %s: %d queries x %d neighbours", args.out, len(names), index.shape[1])
    return 0


def _load_query(path, crop: int, start: int):
    """A 2-D C2 from ``path`` (.npy) cropped to ``crop`` along its diagonal from ``start``."""
    import numpy as np

    from ..errors import InputError

    try:
        c2 = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise InputError(f"{path}: not a readable .npy array ({type(exc).__name__})") from None
    c2 = np.squeeze(c2)
    if c2.ndim != 2 or c2.shape[0] != c2.shape[1]:
        raise InputError(f"{path}: query must be a square 2-D C2 map, got shape {c2.shape}")
    if start < 0 or start + crop > c2.shape[0]:
        raise InputError(f"{path}: a {crop}-frame crop from --query-start {start} does not fit a {c2.shape[0]}-frame map")
    c2 = c2[start:start + crop, start:start + crop].astype(np.float32)
    if not np.isfinite(c2).all():
        raise InputError(f"{path}: query crop contains NaN or infinite values")
    return c2


def figures(args) -> int:
    from .figures import make_figures

    make_figures(args)
    return 0


def real(args) -> int:
    from .real import run_real

    run_real(args)
    return 0
