"""Correlation tools: ``correlate``, ``fit-g2``, ``import-c2``, ``export-aps``, ``plot-g2``.

Registered at the top level of ``speckleml`` by :mod:`speckleml.xpcs.import_cli`. Heavy modules
are imported inside the handlers so that ``--help`` stays fast.
"""

from __future__ import annotations

import logging

from ..cli import add_stage

log = logging.getLogger(__name__)

NORMALIZATION_HELP = ("C2 normalisation: aps = paper 001 eq. 1-2 <D D>_pixels with D = I/<I>_t - 1; "
                      "covariance = paper 000 eq. 19 (Pearson over pixels); classical = "
                      "<I1 I2>/(<I1><I2>) (default %(default)s)")

CORRELATE_EXAMPLE = """\
examples:
  speckleml correlate results/xpcs/frames.zarr results/xpcs/c2.zarr \\
      --q-first 0.0016 --q-width 2e-4 --q-step 2e-4 --n-rings 8 --normalization classical
  speckleml correlate frames.zarr c2.zarr --q-first 4 --q-width 3 --q-step 3 --n-rings 4 \\
      --n-sectors 18 --normalization aps --max-memory 512
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
  speckleml import-c2 ../shared/data/real/bnl_two_time/test_g2.npy results/real/c2.zarr --dt 1
  speckleml import-c2 A001_results.hdf c2.zarr          # APS /xpcs/twotime/correlation_map/c2_*
  speckleml import-c2 maps.h5 c2.zarr --dataset /c2 --dt 0.01 --roi-q 0.002 0.003
"""

