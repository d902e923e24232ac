# xpcs: the shared real-data chain. Measured frames (xpcs.frames) -> frames store -> correlation
# -> fits -> figures; `xpcs.frames: null` uses a synthetic stack with known g2 instead.
import math

XPCS = config["xpcs"]


# Checks the JSON schema cannot state: finite numbers (it lets .nan/.inf through), rings that
# do not overlap (q_step >= q_width). One line naming the key.
_pending = [("xpcs", XPCS)]
while _pending:
    _prefix, _section = _pending.pop()
    for _name, _value in _section.items():
        _key = f"{_prefix}.{_name}"
        if isinstance(_value, dict):
            _pending.append((_key, _value))
        elif any(isinstance(v, float) and not math.isfinite(v) for v in (_value if isinstance(_value, list) else [_value])):
            raise WorkflowError(f"invalid config: {_key}: must be finite, got {_value}")
    if {"q_step", "q_width"} <= _section.keys() and _section["q_step"] < _section["q_width"]:
        raise WorkflowError(f"invalid config: {_prefix}.q_step: {_section['q_step']} < {_prefix}.q_width "
                            f"{_section['q_width']} (rings would overlap)")
# Only an explicit null means synthetic: a mistyped path must not silently switch the data.
XPCS_REAL = XPCS["frames"] is not None
XPCS_INPUT = Path(XPCS["frames"]) if XPCS_REAL else None
if XPCS_REAL and "xpcs" in config["studies"] and not XPCS_INPUT.exists():
    raise WorkflowError(f"invalid config: xpcs.frames: {XPCS_INPUT} does not exist "
                        f"(set xpcs.frames: null for the synthetic stack)")


if XPCS_REAL:

    rule xpcs_import_frames:
        input:
            data=str(XPCS_INPUT),
            src=stage_sources("speckleml.xpcs.import_cli:import_frames"),
        output:
            directory("results/xpcs/frames.zarr"),
        params:
            pixel_size=XPCS["geometry"]["pixel_size"],
            distance=XPCS["geometry"]["distance"],
            wavelength=XPCS["geometry"]["wavelength"],
            center=cli_list(XPCS["geometry"]["center"]),
            dt=XPCS["dt"],
        log:
            log_path("xpcs", "import_frames"),
        benchmark:
            bench_path("xpcs", "import_frames")
        conda:
            ENV
        shell:
            "speckleml import-frames {input.data} {output} --pixel-size {params.pixel_size}"
            " --distance {params.distance} --wavelength {params.wavelength}"
            " --center {params.center} --dt {params.dt} > {log} 2>&1"

else:

    rule xpcs_synthetic_frames:
        input:
            src=stage_sources("speckleml.xpcs.import_cli:synthetic_frames"),
        output:
            directory("results/xpcs/frames.zarr"),
        params:
            frames=XPCS["synthetic"]["frames"],
            size=XPCS["synthetic"]["size"],
            tau=XPCS["synthetic"]["tau"],
            mean_counts=XPCS["synthetic"]["mean_counts"],
            dt=XPCS["dt"],
            seed=config["seed"],
        log:
            log_path("xpcs", "synthetic_frames"),
        benchmark:
            bench_path("xpcs", "synthetic_frames")
        conda:
            ENV
        shell:
            "speckleml synthetic-frames {output} --frames {params.frames} --size {params.size}"
            " --tau {params.tau} --mean-counts {params.mean_counts} --dt {params.dt}"
            " --seed {params.seed} > {log} 2>&1"


# Rings in the frames store's q units: 1/Angstrom for measured frames with geometry, pixels
# for the synthetic stack.
XPCS_ROIS = XPCS["rois"] if XPCS_REAL else XPCS["synthetic"]["rois"]
XPCS_CORR = XPCS["correlate"]
XPCS_FIT = XPCS["fit"]
XPCS_BAD = XPCS["bad_frames"]


# Bad frames (frame-intensity outliers, |I_t - median| > k_mad * 1.4826 MAD, and the user's
# list) are dropped before correlation.
rule xpcs_flag_frames:
    input:
        frames="results/xpcs/frames.zarr",
        src=stage_sources("speckleml.xpcs.analyses_cli:flag_frames"),
    output:
        "results/xpcs/bad_frames.csv",
    params:
        k_mad=XPCS_BAD["k_mad"],
        user=(f"--user-frames {cli_list(XPCS_BAD['user_frames'])}" if XPCS_BAD["user_frames"] else ""),
    log:
        log_path("xpcs", "flag_frames"),
    benchmark:
        bench_path("xpcs", "flag_frames")
    conda:
        ENV
    shell:
        "speckleml flag-frames {input.frames} {output} --k-mad {params.k_mad} {params.user} > {log} 2>&1"


