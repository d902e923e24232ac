"""`speckleml disk-count <stage>`: command line of the disk_count study (paper 002).

simulate -> preprocess -> train -> evaluate / interpret / moments -> figures; ``predict``
classifies user patterns with a trained model. Heavy imports happen inside the handlers.
"""

from __future__ import annotations

import logging

from ..cli import add_device, add_seed, add_stage, add_study, add_threads
from ..runtime import set_torch_threads

log = logging.getLogger(__name__)

SIMULATE_EXAMPLE = """\
example:
  speckleml disk-count simulate results/disk_count/mono/patterns_135.zarr --dispersity mono \\
      --n-disks 2 4 6 8 10 --per-class 120 --size 135 --seed 42
"""
PREPROCESS_EXAMPLE = """\
example:
  speckleml disk-count preprocess results/disk_count/mono/patterns_135.zarr \\
      results/disk_count/mono/inputs_135.zarr --block 11 --bin 5 --split 0.8 0.1 0.1 --seed 42
"""
TRAIN_EXAMPLE = """\
example:
  speckleml disk-count train results/disk_count/mono/inputs_135.zarr results/disk_count/mono/model.pt \\
      --history results/disk_count/mono/history.csv --arch resnet18 --epochs 12 --batch-size 32
"""
EVALUATE_EXAMPLE = """\
example:
  speckleml disk-count evaluate results/disk_count/mono/model.pt results/disk_count/mono/inputs_135.zarr \\
      --metrics metrics.csv --confusion confusion.csv --predictions predictions.csv
"""
INTERPRET_EXAMPLE = """\
example:
  speckleml disk-count interpret results/disk_count/mono/model.pt results/disk_count/mono/inputs_135.zarr \\
      results/disk_count/mono/maps.zarr
"""
MOMENTS_EXAMPLE = """\
example:
  speckleml disk-count moments results/disk_count/mono/patterns_269.zarr moments.csv --block 11 --per-class 10
"""
FIGURES_EXAMPLE = """\
examples:
  speckleml disk-count figures confusion confusion.csv fig3.png --title "monodisperse"
  speckleml disk-count figures confusion confusion.csv fig5.png --bands
  speckleml disk-count figures systems patterns.zarr fig2.png --show 2 3 6 10 15 20
  speckleml disk-count figures moments moments.csv fig6.png
  speckleml disk-count figures maps maps.zarr maps.png
  speckleml disk-count figures history history.csv history.png
"""
PREDICT_EXAMPLE = """\
examples:
  speckleml disk-count predict results/disk_count/mono/model.pt my_patterns.npy
  speckleml disk-count predict model.pt results/xpcs/frames.zarr --output predictions.csv
Patterns must be centred on k = 0 (odd size, the direct beam in the centre pixel) and sampled
with the training k pixel (pi / L). A .npy holds one pattern (y, x) or a stack (n, y, x).
"""


