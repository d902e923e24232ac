"""`speckleml disk-count <stage>`: command line of the disk_count study (paper 002).

simulate -> preprocess -> train -> evaluate / interpret / moments -> figures; ``predict``
classifies user patterns with a trained model. Each handler parses, then calls one library
function with keyword arguments; the library is imported inside the handler, so a stage
depends (``stage_sources``) only on the code it runs. Defaults come from the config schema.
"""

from __future__ import annotations

import argparse
import functools
import logging

from ..cli import add_config_option, add_device, add_seed, add_stage, add_study, add_threads, positive_int
from ..runtime import set_torch_threads
from .options import check_options

log = logging.getLogger(__name__)

SIMULATE_EXAMPLE = """\
example:
  speckleml disk-count simulate results/disk_count/mono/patterns_135.zarr --dispersity mono \\
      --n-disks 2 4 6 8 10 --per-class 120 --size 135 --seed 42
"""
PREPROCESS_EXAMPLE = """\
example:
  speckleml disk-count preprocess results/disk_count/mono/patterns_135.zarr \\
      results/disk_count/mono/inputs_135.zarr --block 11 --bin 3 --split 0.8 0.1 0.1 --seed 42
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
Patterns must be sampled on the training k grid (same k pixel pi / L, same k origin: the
model records it). A .npy holds one pattern (y, x) or a stack (n, y, x).
"""
KEY = "disk_count."