rule xpcs_correlate:
    input:
        frames="results/xpcs/frames.zarr",
        bad_frames="results/xpcs/bad_frames.csv",
        src=stage_sources("speckleml.xpcs.cli:correlate"),
    output:
        directory("results/xpcs/c2.zarr"),
    params:
        q_first=XPCS_ROIS["q_first"],
        q_width=XPCS_ROIS["q_width"],
        q_step=XPCS_ROIS["q_step"],
        n_rings=XPCS_ROIS["n_rings"],
        n_sectors=XPCS_ROIS["n_sectors"],
        min_pixel_mean=XPCS_ROIS["min_pixel_mean"],
        normalization=XPCS_CORR["normalization"],
        max_memory=XPCS_CORR["max_memory_mib"],
        g2=XPCS_CORR["g2"],
        buffers=XPCS_CORR["buffers"],
        frame_bin=XPCS_CORR["frame_bin"],
        c2_frames=(f"--c2-frames {XPCS_CORR['c2_frames'][0]} {XPCS_CORR['c2_frames'][1]}"
                   if XPCS_CORR["c2_frames"] is not None else ""),
    log:
        log_path("xpcs", "correlate"),
    benchmark:
        bench_path("xpcs", "correlate")
    conda:
        ENV
    shell:
        "speckleml correlate {input.frames} {output} --q-first {params.q_first}"
        " --q-width {params.q_width} --q-step {params.q_step} --n-rings {params.n_rings}"
        " --n-sectors {params.n_sectors} --min-pixel-mean {params.min_pixel_mean}"
        " --normalization {params.normalization} --max-memory {params.max_memory} --g2 {params.g2}"
        " --buffers {params.buffers} --frame-bin {params.frame_bin} {params.c2_frames}"
        " --exclude-frames {input.bad_frames} > {log} 2>&1"


rule xpcs_fit_g2:
    input:
        c2="results/xpcs/c2.zarr",
        src=stage_sources("speckleml.xpcs.cli:fit_g2"),
    output:
        "results/xpcs/g2_fits.csv",
    params:
        max_lag_fraction=XPCS_FIT["max_lag_fraction"],
        options=(f"--fix-gamma {q(XPCS_FIT['fix_gamma'])}" if XPCS_FIT["fix_gamma"] is not None else "")
        + ("" if XPCS_FIT["baseline"] else " --no-baseline"),
    log:
        log_path("xpcs", "fit_g2"),
    benchmark:
        bench_path("xpcs", "fit_g2")
    conda:
        ENV
    shell:
        "speckleml fit-g2 {input.c2} {output} --max-lag-fraction {params.max_lag_fraction}"
        " {params.options} > {log} 2>&1"


rule xpcs_figure_g2:
    input:
        c2="results/xpcs/c2.zarr",
        fits="results/xpcs/g2_fits.csv",
        src=stage_sources("speckleml.xpcs.cli:plot_g2"),
    output:
        report(
            "results/xpcs/figures/g2_fits.png",
            category="xpcs",
            caption="../report/xpcs/g2_fits.rst",
        ),
    params:
        roi=XPCS["figure_roi"],
        max_lag_fraction=XPCS_FIT["max_lag_fraction"],
    log:
        log_path("xpcs", "figure_g2"),
    benchmark:
        bench_path("xpcs", "figure_g2")
    conda:
        ENV
    shell:
        "speckleml plot-g2 {input.c2} {input.fits} {output} --roi {params.roi}"
        " --max-lag-fraction {params.max_lag_fraction} > {log} 2>&1"


rule xpcs_export_aps:
    input:
        c2="results/xpcs/c2.zarr",
        frames="results/xpcs/frames.zarr",
        src=stage_sources("speckleml.xpcs.cli:export_aps"),
    output:
        "results/xpcs/c2_aps.hdf",
    log:
        log_path("xpcs", "export_aps"),
    benchmark:
        bench_path("xpcs", "export_aps")
    conda:
        ENV
    shell:
        "speckleml export-aps {input.c2} {output} --frames {input.frames} > {log} 2>&1"