def register(commands) -> None:
    stages = add_study(commands, "disk-count", "ResNet disk counting from one speckle pattern (paper 002)")

    p = add_stage(stages, "simulate", simulate, "random non-overlapping disk systems -> speckle patterns store",
                  epilog=SIMULATE_EXAMPLE)
    p.add_argument("output", help="patterns store to write (*.zarr)")
    p.add_argument("--dispersity", choices=("mono", "poly"), default="mono",
                   help="equal radii, or Gaussian radii with sd = mean/3 (default %(default)s)")
    p.add_argument("--n-disks", type=int, nargs="+", default=list(range(2, 21)),
                   help="disk numbers, one class each (default 2..20)")
    p.add_argument("--per-class", type=int, default=100, help="patterns per disk number (default %(default)s)")
    p.add_argument("--size", type=int, default=257, help="pattern side in k pixels, odd (default %(default)s)")
    p.add_argument("--box", type=float, default=2000.0, help="real-space box side L; k pixel = pi/L (default %(default)s)")
    p.add_argument("--precision", choices=("float32", "float64"), default="float32",
                   help="floating point precision of the amplitude sum (default %(default)s)")
    p.add_argument("--batch", type=int, default=16, help="patterns per amplitude batch (default %(default)s)")
    add_seed(p)
    add_device(p)

    p = add_stage(stages, "preprocess", preprocess, "block the centre, bin, standardise, split train/val/test",
                  epilog=PREPROCESS_EXAMPLE)
    p.add_argument("input", help="patterns store (from simulate)")
    p.add_argument("output", help="inputs store to write (*.zarr)")
    p.add_argument("--block", type=int, default=11, help="side of the blocked centre square, odd (default %(default)s)")
    p.add_argument("--bin", type=int, default=1, help="odd k-pixel binning factor, 1 = none (default %(default)s)")
    split = p.add_mutually_exclusive_group()
    split.add_argument("--split", type=float, nargs=3, default=(0.8, 0.1, 0.1), metavar=("TRAIN", "VAL", "TEST"),
                       help="fractions; the test set has the same count per class (default 0.8 0.1 0.1)")
    split.add_argument("--all-test", action="store_true", help="mark every pattern as test (transfer sets)")
    add_seed(p)

    p = add_stage(stages, "train", train, "train a ResNet classifier from scratch", epilog=TRAIN_EXAMPLE)
    p.add_argument("input", help="inputs store (from preprocess)")
    p.add_argument("output", help="model checkpoint to write (*.pt)")
    p.add_argument("--history", required=True, help="CSV of per-epoch loss and accuracy to write")
    p.add_argument("--arch", choices=("resnet18", "resnet34", "resnet50"), default="resnet50",
                   help="torchvision ResNet (default %(default)s, the paper's)")
    p.add_argument("--epochs", type=int, default=200, help="epochs (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=40, help="batch size (default %(default)s)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default %(default)s)")
    p.add_argument("--schedule", choices=("constant", "cosine"), default="constant",
                   help="learning-rate schedule (default %(default)s)")
    p.add_argument("--augment", action="store_true", help="random flips and 90-degree rotations")
    add_threads(p)
    add_seed(p)
    add_device(p)

    p = add_stage(stages, "evaluate", evaluate, "precision/recall/F1 per class, confusion matrix, predictions",
                  epilog=EVALUATE_EXAMPLE)
    p.add_argument("model", help="model checkpoint (from train)")
    p.add_argument("input", help="inputs store; its test split is evaluated")
    p.add_argument("--metrics", required=True, help="CSV: per-class precision, recall, F1 (Table 1 layout)")
    p.add_argument("--confusion", required=True, help="CSV: confusion matrix, rows true, columns predicted")
    p.add_argument("--predictions", required=True, help="CSV: one row per test pattern")
    add_threads(p)
    add_device(p)

    p = add_stage(stages, "interpret", interpret, "saliency and Grad-CAM maps of one test pattern per class",
                  epilog=INTERPRET_EXAMPLE)
    p.add_argument("model", help="model checkpoint (from train)")
    p.add_argument("input", help="inputs store; the first test pattern of each class is used")
    p.add_argument("output", help="maps store to write (*.zarr)")
    add_threads(p)
    add_device(p)

    p = add_stage(stages, "moments", moments, "first-moment baseline with the paper's four definitions",
                  epilog=MOMENTS_EXAMPLE)
    p.add_argument("input", help="patterns store (raw intensities, from simulate)")
    p.add_argument("output", help="CSV to write: one row per sampled pattern")
    p.add_argument("--block", type=int, default=11, help="blocked centre square, odd (default %(default)s)")
    p.add_argument("--per-class", type=int, default=10, help="patterns sampled per class (default %(default)s)")
    add_seed(p)

    p = add_stage(stages, "figures", figures, "paper figures from the stage outputs", epilog=FIGURES_EXAMPLE)
    p.add_argument("kind", choices=("systems", "confusion", "moments", "maps", "history"), help="which figure")
    p.add_argument("input", help="the stage output the figure shows (store or CSV)")
    p.add_argument("output", help="image to write (.png, .pdf, .svg)")
    p.add_argument("--title", default="", help="figure title (confusion)")
    p.add_argument("--bands", action="store_true", help="confusion: +/-1 band and 2 / >2 error circles (Fig. 5)")
    p.add_argument("--show", type=int, nargs="+", default=[2, 3, 6, 10, 15, 20],
                   help="systems: disk numbers to show (default %(default)s)")

    p = add_stage(stages, "predict", predict, "classify user patterns (npy or frames store) with a trained model",
                  epilog=PREDICT_EXAMPLE)
    p.add_argument("model", help="model checkpoint (from train)")
    p.add_argument("patterns", help=".npy (y, x) or (n, y, x), or a frames store (*.zarr)")
    p.add_argument("--output", help="also write the predictions to this CSV")
    add_threads(p)
    add_device(p)