def register(commands) -> None:
    stages = add_study(commands, "disk-count", "ResNet disk counting from one speckle pattern (paper 002)")

    p = add_stage(stages, "simulate", simulate, "random non-overlapping disk systems -> speckle patterns store",
                  epilog=SIMULATE_EXAMPLE)
    p.add_argument("output", help="patterns store to write (*.zarr)")
    p.add_argument("--dispersity", choices=("mono", "poly"), default="mono",
                   help="equal radii, or Gaussian radii with sd = mean/3 (default %(default)s)")
    add_config_option(p, "--n-disks", key=KEY + "n_disks", type=positive_int, nargs="+",
                      help="disk numbers, one class each (default %(default)s)")
    add_config_option(p, "--per-class", key=KEY + "per_class", type=positive_int, bounds=False,  # also large_per_class
                      help="patterns per disk number (default %(default)s)")
    add_config_option(p, "--size", key=KEY + "size", type=int, help="pattern side in k pixels (default %(default)s)")
    add_config_option(p, "--box", key=KEY + "box", type=float,
                      help="real-space box side L; k pixel = pi/L (default %(default)s)")
    add_config_option(p, "--k-grid", key=KEY + "k_grid", choices=("quadrant", "centred"),
                      help="k = n pi/L with n = 0..size-1 (the paper's quadrant) or centred on k = 0 "
                      "(default %(default)s)")
    add_config_option(p, "--precision", key=KEY + "precision", choices=("float32", "float64"),
                      help="floating point precision of the amplitude sum (default %(default)s)")
    p.add_argument("--batch", type=positive_int, default=16,
                   help="patterns per amplitude batch; memory only, not the result (default %(default)s)")
    add_seed(p)
    add_device(p)

    p = add_stage(stages, "preprocess", preprocess, "block the centre, bin, standardise, split train/val/test",
                  epilog=PREPROCESS_EXAMPLE)
    p.add_argument("input", help="patterns store (from simulate)")
    p.add_argument("output", help="inputs store to write (*.zarr)")
    add_config_option(p, "--block", key=KEY + "block", type=int,
                      help="side of the blocked square around k = 0, odd (default %(default)s)")
    add_config_option(p, "--bin", key=KEY + "bin", type=int, help="odd k-pixel binning factor, 1 = none "
                      "(default %(default)s)")
    add_config_option(p, "--scale", key=KEY + "scale", choices=("linear", "log", "log_k3"),
                      help="intensity scale standardised: linear (paper), log, or log_k3 = log(I |k|^3) "
                      "(default %(default)s)")
    p.add_argument("--stats-size", type=positive_int, default=None,
                   help="side in k pixels of the k window (from k = 0) whose pixels give the mean and "
                   "standard deviation; the workflow passes the training size (default: whole pattern)")
    split = p.add_mutually_exclusive_group()
    add_config_option(split, "--split", key=KEY + "split", type=float, nargs=3, metavar=("TRAIN", "VAL", "TEST"),
                      help="fractions; the test set has the same count per class (default %(default)s)")
    split.add_argument("--all-test", action="store_true", help="mark every pattern as test (transfer sets)")
    add_seed(p)

    p = add_stage(stages, "train", train, "train a ResNet classifier from scratch", epilog=TRAIN_EXAMPLE)
    p.add_argument("input", help="inputs store (from preprocess)")
    p.add_argument("output", help="model file to write (*.pt)")
    p.add_argument("--history", required=True, help="output CSV of per-epoch loss and accuracy")
    add_config_option(p, "--arch", key=KEY + "arch", choices=("resnet18", "resnet34", "resnet50"),
                      help="torchvision ResNet (default %(default)s; the paper's is resnet50)")
    add_config_option(p, "--stem", key=KEY + "stem", choices=("imagenet", "small"),
                      help="first layers: ImageNet (4x down-sampling) or small-image 3x3 (default %(default)s)")
    add_config_option(p, "--epochs", key=KEY + "epochs", type=positive_int, help="epochs (default %(default)s)")
    add_config_option(p, "--batch-size", key=KEY + "batch_size", type=int, help="batch size (default %(default)s)")
    add_config_option(p, "--lr", key=KEY + "lr", type=float, help="Adam learning rate (default %(default)s)")
    add_config_option(p, "--schedule", key=KEY + "schedule", choices=("constant", "cosine"),
                      help="learning-rate schedule (default %(default)s)")
    add_config_option(p, "--augment", key=KEY + "augment", action=argparse.BooleanOptionalAction,
                      help="random flips and 90-degree rotations (default %(default)s)")
    add_config_option(p, "--k-range-min", key=KEY + "k_range_min", type=float,
                      help="train each batch on a random k range from this fraction to all of it; 1 = off "
                      "(default %(default)s)")
    add_threads(p)
    add_seed(p)
    add_device(p)

    p = add_stage(stages, "evaluate", evaluate, "precision/recall/F1 per class, confusion matrix, predictions",
                  epilog=EVALUATE_EXAMPLE)
    p.add_argument("model", help="model file (from train)")
    p.add_argument("input", help="inputs store; its test split is evaluated")
    p.add_argument("--metrics", required=True, help="output CSV: per-class precision, recall, F1 (Table 1 layout)")
    p.add_argument("--confusion", required=True, help="output CSV: confusion matrix, rows true, columns predicted")
    p.add_argument("--predictions", required=True, help="output CSV: one row per test pattern")
    add_threads(p)
    add_device(p)

    p = add_stage(stages, "interpret", interpret, "saliency and Grad-CAM maps of one test pattern per class",
                  epilog=INTERPRET_EXAMPLE)
    p.add_argument("model", help="model file (from train)")
    p.add_argument("input", help="inputs store; the first test pattern of each class is used")
    p.add_argument("output", help="maps store to write (*.zarr)")
    add_threads(p)
    add_device(p)

    p = add_stage(stages, "moments", moments, "first-moment baseline with the paper's four definitions",
                  epilog=MOMENTS_EXAMPLE)
    p.add_argument("input", help="patterns store (raw intensities, from simulate)")
    p.add_argument("output", help="CSV to write: one row per sampled pattern")
    add_config_option(p, "--block", key=KEY + "block", type=int,
                      help="blocked centre square, odd (default %(default)s)")
    add_config_option(p, "--per-class", key=KEY + "moments_per_class", type=positive_int,
                      help="patterns sampled per class (default %(default)s)")
    add_seed(p)

    p = add_stage(stages, "figures", figures, "paper figures from the stage outputs", epilog=FIGURES_EXAMPLE)
    p.add_argument("kind", choices=("systems", "confusion", "moments", "maps", "history"), help="which figure")
    p.add_argument("input", help="the stage output the figure shows (store or CSV)")
    p.add_argument("output", help="image to write (.png, .pdf, .svg)")
    p.add_argument("--title", default="", help="figure title (confusion)")
    p.add_argument("--bands", action="store_true", help="confusion: +/-1 band and 2 / >2 error circles (Fig. 5)")
    add_config_option(p, "--show", key=KEY + "show", type=positive_int, nargs="+",
                      help="systems: disk numbers to show (default %(default)s)")

    p = add_stage(stages, "predict", predict, "classify user patterns (npy or frames store) with a trained model",
                  epilog=PREDICT_EXAMPLE)
    p.add_argument("model", help="model file (from train)")
    p.add_argument("patterns", help=".npy (y, x) or (n, y, x), or a frames store (*.zarr)")
    p.add_argument("--output", help="also write the predictions to this CSV")
    add_threads(p)
    add_device(p)
    for parser in stages.choices.values():  # every schema-keyed option is checked as the schema would
        parser.set_defaults(func=checked(parser.get_default("func"), [
            (a.option_strings[0], a.dest, a.schema_key) for a in parser._actions if getattr(a, "schema_bounds", False)]))