EXPORT_EXAMPLE = """\
examples:
  speckleml export-aps results/xpcs/c2.zarr results/xpcs/c2_aps.hdf --frames results/xpcs/frames.zarr
  (opens in pyXpcsViewer; /xpcs/multitau/normalized_g2, delay_list, /xpcs/twotime/
   correlation_map/c2_00001..., /xpcs/qmap)
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
    parser.add_argument("--q-first", type=float, required=True, help="inner edge of the first ring (store q units)")
    parser.add_argument("--q-width", type=float, required=True, help="ring width (store q units)")
    parser.add_argument("--q-step", type=float, required=True, help="centre-to-centre ring spacing (>= width)")
    parser.add_argument("--n-rings", type=int, required=True, help="number of rings")
    parser.add_argument("--n-sectors", type=int, default=1, help="azimuthal sectors per ring (default %(default)s)")
    parser.add_argument("--normalization", choices=("aps", "covariance", "classical"), default="classical",
                        help=NORMALIZATION_HELP)
    parser.add_argument("--min-pixel-mean", type=float, default=0.0,
                        help="exclude pixels whose time-averaged intensity is <= this (beamstop shadow, dead "
                             "pixels; default %(default)s keeps all pixels of the store mask)")
    parser.add_argument("--max-memory", type=float,
                        help="MiB for the normalised ROI panels held at once (default or 0: size of the C2 output)")

    parser = add_stage(commands, "fit-g2", fit_g2,
                       "c2 store or g2 table -> CSV of beta, tau, gamma, baseline with errors per ROI",
                       epilog=FIT_EXAMPLE)
    parser.add_argument("input", help="c2 store (*.zarr) or g2 table (*.csv)")
    parser.add_argument("output", help="CSV to write")
    parser.add_argument("--fix-gamma", type=float, help="hold the stretching exponent at this value")
    parser.add_argument("--no-baseline", action="store_true", help="hold the baseline at 0")
    parser.add_argument("--max-lag-fraction", type=float, default=0.5,
                        help="c2 store: fit lags up to this fraction of the series (long lags average "
                             "few C2 elements; default %(default)s)")
    parser.add_argument("--offset", type=float,
                        help="value of g2 at full decorrelation (default: from the store's normalisation, "
                             "1 for tables)")

    parser = add_stage(commands, "import-c2", import_c2,
                       "measured C2 (.npy, APS HDF5 /xpcs/twotime/correlation_map/c2_*) -> c2 store",
                       epilog=IMPORT_C2_EXAMPLE)
    parser.add_argument("input", help=".npy (T, T) or (roi, T, T), or HDF5")
    parser.add_argument("output", help="c2 store to write (*.zarr)")
    parser.add_argument("--dataset", help="HDF5 dataset to read instead of the APS c2_* maps")
    parser.add_argument("--dt", type=float, help="frame time in seconds (default: from the file, else 1)")
    parser.add_argument("--roi-q", type=float, nargs="+", help="q of every ROI (default: from the file, else NaN)")
    parser.add_argument("--normalization", choices=("aps", "covariance", "classical"), default="classical",
                        help="normalisation the maps were computed with (default %(default)s, as APS/BNL)")

    parser = add_stage(commands, "export-aps", export_aps,
                       "c2 store -> HDF5 in the APS 8-ID-I result layout (one file per series)",
                       epilog=EXPORT_EXAMPLE)
    parser.add_argument("input", help="c2 store (*.zarr)")
    parser.add_argument("output", help="HDF5 file to write (.hdf/.h5); series > 0 get a _sNNN suffix")
    parser.add_argument("--frames", help="frames store the C2 came from: adds the ROI map and mask to /xpcs/qmap")

    parser = add_stage(commands, "plot-g2", plot_g2,
                       "figure: g2 per ring with its fit, and the C2 map of one ring",
                       epilog=PLOT_EXAMPLE)
    parser.add_argument("c2", help="c2 store (*.zarr)")
    parser.add_argument("fits", help="fit table from fit-g2 (CSV)")
    parser.add_argument("output", help="figure to write (.png/.pdf)")
    parser.add_argument("--roi", type=int, default=0, help="ROI whose C2 map is shown (default %(default)s)")
    parser.add_argument("--max-lag-fraction", type=float, default=0.5,
                        help="plot lags up to this fraction of the series, as fitted (default %(default)s)")


# --------------------------------------------------------------------------- correlate


def correlate(args) -> int:
    import numpy as np

    from ..correlation import G2_OFFSET, g2_from_c2, mean_image, q_ring_rois, ring_edges, sector_centres, two_time
    from ..errors import InputError
    from ..provenance import provenance_from_args
    from ..stores import read_frames, write_c2
    from .aps import detector_maps

    store = read_frames(args.frames, lazy=True)
    frames = store["frames"]
    n_series, n_frames = frames.shape[:2]
    if n_frames < 2:
        raise InputError(f"{args.frames}: need at least 2 frames, got {n_frames}")
    try:
        edges = ring_edges(args.q_first, args.q_width, args.q_step, args.n_rings)
    except ValueError as exc:
        raise InputError(f"--q-first/--q-width/--q-step/--n-rings: {exc}") from None
    if args.n_sectors < 1:
        raise InputError("--n-sectors must be >= 1")
    q_map, phi_map, q_unit = detector_maps(store)
    mask = np.asarray(store["mask"], bool)
    if args.min_pixel_mean > 0:
        mask = mask & (mean_image(frames) > args.min_pixel_mean)
        log.info("%d of %d pixels have a mean intensity > %g", int(mask.sum()), mask.size, args.min_pixel_mean)
    labels, roi_q = q_ring_rois(q_map, edges, mask=mask, phi_map=phi_map, n_sectors=args.n_sectors)
    n_roi = roi_q.size
    n_pixels = np.bincount(labels.ravel(), minlength=n_roi + 1)[1:]
    if np.any(n_pixels < 2):
        empty = [int(i) for i in np.flatnonzero(n_pixels < 2)]
        raise InputError(f"ROIs {empty} have fewer than 2 valid pixels: rings {edges[0, 0]:g}..{edges[-1, 1]:g} "
                         f"{q_unit} vs detector q {np.nanmin(q_map):g}..{np.nanmax(q_map):g} (check --q-first/--q-width)")
    if args.max_memory is not None and args.max_memory < 0:
        raise InputError("--max-memory must be >= 0 MiB")
    max_memory = int(args.max_memory * 2**20) if args.max_memory else None
    c2 = np.empty((n_series, n_roi, n_frames, n_frames), np.float32)
    for s in range(n_series):
        try:
            c2[s] = two_time(frames, labels, args.normalization, series=s, n_roi=n_roi, max_memory=max_memory,
                             desc=f"c2 series {s}")
        except ValueError as exc:
            raise InputError(f"{args.frames}: {exc}") from None
    g2, g2_err = g2_from_c2(c2)
    dt = float(store.attrs.get("dt", 1.0))
    rois = {"q_edges": edges.tolist(), "n_sectors": args.n_sectors, "phi_centres": sector_centres(args.n_sectors).tolist(),
            "n_pixels": n_pixels.tolist(), "q_units": q_unit, "detector_shape": list(labels.shape),
            "geometry": store.attrs.get("geometry"), "min_pixel_mean": args.min_pixel_mean}
    attrs = {"dt": dt, "g2_offset": G2_OFFSET[args.normalization], "rois": rois, "source": str(args.frames),
             "units": {"lag": "s", "q": q_unit}}
    write_c2(args.output, c2, g2, np.arange(n_frames) * dt, roi_q, args.normalization, g2_err=g2_err,
             attrs=attrs, provenance=provenance_from_args(args, inputs=[args.frames]))
    log.info("wrote %s: %d series x %d ROIs x %d^2 frames (%s)", args.output, n_series, n_roi, n_frames,
             args.normalization)
    return 0


# --------------------------------------------------------------------------- fit-g2


def _curves_from_store(path, max_lag_fraction: float):
    """(series, roi, q, lag, g2, err, offset) of every curve in a c2 store."""
    import numpy as np

    from ..correlation import G2_OFFSET
    from ..stores import read_c2

    store = read_c2(path, lazy=True)
    lag = np.asarray(store["lag"], float)
    g2 = np.asarray(store["g2"], float)
    err = np.asarray(store["g2_err"], float) if "g2_err" in store else None
    offset = float(store.attrs.get("g2_offset", G2_OFFSET.get(store.attrs["normalization"], 1.0)))
    keep = np.arange(lag.size) <= max(2, int(max_lag_fraction * lag.size))
    for s in range(g2.shape[0]):
        for r in range(g2.shape[1]):
            yield (s, r, float(store["roi_q"][r]), lag[keep], g2[s, r, keep],
                   None if err is None else err[s, r, keep], offset)


def fit_g2(args) -> int:
    import pandas as pd

    from ..atomic import write_csv
    from ..errors import InputError
    from ..fitting import fit_g2 as fit
    from .aps import read_g2_table

    if not 0 < args.max_lag_fraction <= 1:
        raise InputError("--max-lag-fraction must be in (0, 1]")
    if args.input.rstrip("/").endswith(".zarr"):
        curves = list(_curves_from_store(args.input, args.max_lag_fraction))
    else:
        curves = [(0, c["roi"], c["q"], c["lag"], c["g2"], c["g2_err"], 1.0) for c in read_g2_table(args.input)]
    rows = []
    for series, roi, q, lag, g2, err, offset in curves:
        result = fit(lag, g2, err, offset=args.offset if args.offset is not None else offset,
                     fit_gamma=args.fix_gamma is None, gamma=args.fix_gamma or 1.0,
                     fit_baseline=not args.no_baseline)
        rows.append({"series": series, "roi": roi, "q": q, **result.row()})
        if not result.success:
            log.warning("series %d roi %d: fit failed: %s", series, roi, result.message)
    table = pd.DataFrame(rows)
    write_csv(table, args.output)
    log.info("wrote %s: %d fits (%d succeeded)", args.output, len(table), int(table["success"].sum()))
    return 0


# --------------------------------------------------------------------------- import / export


def import_c2(args) -> int:
    import numpy as np

    from ..correlation import G2_OFFSET, g2_from_c2
    from ..errors import InputError
    from ..provenance import provenance_from_args
    from ..stores import write_c2
    from .aps import read_c2_file

    c2, meta = read_c2_file(args.input, args.dataset)
    dt = args.dt if args.dt is not None else meta.get("dt", 1.0)
    if not np.isfinite(dt) or dt <= 0:
        raise InputError(f"--dt must be a positive number, got {dt}")
    roi_q = args.roi_q if args.roi_q is not None else meta.get("roi_q", [float("nan")] * c2.shape[0])
    if len(roi_q) != c2.shape[0]:
        raise InputError(f"--roi-q has {len(roi_q)} values but {args.input} holds {c2.shape[0]} C2 maps")
    g2, g2_err = g2_from_c2(c2)
    n_frames = c2.shape[-1]
    write_c2(args.output, c2[None].astype(np.float32), g2[None], np.arange(n_frames) * dt, roi_q,
             args.normalization, g2_err=g2_err[None],
             attrs={"dt": dt, "g2_offset": G2_OFFSET[args.normalization], "source": str(args.input),
                    "units": {"lag": "s", "q": "1/Angstrom"}},
             provenance=provenance_from_args(args, inputs=[args.input]))
    log.info("wrote %s: %d ROIs x %d^2 frames from %s", args.output, c2.shape[0], n_frames, args.input)
    return 0


def _qmap_from_frames(frames_path, rois: dict) -> dict:
    """ROI maps, mask and geometry of ``/xpcs/qmap`` rebuilt from the frames store."""
    import numpy as np

    from ..correlation import mean_image, q_ring_rois
    from ..stores import read_frames
    from .aps import detector_maps

    store = read_frames(frames_path, lazy=True)
    q_map, phi_map, _ = detector_maps(store)
    mask = np.asarray(store["mask"], bool)
    if float(rois.get("min_pixel_mean", 0)) > 0:
        mask = mask & (mean_image(store["frames"]) > float(rois["min_pixel_mean"]))
    labels, _ = q_ring_rois(q_map, np.asarray(rois["q_edges"]), mask=mask, phi_map=phi_map,
                            n_sectors=int(rois.get("n_sectors", 1)))
    qmap = {"dynamic_roi_map": labels, "static_roi_map": labels, "mask": mask.astype(np.int32),
            "dynamic_num_pts": np.array([len(rois["q_edges"]), int(rois.get("n_sectors", 1))]),
            "dynamic_v_list_dim1": np.rad2deg(np.asarray(rois.get("phi_centres", [0.0]))),
            "map_names": np.array([b"q", b"phi"]), "map_units": np.array([b"1/A", b"deg"])}
    geometry = store.attrs.get("geometry")
    if geometry:
        qmap.update(beam_center_y=float(geometry["center"][0]), beam_center_x=float(geometry["center"][1]),
                    pixel_size=float(geometry["pixel_size"]), detector_distance=float(geometry["distance"]))
    return qmap


def export_aps(args) -> int:
    import json
    from pathlib import Path

    from ..errors import InputError
    from ..stores import read_c2
    from .aps import HC_KEV_ANGSTROM, write_aps_hdf5

    store = read_c2(args.input)
    rois = store.attrs.get("rois")
    qmap = None
    if args.frames:
        if not rois:
            raise InputError(f"{args.input}: store has no ROI definition (rois attr) to rebuild the q map")
        qmap = _qmap_from_frames(args.frames, rois)
    output = Path(args.output)
    n_series = store["c2"].shape[0]
    attrs = {"normalization": store.attrs["normalization"], "creator": "speckleml export-aps",
             "provenance": json.dumps(store.provenance)}
    geometry = (rois or {}).get("geometry")
    # APS viewers expect baseline-1 g2 and C2: shift the fluctuation forms (aps, covariance).
    shift = 1.0 - float(store.attrs.get("g2_offset", 1.0))
    attrs["baseline_shift_added"] = shift
    for s in range(n_series):
        path = output if s == 0 else output.with_name(f"{output.stem}_s{s:03d}{output.suffix}")
        write_aps_hdf5(path, store["c2"][s] + shift, store["g2"][s] + shift, store["lag"], store["roi_q"],
                       float(store.attrs.get("dt", 1.0)), g2_err=store["g2_err"][s] if "g2_err" in store else None,
                       qmap=qmap, attrs=attrs)
        if geometry:
            import h5py

            with h5py.File(path, "a") as handle:
                handle["/entry/instrument/incident_beam/incident_energy"] = HC_KEV_ANGSTROM / geometry["wavelength"]
        log.info("wrote %s (series %d)", path, s)
    return 0


# --------------------------------------------------------------------------- figure


def plot_g2(args) -> int:
    import matplotlib
    import matplotlib.ticker
    import numpy as np
    import pandas as pd

    from ..errors import InputError
    from ..fitting import g2_model
    from ..plotting import figure, save_figure
    from ..stores import read_c2

    store = read_c2(args.c2, lazy=True)
    fits = pd.read_csv(args.fits)
    lag, g2 = np.asarray(store["lag"]), np.asarray(store["g2"])
    err = np.asarray(store["g2_err"]) if "g2_err" in store else np.full_like(g2, np.nan)
    n_roi = g2.shape[1]
    if not 0 <= args.roi < n_roi:
        raise InputError(f"--roi {args.roi} out of range (store has {n_roi} ROIs)")
    offset = float(store.attrs.get("g2_offset", 1.0))
    q_unit = store.attrs.get("units", {}).get("q", "")
    fig, axes = figure(1, 2, width=4.2, height=3.4)
    ax = axes[0, 0]
    colours = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, n_roi))
    shown = (lag > 0) & (np.arange(lag.size) <= max(2, int(args.max_lag_fraction * lag.size)))
    for r in range(n_roi):
        ax.errorbar(lag[shown], g2[0, r, shown], yerr=err[0, r, shown], fmt="o", ms=2.5, lw=0.6,
                    color=colours[r], alpha=0.8, label=f"q = {float(store['roi_q'][r]):.4g}")
        row = fits[(fits["series"] == 0) & (fits["roi"] == r)]
        if len(row) and bool(row["success"].iloc[0]):
            p = row.iloc[0]
            t = np.geomspace(lag[shown][0], lag[shown][-1], 200)
            ax.plot(t, offset + g2_model(t, p["beta"], p["tau"], p["gamma"], p["baseline"]), color=colours[r], lw=1)
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("lag (s)")
    ax.set_ylabel("g2" if offset else "g2 - 1")
    ax.set_title(f"g2 per ring ({store.attrs['normalization']}), lines: KWW fits")
    ax.legend(title=f"q ({q_unit})", fontsize=6, ncol=2)
    ax = axes[0, 1]
    c2 = np.asarray(store["c2"][0, args.roi])
    t_max = lag[-1]
    off_diagonal = c2[~np.eye(c2.shape[0], dtype=bool)]
    low, high = np.nanpercentile(off_diagonal, [1, 99]) if np.isfinite(off_diagonal).any() else (0, 1)
    image = ax.imshow(c2, origin="lower", extent=(0, t_max, 0, t_max), vmin=low, vmax=high, cmap="viridis")
    fig.colorbar(image, ax=ax, label="C2")
    ax.set_xlabel("t1 (s)")
    ax.set_ylabel("t2 (s)")
    ax.set_title(f"C2, ROI {args.roi} (q = {float(store['roi_q'][args.roi]):.4g} {q_unit})")
    save_figure(fig, args.output)
    log.info("wrote %s", args.output)
    return 0
