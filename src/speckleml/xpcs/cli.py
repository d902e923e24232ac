"""Correlation tools: ``correlate``, ``fit-g2``, ``import-c2``, ``export-aps``, ``plot-g2``.

Registered at the top level of ``speckleml`` by :mod:`speckleml.xpcs.import_cli`. Each handler
parses, then calls one function of :mod:`speckleml.xpcs` (imported inside the handler, so that
``--help`` stays fast and a rule depends only on the code its stage runs).
"""

from __future__ import annotations

import logging

from ..cli import (add_config_option, add_stage, finite_float, float_in, non_negative_float, non_negative_int,
                   positive_float, positive_int)

log = logging.getLogger(__name__)

#: :data:`speckleml.correlation.NORMALIZATIONS` (not imported here: ``--help`` stays light).
NORMALIZATIONS = ("pixel_mean", "ring_mean", "covariance", "classical")
#: :data:`speckleml.xpcs.correlate.G2_ESTIMATORS`.
G2_ESTIMATORS = ("multitau", "diagonal")
#: Stretching exponents the KWW fit accepts (:data:`speckleml.xpcs.fit.GAMMA_RANGE`).
GAMMA_RANGE = (0.2, 4.0)

NORMALIZATION_HELP = ("C2 normalisation: pixel_mean = D = I/<I>_t - 1 per pixel, C2 = <D D>_pixels; "
                      "ring_mean = paper 001 eq. 1-2, D = I/<I(Q)>_t - 1 with one time-and-ring mean per "
                      "ring; covariance = paper 000 eq. 19 (Pearson over pixels); classical = "
                      "<I1 I2>/(<I1><I2>), the form of APS software (default %(default)s)")

CORRELATE_EXAMPLE = """\
examples:
  speckleml correlate results/xpcs/frames.zarr results/xpcs/c2.zarr \\
      --q-first 0.0016 --q-width 2e-4 --q-step 2e-4 --n-rings 8 --normalization classical
  speckleml correlate frames.zarr c2.zarr --q-first 4 --q-width 3 --q-step 3 --n-rings 4 \\
      --n-sectors 18 --normalization ring_mean --max-memory 512
  speckleml correlate long.zarr c2.zarr --q-first 6 --q-width 7 --q-step 7 --n-rings 8 \
      --normalization classical --c2-frames 0 2000      # multi-tau g2 of all frames, C2 of 2000
"""

FIT_EXAMPLE = """\
examples:
  speckleml fit-g2 results/xpcs/c2.zarr results/xpcs/g2_fits.csv
  speckleml fit-g2 ../shared/data/real/tosson_g2/m011_SiO2_Abs.csv fits.csv --fix-gamma 1
  g2 tables: tidy CSV with columns lag,g2[,g2_err,roi|q], or rows (delays row, then a g2 row
  and an error row per q-bin). Model: g2 - offset = beta exp(-2 (t/tau)^gamma) + baseline.
"""

IMPORT_C2_EXAMPLE = """\
examples:
  speckleml import-c2 ../shared/data/real/bnl_two_time/test_g2.npy results/real/c2.zarr --dt 1 \\
      --normalization classical
  speckleml import-c2 A001_results.hdf c2.zarr          # APS /xpcs/twotime/correlation_map/c2_*
  speckleml import-c2 maps.h5 c2.zarr --dataset /c2 --dt 0.01 --roi-q 0.002 0.003 --normalization classical
"""

EXPORT_EXAMPLE = """\
examples:
  speckleml export-aps results/xpcs/c2.zarr results/xpcs/c2_aps.hdf --frames results/xpcs/frames.zarr
  (opens in pyXpcsViewer: /xpcs/multitau/normalized_g2, delay_list in frames, /xpcs/twotime/
   correlation_map/c2_00001..., /xpcs/qmap q-phi map, /xpcs/temporal_mean, frame_time)
"""

PLOT_EXAMPLE = """\
examples:
  speckleml plot-g2 results/xpcs/c2.zarr results/xpcs/g2_fits.csv results/xpcs/figures/g2_fits.png
"""