def simulate(args) -> int:
    import numpy as np
    import torch

    from ..errors import InputError
    from ..progress import progress
    from ..provenance import provenance_from_args
    from ..stores import write_store
    from ..runtime import resolve_device, seed_everything
    from .data import PATTERNS
    from .simulate import TOTAL_AREA, k_axis, simulate_class

    if args.per_class < 1 or args.batch < 1:
        raise InputError("--per-class and --batch must be >= 1")
    if len(set(args.n_disks)) != len(args.n_disks) or min(args.n_disks) < 1:
        raise InputError(f"--n-disks must be distinct positive integers, got {args.n_disks}")
    if not args.box > 0:
        raise InputError(f"--box must be positive, got {args.box}")
    k = k_axis(args.size, args.box)
    seed_everything(args.seed)
    # One stream per (dispersity, size): stores of other sizes or dispersities drawn from the
    # same config seed hold independent configurations.
    rng = np.random.default_rng([args.seed, args.size, ("mono", "poly").index(args.dispersity)])
    device = resolve_device(args.device)
    dtype = getattr(torch, args.precision)
    classes = sorted(args.n_disks)
    patterns = np.empty((len(classes) * args.per_class, args.size, args.size), np.float32)
    disks = np.zeros((len(classes) * args.per_class, max(classes), 3))
    for i, n in enumerate(progress(classes, desc="simulate", every=10.0)):
        rows = slice(i * args.per_class, (i + 1) * args.per_class)
        patterns[rows], disks[rows, :n] = simulate_class(n, args.per_class, args.size, args.dispersity, rng,
                                                        box=args.box, batch=args.batch, dtype=dtype, device=device)
    n_disks = np.repeat(np.asarray(classes, np.int64), args.per_class)
    attrs = {"box": args.box, "dispersity": args.dispersity, "k_pixel": float(np.pi / args.box),
             "total_area": TOTAL_AREA, "classes": classes,
             "units": {"k": "1/box unit", "intensity": "(box unit)^4, |sum_j pi r^2 2J1(kr)/(kr) exp(-ik.c)|^2"},
             "disks_columns": ["x", "y", "radius"]}
    write_store(args.output, PATTERNS, {"patterns": patterns, "n_disks": n_disks, "disks": disks, "kx": k, "ky": k},
                attrs=attrs, provenance=provenance_from_args(args))
    log.info("wrote %d patterns (%d classes, %dx%d) to %s", len(n_disks), len(classes), args.size, args.size,
             args.output)
    return 0


def preprocess(args) -> int:
    import numpy as np

    from ..provenance import provenance_from_args
    from ..stores import read_store, write_store
    from .data import INPUTS, PATTERNS, SPLITS, standardise, stratified_split

    store = read_store(args.input, PATTERNS)
    inputs = standardise(store["patterns"], args.block, args.bin)
    labels = store["n_disks"]
    if args.all_test:
        split = np.full(labels.shape, SPLITS["test"], np.int8)
    else:
        split = stratified_split(labels, tuple(args.split), np.random.default_rng(args.seed))
    attrs = {"block": args.block, "bin": args.bin, "dispersity": store.attrs["dispersity"],
             "box": store.attrs["box"], "source_size": int(store["patterns"].shape[-1]),
             "k_pixel": store.attrs.get("k_pixel", float(np.pi / store.attrs["box"])) * args.bin,
             "normalisation": "centre block set to 0, binned, per-pattern zero mean and unit variance",
             "splits": SPLITS}
    write_store(args.output, INPUTS, {"inputs": inputs, "n_disks": labels, "split": split}, attrs=attrs,
                provenance=provenance_from_args(args, inputs=[args.input]))
    counts = {name: int((split == code).sum()) for name, code in SPLITS.items()}
    log.info("wrote %s inputs of %dx%d to %s", counts, *inputs.shape[1:], args.output)
    return 0