def checked(handler, options):
    """``handler`` after checking its schema-keyed ``options`` (flag, dest, key) against the schema."""
    def run(args) -> int:
        check_options({flag: (key, getattr(args, dest)) for flag, dest, key in options})
        return handler(args)
    return functools.update_wrapper(run, handler)


def simulate(args) -> int:
    from .simulate import simulate_store

    simulate_store(args.output, dispersity=args.dispersity, n_disks=args.n_disks, per_class=args.per_class,
                   size=args.size, box=args.box, k_grid=args.k_grid, precision=args.precision, batch=args.batch,
                   seed=args.seed, device=args.device)
    return 0


def preprocess(args) -> int:
    from .data import preprocess_store

    preprocess_store(args.input, args.output, block=args.block, bin_factor=args.bin, scale=args.scale,
                     stats_size=args.stats_size, split=None if args.all_test else tuple(args.split), seed=args.seed)
    return 0


def train(args) -> int:
    from .train import train_store

    set_torch_threads(args.threads)
    train_store(args.input, args.output, history=args.history, arch=args.arch, stem=args.stem, epochs=args.epochs,
                batch_size=args.batch_size, lr=args.lr, schedule=args.schedule, augment=args.augment,
                k_range_min=args.k_range_min, seed=args.seed, device=args.device)
    return 0


def evaluate(args) -> int:
    from .evaluate import evaluate_store

    set_torch_threads(args.threads)
    evaluate_store(args.model, args.input, metrics=args.metrics, confusion=args.confusion,
                   predictions=args.predictions, device=args.device)
    return 0


def interpret(args) -> int:
    from .interpret import interpret_store

    set_torch_threads(args.threads)
    interpret_store(args.model, args.input, args.output, device=args.device)
    return 0


def moments(args) -> int:
    from .moments import moments_table

    moments_table(args.input, args.output, block=args.block, per_class=args.per_class, seed=args.seed)
    return 0


def figures(args) -> int:
    from .figures import figure_from_outputs

    figure_from_outputs(args.kind, args.input, args.output, title=args.title, bands=args.bands, show=args.show)
    return 0


def predict(args) -> int:
    from .predict import predict_patterns

    set_torch_threads(args.threads)
    table = predict_patterns(args.model, args.patterns, output=args.output, device=args.device)
    for row in table.itertuples():
        print(f"pattern {row.pattern}: {row.n_disks} disks (probability {row.probability:.3f})")
    return 0