def register(commands) -> None:
    """Add the correlation commands to the top-level ``speckleml`` parser."""
    parser = add_stage(commands, "correlate", correlate,
                       "frames store -> c2 store: two-time C2 and g2 per q ring (streams the frames)",
                       epilog=CORRELATE_EXAMPLE)
    parser.add_argument("frames", help="frames store (*.zarr)")
    parser.add_argument("output", help="c2 store to write (*.zarr)")
    parser.add_argument("--q-first", type=non_negative_float, required=True,
                        help="inner edge of the first ring (store q units)")
    parser.add_argument("--q-width", type=positive_float, required=True, help="ring width (store q units)")
    parser.add_argument("--q-step", type=positive_float, required=True,
                        help="centre-to-centre ring spacing (>= width)")
    parser.add_argument("--n-rings", type=positive_int, required=True, help="number of rings")
    add_config_option(parser, "--n-sectors", key="xpcs.rois.n_sectors", type=positive_int,
                      help="azimuthal sectors per ring (default %(default)s)")
    add_config_option(parser, "--normalization", key="xpcs.correlate.normalization", choices=NORMALIZATIONS,
                      help=NORMALIZATION_HELP)
    add_config_option(parser, "--min-pixel-mean", key="xpcs.synthetic.rois.min_pixel_mean", type=non_negative_float,
                      help="exclude pixels whose time-averaged intensity is <= this (beamstop shadow, dead "
                           "pixels; default %(default)s keeps all pixels of the store mask)")
    add_config_option(parser, "--max-memory", key="xpcs.correlate.max_memory_mib", type=non_negative_float,
                      help="MiB of C2 maps held at once beyond one ROI's (C2 is written ROI by ROI) and of "
                           "normalised ROI panels (0: 1024; default %(default)s)")
    add_config_option(parser, "--g2", key="xpcs.correlate.g2", choices=G2_ESTIMATORS,
                      help="one-time g2: multitau = standard multi-tau over all frames (symmetric "
                           "normalisation, baseline 1, streamed with C2); diagonal = mean of each C2 "
                           "diagonal (default %(default)s)")
    add_config_option(parser, "--buffers", key="xpcs.correlate.buffers", type=positive_int,
                      help="multi-tau buffers per level, even (default %(default)s)")
    add_config_option(parser, "--frame-bin", key="xpcs.correlate.frame_bin", type=positive_int,
                      help="average this many consecutive frames first (default %(default)s)")
    add_config_option(parser, "--c2-frames", key="xpcs.correlate.c2_frames", type=non_negative_int, nargs=2,
                      metavar=("START", "STOP"),
                      help="C2 of the (binned) frames START..STOP-1 only (multi-tau g2 still uses all)")
    parser.add_argument("--exclude-frames", help="CSV with a 'frame' column (flag-frames): dropped before correlation")

    parser = add_stage(commands, "fit-g2", fit_g2,
                       "c2 store or g2 table -> CSV of beta, tau, gamma, baseline with errors per ROI",
                       epilog=FIT_EXAMPLE)
    parser.add_argument("input", help="c2 store (*.zarr) or g2 table (*.csv)")
    parser.add_argument("output", help="CSV to write")
    add_config_option(parser, "--fix-gamma", key="xpcs.fit.fix_gamma", type=float_in(*GAMMA_RANGE),
                      help=f"hold the stretching exponent at this value, in [{GAMMA_RANGE[0]:g}, "
                           f"{GAMMA_RANGE[1]:g}] (the fit's bounds; default: fit it)")
    parser.add_argument("--no-baseline", action="store_true", help="hold the baseline at 0")
    add_config_option(parser, "--max-lag-fraction", key="xpcs.fit.max_lag_fraction", type=float_in(0, 1, low_open=True),
                      help="c2 store: fit lags up to this fraction of the series (long lags average "
                           "few C2 elements; default %(default)s)")
    parser.add_argument("--offset", type=finite_float,
                        help="value of g2 at full decorrelation (default: from the store's normalisation, "
                             "1 for tables)")

    parser = add_stage(commands, "import-c2", import_c2,
                       "measured C2 (.npy, APS HDF5 /xpcs/twotime/correlation_map/c2_*) -> c2 store",
                       epilog=IMPORT_C2_EXAMPLE)
    parser.add_argument("input", help=".npy (T, T) or (roi, T, T), or HDF5")
    parser.add_argument("output", help="c2 store to write (*.zarr)")
    parser.add_argument("--dataset", help="HDF5 dataset to read instead of the APS c2_* maps")
    parser.add_argument("--dt", type=positive_float, help="frame time in seconds (default: from the file, else 1)")
    parser.add_argument("--roi-q", type=finite_float, nargs="+",
                        help="q of every ROI (default: from the file, else NaN)")
    parser.add_argument("--normalization", choices=NORMALIZATIONS,
                        help="normalisation the maps were computed with (default: classical for the APS "
                             "layout, whose two-time maps are classical; required for other inputs)")

    parser = add_stage(commands, "export-aps", export_aps,
                       "c2 store -> HDF5 in the APS 8-ID-I result layout (one file per series)",
                       epilog=EXPORT_EXAMPLE)
    parser.add_argument("input", help="c2 store (*.zarr)")
    parser.add_argument("output", help="HDF5 file to write (.hdf/.h5); series > 0 get a _sNNN suffix")
    parser.add_argument("--frames", help="frames store the C2 came from: adds the ROI maps, mask, average frame, "
                                         "SAXS 1D and intensity vs time (pyXpcsViewer needs them)")

    parser = add_stage(commands, "plot-g2", plot_g2,
                       "figure: g2 per ring with its fit, and the C2 map of one ring",
                       epilog=PLOT_EXAMPLE)
    parser.add_argument("c2", help="c2 store (*.zarr)")
    parser.add_argument("fits", help="fit table from fit-g2 (CSV)")
    parser.add_argument("output", help="figure to write (.png/.pdf)")
    add_config_option(parser, "--roi", key="xpcs.figure_roi", type=non_negative_int,
                      help="ROI whose C2 map is shown (default %(default)s)")
    add_config_option(parser, "--max-lag-fraction", key="xpcs.fit.max_lag_fraction", type=float_in(0, 1, low_open=True),
                      help="plot lags up to this fraction of the series, as fitted (default %(default)s)")