def train(args) -> int:
    import numpy as np
    import pandas as pd

    from ..atomic import write_csv
    from ..errors import InputError
    from ..provenance import provenance_from_args
    from ..stores import read_store
    from ..runtime import resolve_device, seed_everything
    from .data import INPUTS, SPLITS
    from .model import build_resnet, save_checkpoint
    from .train import TrainSettings, train_classifier

    set_torch_threads(args.threads)
    settings = TrainSettings(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, augment=args.augment,
                             schedule=args.schedule, seed=args.seed)
    store = read_store(args.input, INPUTS)
    labels, split, inputs = store["n_disks"], store["split"], store["inputs"]
    train_rows, val_rows = split == SPLITS["train"], split == SPLITS["val"]
    classes = sorted(int(c) for c in np.unique(labels[train_rows]))
    if len(classes) < 2:
        raise InputError(f"{args.input}: the train split holds {len(classes)} class(es); need at least 2")
    if not val_rows.any():
        raise InputError(f"{args.input}: the validation split is empty (use a non-zero VAL fraction)")
    index = {c: i for i, c in enumerate(classes)}
    if not set(np.unique(labels[val_rows])) <= set(classes):
        raise InputError(f"{args.input}: the validation split has classes missing from the train split")
    target = np.array([index.get(int(c), -1) for c in labels])
    seed_everything(args.seed)
    device = resolve_device(args.device)
    model = build_resnet(args.arch, len(classes))
    history = train_classifier(model, inputs[train_rows], target[train_rows], inputs[val_rows], target[val_rows],
                               settings, device)
    best = max(history, key=lambda row: (row["val_accuracy"], -row["val_loss"]))
    metadata = {"arch": args.arch, "classes": classes, "input_size": list(inputs.shape[1:]),
                "block": int(store.attrs["block"]), "bin": int(store.attrs.get("bin", 1)),
                "source_size": store.attrs.get("source_size"), "k_pixel": store.attrs.get("k_pixel"),
                "dispersity": store.attrs["dispersity"], "normalisation": store.attrs.get("normalisation"),
                "best_epoch": best["epoch"], "best_val_accuracy": best["val_accuracy"],
                "provenance": provenance_from_args(args, inputs=[args.input])}
    write_csv(pd.DataFrame(history), args.history)
    save_checkpoint(args.output, model, metadata)
    log.info("best epoch %d: val accuracy %.3f; wrote %s", best["epoch"], best["val_accuracy"], args.output)
    return 0


def _check_compatible(metadata: dict, attrs: dict, source: str) -> None:
    """The inputs must be preprocessed like the training inputs (block, bin, k pixel)."""
    from ..errors import InputError

    for key in ("block", "bin"):
        if int(attrs.get(key, 1)) != int(metadata.get(key, 1)):
            raise InputError(f"{source}: {key} {attrs.get(key)} differs from the model's {metadata.get(key)}")