rule xpcs_partial_g2:
    input:
        c2="results/xpcs/c2.zarr",
        src=stage_sources("speckleml.xpcs.analyses_cli:partial_g2"),
    output:
        table="results/xpcs/partial_g2.csv",
        figure=report("results/xpcs/figures/partial_g2.png", category="xpcs",
                      caption="../report/xpcs/partial_g2.rst"),
    params:
        segments=XPCS["partial"]["segments"],
        ages=XPCS["partial"]["ages"],
        max_lag_fraction=XPCS_FIT["max_lag_fraction"],
        roi=XPCS["figure_roi"],
    log:
        log_path("xpcs", "partial_g2"),
    benchmark:
        bench_path("xpcs", "partial_g2")
    conda:
        ENV
    shell:
        "speckleml partial-g2 {input.c2} {output.table} --figure {output.figure} --segments {params.segments}"
        " --ages {params.ages} --max-lag-fraction {params.max_lag_fraction} --roi {params.roi} > {log} 2>&1"


rule xpcs_tau_q:
    input:
        c2="results/xpcs/c2.zarr",
        fits="results/xpcs/g2_fits.csv",
        src=stage_sources("speckleml.xpcs.analyses_cli:tau_q"),
    output:
        table="results/xpcs/tau_q.csv",
        figure=report("results/xpcs/figures/tau_q.png", category="xpcs", caption="../report/xpcs/tau_q.rst"),
    log:
        log_path("xpcs", "tau_q"),
    benchmark:
        bench_path("xpcs", "tau_q")
    conda:
        ENV
    shell:
        "speckleml tau-q {input.c2} {input.fits} {output.table} --figure {output.figure} > {log} 2>&1"


rule xpcs_intensity_time:
    input:
        frames="results/xpcs/frames.zarr",
        bad_frames="results/xpcs/bad_frames.csv",
        src=stage_sources("speckleml.xpcs.analyses_cli:intensity_time"),
    output:
        table="results/xpcs/intensity_time.csv",
        figure=report("results/xpcs/figures/intensity_time.png", category="xpcs",
                      caption="../report/xpcs/intensity_time.rst"),
    params:
        q_first=XPCS_ROIS["q_first"],
        q_width=XPCS_ROIS["q_width"],
        q_step=XPCS_ROIS["q_step"],
        n_rings=XPCS_ROIS["n_rings"],
        min_pixel_mean=XPCS_ROIS["min_pixel_mean"],
    log:
        log_path("xpcs", "intensity_time"),
    benchmark:
        bench_path("xpcs", "intensity_time")
    conda:
        ENV
    shell:
        "speckleml intensity-time {input.frames} {output.table} --figure {output.figure}"
        " --q-first {params.q_first} --q-width {params.q_width} --q-step {params.q_step}"
        " --n-rings {params.n_rings} --min-pixel-mean {params.min_pixel_mean}"
        " --flagged {input.bad_frames} > {log} 2>&1"


rule xpcs_saxs_1d:
    input:
        frames="results/xpcs/frames.zarr",
        src=stage_sources("speckleml.xpcs.analyses_cli:saxs_1d"),
    output:
        table="results/xpcs/saxs_1d.csv",
        figure=report("results/xpcs/figures/saxs_1d.png", category="xpcs", caption="../report/xpcs/saxs_1d.rst"),
    params:
        bins=XPCS["saxs"]["bins"],
    log:
        log_path("xpcs", "saxs_1d"),
    benchmark:
        bench_path("xpcs", "saxs_1d")
    conda:
        ENV
    shell:
        "speckleml saxs-1d {input.frames} {output.table} --figure {output.figure} --bins {params.bins} > {log} 2>&1"


STUDY_TARGETS["xpcs"] = lambda: [
    "results/xpcs/bad_frames.csv",
    "results/xpcs/figures/partial_g2.png",
    "results/xpcs/figures/tau_q.png",
    "results/xpcs/figures/intensity_time.png",
    "results/xpcs/figures/saxs_1d.png",
    "results/xpcs/frames.zarr",
    "results/xpcs/c2.zarr",
    "results/xpcs/g2_fits.csv",
    "results/xpcs/figures/g2_fits.png",
    "results/xpcs/c2_aps.hdf",
]