def correlate(args) -> int:
    from ..cli import provenance_from_args
    from .badframes import read_frame_list
    from .correlate import correlate_frames

    exclude = read_frame_list(args.exclude_frames) if args.exclude_frames else ()
    correlate_frames(args.frames, args.output, q_first=args.q_first, q_width=args.q_width, q_step=args.q_step,
                     n_rings=args.n_rings, n_sectors=args.n_sectors, normalization=args.normalization,
                     min_pixel_mean=args.min_pixel_mean, max_memory_mib=args.max_memory, g2=args.g2,
                     buffers=args.buffers, frame_bin=args.frame_bin, exclude_frames=exclude,
                     c2_frames=tuple(args.c2_frames) if args.c2_frames else None,
                     provenance=provenance_from_args(args, inputs=[args.frames]))
    return 0


def fit_g2(args) -> int:
    from .fit import fit_g2_curves

    fit_g2_curves(args.input, args.output, max_lag_fraction=args.max_lag_fraction, fix_gamma=args.fix_gamma,
                  baseline=not args.no_baseline, offset=args.offset)
    return 0


def import_c2(args) -> int:
    from ..cli import provenance_from_args
    from .export import import_c2 as run

    run(args.input, args.output, dataset=args.dataset, dt=args.dt, roi_q=args.roi_q,
        normalization=args.normalization, provenance=provenance_from_args(args, inputs=[args.input]))
    return 0


def export_aps(args) -> int:
    from .export import export_aps as run

    run(args.input, args.output, frames=args.frames)
    return 0


def plot_g2(args) -> int:
    from .figures import plot_g2 as run

    run(args.c2, args.fits, args.output, roi=args.roi, max_lag_fraction=args.max_lag_fraction)
    return 0