def evaluate(args) -> int:
    import numpy as np
    import pandas as pd

    from ..atomic import write_csv
    from ..errors import InputError
    from ..stores import read_store
    from ..runtime import resolve_device
    from .data import INPUTS, SPLITS
    from .evaluate import classification_table, confusion_table, error_bands
    from .model import load_checkpoint, predict_proba

    set_torch_threads(args.threads)
    device = resolve_device(args.device)
    model, metadata = load_checkpoint(args.model, device)
    store = read_store(args.input, INPUTS)
    _check_compatible(metadata, store.attrs, args.input)
    rows = np.flatnonzero(store["split"] == SPLITS["test"])
    if rows.size == 0:
        raise InputError(f"{args.input}: no test patterns")
    classes = [int(c) for c in metadata["classes"]]
    true = store["n_disks"][rows]
    probability = predict_proba(model, store["inputs"][rows], device)
    predicted = np.asarray(classes)[probability.argmax(1)]
    predictions = pd.DataFrame({"pattern": rows, "true": true, "predicted": predicted,
                                "probability": probability.max(1), "correct": predicted == true})
    shown = sorted(set(classes) | {int(c) for c in np.unique(true)})
    metrics = classification_table(true, predicted, shown)
    write_csv(predictions, args.predictions)
    write_csv(metrics, args.metrics)
    write_csv(confusion_table(true, predicted, shown), args.confusion, index=True)
    bands = error_bands(true, predicted)
    log.info("%s: accuracy %.4f (%d errors of %d; off by 1: %d, by 2: %d, by more: %d), macro F1 %.3f",
             args.input, bands["correct"] / bands["n"], bands["n"] - bands["correct"], bands["n"],
             bands["off_by_1"], bands["off_by_2"], bands["off_by_more"],
             float(metrics.loc[metrics["class"] == "macro avg", "f1"].iloc[0]))
    return 0


def interpret(args) -> int:
    import numpy as np

    from ..provenance import provenance_from_args
    from ..stores import read_store, write_store
    from ..runtime import resolve_device, seed_everything
    from .data import INPUTS, MAPS, SPLITS
    from .interpret import gradcam_maps, one_per_class, saliency_maps
    from .model import load_checkpoint, predict_proba

    set_torch_threads(args.threads)
    seed_everything(0)  # deterministic kernels; nothing here is random
    device = resolve_device(args.device)
    model, metadata = load_checkpoint(args.model, device)
    store = read_store(args.input, INPUTS)
    _check_compatible(metadata, store.attrs, args.input)
    test = np.flatnonzero(store["split"] == SPLITS["test"])
    classes = [int(c) for c in metadata["classes"]]
    chosen = test[one_per_class(store["n_disks"][test], classes)]
    inputs = store["inputs"][chosen]
    probability = predict_proba(model, inputs, device)
    target = probability.argmax(1)  # explain the class the model chose (Grad-CAM convention)
    arrays = {"inputs": inputs, "saliency": saliency_maps(model, inputs, target, device),
              "gradcam": gradcam_maps(model, inputs, target, device), "n_disks": store["n_disks"][chosen],
              "predicted": np.asarray(classes, np.int64)[target],
              "probability": probability.max(1).astype(np.float32)}
    write_store(args.output, MAPS, arrays, attrs={"patterns": chosen.tolist(), "layer": "layer4",
                                                   "explained_class": "predicted"},
                provenance=provenance_from_args(args, inputs=[args.input, args.model]))
    log.info("wrote maps of %d patterns to %s", len(chosen), args.output)
    return 0


def moments(args) -> int:
    import numpy as np
    import pandas as pd

    from ..atomic import write_csv
    from ..errors import InputError
    from ..stores import read_store
    from .data import PATTERNS, first_moments

    if args.per_class < 1:
        raise InputError(f"--per-class must be >= 1, got {args.per_class}")
    store = read_store(args.input, PATTERNS)
    labels = store["n_disks"]
    rng = np.random.default_rng(args.seed)
    chosen = np.concatenate([rng.choice(np.flatnonzero(labels == c), min(args.per_class, int((labels == c).sum())),
                                        replace=False) for c in np.unique(labels)])
    k_pixel = float(np.pi / store.attrs["box"])
    # distance from k = 0 in k pixels (pi/L units), the paper's "distance from q = 0"
    k_norm = np.hypot(*np.meshgrid(store["ky"], store["kx"], indexing="ij")) / k_pixel
    values = first_moments(store["patterns"][chosen], args.block, k_norm)
    table = pd.DataFrame({"pattern": chosen, "n_disks": labels[chosen], **values})
    write_csv(table, args.output)
    log.info("wrote first moments of %d patterns to %s", len(chosen), args.output)
    return 0


