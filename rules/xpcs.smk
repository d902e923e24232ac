# xpcs: the shared real-data chain. Measured frames (the scikit-beam stack when present,
# else a synthetic stack with known g2) -> frames store -> correlation -> fits -> figures.
XPCS = config["xpcs"]
XPCS_INPUT = Path(XPCS["frames"]) if XPCS.get("frames") else None
XPCS_REAL = XPCS_INPUT is not None and XPCS_INPUT.exists()


if XPCS_REAL:

    rule xpcs_import_frames:
        input:
            data=str(XPCS_INPUT),
            src=source_files("tools_cli.py", "frames_io.py"),
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
            src=source_files("tools_cli.py", "synthetic.py"),
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


STUDY_TARGETS["xpcs"] = lambda: ["results/xpcs/frames.zarr"]
