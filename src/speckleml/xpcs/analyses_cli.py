"""Analyses after g2: ``flag-frames``, ``partial-g2``, ``tau-q``, ``intensity-time``, ``saxs-1d``.

Registered at the top level of ``speckleml`` by :mod:`speckleml.xpcs.import_cli`. Handlers
parse and call one function of :mod:`speckleml.xpcs.badframes` or
:mod:`speckleml.xpcs.analysis_figures`, imported inside the handler.
"""

from __future__ import annotations

import logging

from ..cli import (add_config_option, add_stage, float_in, non_negative_float, non_negative_int, positive_float,
                   positive_int)

log = logging.getLogger(__name__)

FLAG_EXAMPLE = """\
examples:
  speckleml flag-frames results/xpcs/frames.zarr results/xpcs/bad_frames.csv --k-mad 6 --user-frames 17 42
  speckleml correlate frames.zarr c2.zarr ... --exclude-frames results/xpcs/bad_frames.csv
rule: frame t is an outlier when |I_t - median(I)| > k * 1.4826 * MAD(I), I_t = mean counts per
valid pixel of frame t (per series); user frames are flagged in every series.
"""

RINGS_HELP = "(store q units, as for correlate)"


def _add_rings(parser) -> None:
    parser.add_argument("--q-first", type=non_negative_float, required=True, help=f"inner edge of the first ring {RINGS_HELP}")
    parser.add_argument("--q-width", type=positive_float, required=True, help=f"ring width {RINGS_HELP}")
    parser.add_argument("--q-step", type=positive_float, required=True, help=f"ring spacing (>= width) {RINGS_HELP}")
    parser.add_argument("--n-rings", type=positive_int, required=True, help="number of rings")
    add_config_option(parser, "--min-pixel-mean", key="xpcs.synthetic.rois.min_pixel_mean", type=non_negative_float,
                      help="exclude pixels whose time-averaged intensity is <= this (default %(default)s)")


def register(commands) -> None:
    """Add the analysis commands to the top-level ``speckleml`` parser."""
    parser = add_stage(commands, "flag-frames", flag_frames,
                       "frames store -> CSV of bad frames (frame-intensity outliers and a user list)",
                       epilog=FLAG_EXAMPLE)
    parser.add_argument("frames", help="frames store (*.zarr)")
    parser.add_argument("output", help="CSV to write: series, frame, t, intensity, robust_z, reason")
    add_config_option(parser, "--k-mad", key="xpcs.bad_frames.k_mad", type=positive_float,
                      help="outlier threshold in robust standard deviations (1.4826 MAD; default %(default)s)")
    add_config_option(parser, "--user-frames", key="xpcs.bad_frames.user_frames", type=non_negative_int, nargs="*",
                      help="frame indices to flag in every series (default: none)")

    parser = add_stage(commands, "partial-g2", partial_g2,
                       "c2 store -> KWW fits of g2 per time segment and of age-resolved g2, and a figure",
                       epilog="example:\n  speckleml partial-g2 results/xpcs/c2.zarr results/xpcs/partial_g2.csv "
                              "--figure results/xpcs/figures/partial_g2.png --segments 4 --ages 8\n")
    parser.add_argument("c2", help="c2 store (*.zarr)")
    parser.add_argument("output", help="CSV of fits: kind (partial|age), series, roi, q, index, t_start, t_end, age, ...")
    parser.add_argument("--figure", required=True, help="figure to write (.png/.pdf)")
    add_config_option(parser, "--segments", key="xpcs.partial.segments", type=positive_int,
                      help="equal time segments of the partial g2 (default %(default)s)")
    add_config_option(parser, "--ages", key="xpcs.partial.ages", type=positive_int,
                      help="age bins of the age-resolved g2 (default %(default)s)")
    add_config_option(parser, "--max-lag-fraction", key="xpcs.fit.max_lag_fraction", type=float_in(0, 1, low_open=True),
                      help="fit lags up to this fraction of a segment / of the series (default %(default)s)")
    add_config_option(parser, "--roi", key="xpcs.figure_roi", type=non_negative_int,
                      help="ROI whose partial g2 the figure shows (default %(default)s)")

    parser = add_stage(commands, "tau-q", tau_q,
                       "fit-g2 table -> tau = 1/(D q^n) fit (D, n with errors; diffusion n = 2) and a figure",
                       epilog="example:\n  speckleml tau-q results/xpcs/c2.zarr results/xpcs/g2_fits.csv "
                              "results/xpcs/tau_q.csv --figure results/xpcs/figures/tau_q.png\n")
    parser.add_argument("c2", help="c2 store the fits came from (its q unit)")
    parser.add_argument("fits", help="fit table from fit-g2 (CSV)")
    parser.add_argument("output", help="CSV to write: D, D_err, n, n_err, D2, D2_err, chi2_reduced, diffusive")
    parser.add_argument("--figure", required=True, help="figure to write (.png/.pdf)")

    parser = add_stage(commands, "intensity-time", intensity_time,
                       "frames store -> mean counts per frame and per ring vs time, and a stability figure")
    parser.add_argument("frames", help="frames store (*.zarr)")
    parser.add_argument("output", help="CSV to write: series, frame, t, all, ring_<k>")
    parser.add_argument("--figure", required=True, help="figure to write (.png/.pdf)")
    _add_rings(parser)
    parser.add_argument("--flagged", help="flag-frames CSV: mark these frames in the figure")

    parser = add_stage(commands, "saxs-1d", saxs_1d,
                       "frames store -> time-averaged intensity vs q (SAXS 1D) and a log-log figure")
    parser.add_argument("frames", help="frames store (*.zarr)")
    parser.add_argument("output", help="CSV to write: q, q_low, q_high, intensity, intensity_err, n_pixels")
    parser.add_argument("--figure", required=True, help="figure to write (.png/.pdf)")
    add_config_option(parser, "--bins", key="xpcs.saxs.bins", type=positive_int,
                      help="log-spaced q bins (default %(default)s)")


def flag_frames(args) -> int:
    from .badframes import flag_frames as run

    run(args.frames, args.output, k_mad=args.k_mad, user_frames=args.user_frames or ())
    return 0


def partial_g2(args) -> int:
    from .analysis_figures import partial_g2_report

    partial_g2_report(args.c2, args.output, args.figure, n_segments=args.segments, n_ages=args.ages,
                      max_lag_fraction=args.max_lag_fraction, roi=args.roi)
    return 0


def tau_q(args) -> int:
    from .analysis_figures import tau_q_report

    tau_q_report(args.c2, args.fits, args.output, args.figure)
    return 0


def intensity_time(args) -> int:
    from .analysis_figures import intensity_time_report

    intensity_time_report(args.frames, args.output, args.figure, q_first=args.q_first, q_width=args.q_width,
                          q_step=args.q_step, n_rings=args.n_rings, min_pixel_mean=args.min_pixel_mean,
                          flagged=args.flagged)
    return 0


def saxs_1d(args) -> int:
    from .analysis_figures import saxs_report

    saxs_report(args.frames, args.output, args.figure, n_bins=args.bins)
    return 0