def figures(args) -> int:
    import numpy as np

    from ..plotting import save_figure
    from ..stores import read_store
    from . import figures as fig
    from .data import MAPS, PATTERNS

    if args.kind == "systems":
        store = read_store(args.input, PATTERNS)
        figure = fig.plot_systems(store["patterns"], store["disks"], store["n_disks"], float(store.attrs["box"]),
                                  float(np.pi / store.attrs["box"]), args.show)
    elif args.kind == "confusion":
        table = _read_csv(args.input, index_col=0)
        figure = fig.plot_confusion(table.to_numpy(), [int(c) for c in table.columns], args.title, bands=args.bands)
    elif args.kind == "moments":
        table = _read_csv(args.input)
        figure = fig.plot_first_moments(table, table["n_disks"].to_numpy())
    elif args.kind == "maps":
        store = read_store(args.input, MAPS)
        figure = fig.plot_maps(store["inputs"], store["saliency"], store["gradcam"], store["n_disks"],
                               store["predicted"])
    else:
        figure = fig.plot_history(_read_csv(args.input))
    save_figure(figure, args.output)
    log.info("wrote %s", args.output)
    return 0


def _read_csv(path, **kwargs):
    import pandas as pd

    from ..errors import InputError

    try:
        return pd.read_csv(path, **kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable CSV ({one_line_error(exc)})") from None


def one_line_error(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _load_user_patterns(path: str):
    """User patterns as (n, y, x) float64 plus a validity mask (y, x) or None."""
    from pathlib import Path

    import numpy as np

    from ..errors import InputError

    source = Path(path)
    if not source.exists():
        raise InputError(f"{path}: file does not exist")
    if source.suffix == ".zarr" or source.is_dir():
        from ..stores import read_frames

        store = read_frames(path)
        frames = store["frames"]
        return frames.reshape(-1, *frames.shape[-2:]).astype(np.float64), store["mask"]
    if source.suffix != ".npy":
        raise InputError(f"{path}: expected a .npy file or a frames store (*.zarr)")
    try:
        patterns = np.load(source, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputError(f"{path}: not a readable .npy ({one_line_error(exc)})") from None
    if patterns.ndim == 2:
        patterns = patterns[None]
    if patterns.ndim != 3 or not np.issubdtype(patterns.dtype, np.number):
        raise InputError(f"{path}: expected a numeric (y, x) or (n, y, x) array, got {patterns.dtype} {patterns.shape}")
    return patterns.astype(np.float64), None


def predict(args) -> int:
    import numpy as np
    import pandas as pd

    from ..atomic import write_csv
    from ..errors import InputError
    from ..runtime import resolve_device
    from .data import standardise
    from .model import load_checkpoint, predict_proba

    set_torch_threads(args.threads)
    device = resolve_device(args.device)
    model, metadata = load_checkpoint(args.model, device)
    patterns, mask = _load_user_patterns(args.patterns)
    ny, nx = patterns.shape[-2:]
    if ny != nx or ny % 2 == 0:
        raise InputError(f"{args.patterns}: patterns must be square with an odd side (k = 0 in the centre), "
                         f"got {ny}x{nx}")
    if mask is not None:
        patterns = np.where(mask, patterns, 0.0)  # invalid detector pixels carry no intensity
    if np.nanmin(patterns) < 0:
        log.warning("%s: negative intensities found; the model was trained on intensities >= 0", args.patterns)
    if metadata.get("source_size") and ny != metadata["source_size"]:
        log.warning("patterns are %dx%d, the model was trained on %dx%d (same k pixel assumed)", ny, nx,
                    metadata["source_size"], metadata["source_size"])
    inputs = standardise(patterns, int(metadata["block"]), int(metadata.get("bin", 1)))
    probability = predict_proba(model, inputs, device)
    classes = np.asarray(metadata["classes"])
    best = probability.argmax(1)
    table = pd.DataFrame({"pattern": np.arange(len(inputs)), "n_disks": classes[best],
                          "probability": probability[np.arange(len(best)), best]})
    for row in table.itertuples():
        print(f"pattern {row.pattern}: {row.n_disks} disks (probability {row.probability:.3f})")
    if args.output:
        write_csv(table, args.output)
    return 0
