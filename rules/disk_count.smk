# disk_count (paper 002): random disk systems -> analytic speckle -> centre block + standardise
# -> ResNet from scratch -> scores, confusion matrices, transfer to larger patterns, first-moment
# baseline, saliency / Grad-CAM, figures. One data set and classifier per dispersity (mono, poly).
DC = config["disk_count"]
DC_OUT = "results/disk_count"
DC_FIG = f"{DC_OUT}/figures"


wildcard_constraints:
    dc_dispersity="mono|poly",
    dc_size=r"\d+",


rule disk_count_simulate:
    input:
        src=stage_sources("speckleml.disk_count.cli:simulate"),
    output:
        directory(f"{DC_OUT}/{{dc_dispersity}}/patterns_{{dc_size}}.zarr"),
    params:
        n_disks=cli_list(DC["n_disks"]),
        per_class=lambda w: DC["per_class"] if int(w.dc_size) == DC["size"] else DC["large_per_class"],
        box=DC["box"],
        k_grid=DC["k_grid"],
        precision=DC["precision"],
        seed=config["seed"],
        device=config["device"],
    log:
        log_path("disk_count", "simulate_{dc_dispersity}_{dc_size}"),
    benchmark:
        bench_path("disk_count", "simulate_{dc_dispersity}_{dc_size}")
    conda:
        ENV
    shell:
        "speckleml disk-count simulate {output} --dispersity {wildcards.dc_dispersity}"
        " --n-disks {params.n_disks} --per-class {params.per_class} --size {wildcards.dc_size}"
        " --box {params.box} --k-grid {params.k_grid} --precision {params.precision} --seed {params.seed}"
        " --device {params.device} > {log} 2>&1"


rule disk_count_preprocess:
    input:
        patterns=f"{DC_OUT}/{{dc_dispersity}}/patterns_{{dc_size}}.zarr",
        src=stage_sources("speckleml.disk_count.cli:preprocess"),
    output:
        directory(f"{DC_OUT}/{{dc_dispersity}}/inputs_{{dc_size}}.zarr"),
    params:
        block=DC["block"],
        bin=DC["bin"],
        scale=DC["scale"],
        # standardisation statistics over the training k range (n < size) at every pattern size
        stats=f"--stats-size {DC['size']}" if DC["stats_window"] == "training" else "",
        # the training size is split train/val/test; the transfer size is a pure test set
        split=lambda w: (
            f"--split {cli_list(DC['split'])}" if int(w.dc_size) == DC["size"] else "--all-test"
        ),
        seed=config["seed"],
    log:
        log_path("disk_count", "preprocess_{dc_dispersity}_{dc_size}"),
    benchmark:
        bench_path("disk_count", "preprocess_{dc_dispersity}_{dc_size}")
    conda:
        ENV
    shell:
        "speckleml disk-count preprocess {input.patterns} {output} --block {params.block}"
        " --bin {params.bin} --scale {params.scale} {params.stats} {params.split} --seed {params.seed} > {log} 2>&1"


rule disk_count_train:
    input:
        inputs=f"{DC_OUT}/{{dc_dispersity}}/inputs_{DC['size']}.zarr",
        src=stage_sources("speckleml.disk_count.cli:train"),
    output:
        model=f"{DC_OUT}/{{dc_dispersity}}/model.pt",
        history=f"{DC_OUT}/{{dc_dispersity}}/history.csv",
    params:
        arch=DC["arch"],
        stem=DC["stem"],
        # the poly block overrides the shared training keys for the polydisperse classifier
        epochs=lambda w: DC["poly"]["epochs"] if w.dc_dispersity == "poly" else DC["epochs"],
        batch_size=DC["batch_size"],
        lr=DC["lr"],
        schedule=DC["schedule"],
        augment="--augment" if DC["augment"] else "--no-augment",
        k_range_min=lambda w: DC["poly"]["k_range_min"] if w.dc_dispersity == "poly" else DC["k_range_min"],
        seed=config["seed"],
        device=config["device"],
    threads: DC["threads"]
    resources:
        gpu=DC["gpu"],
    log:
        log_path("disk_count", "train_{dc_dispersity}"),
    benchmark:
        bench_path("disk_count", "train_{dc_dispersity}")
    conda:
        ENV
    shell:
        "speckleml disk-count train {input.inputs} {output.model} --history {output.history}"
        " --arch {params.arch} --stem {params.stem} --epochs {params.epochs} --batch-size {params.batch_size}"
        " --lr {params.lr} --schedule {params.schedule} {params.augment} --k-range-min {params.k_range_min}"
        " --threads {threads}"
        " --seed {params.seed} --device {params.device} > {log} 2>&1"


rule disk_count_evaluate:
    input:
        model=f"{DC_OUT}/{{dc_dispersity}}/model.pt",
        inputs=f"{DC_OUT}/{{dc_dispersity}}/inputs_{{dc_size}}.zarr",
        src=stage_sources("speckleml.disk_count.cli:evaluate"),
    output:
        metrics=report(f"{DC_OUT}/{{dc_dispersity}}/eval_{{dc_size}}/metrics.csv", category="disk_count",
                       caption="../report/disk_count/table1.rst"),
        confusion=f"{DC_OUT}/{{dc_dispersity}}/eval_{{dc_size}}/confusion.csv",
        predictions=f"{DC_OUT}/{{dc_dispersity}}/eval_{{dc_size}}/predictions.csv",
    params:
        device=config["device"],
    threads: DC["threads"]
    log:
        log_path("disk_count", "evaluate_{dc_dispersity}_{dc_size}"),
    benchmark:
        bench_path("disk_count", "evaluate_{dc_dispersity}_{dc_size}")
    conda:
        ENV
    shell:
        "speckleml disk-count evaluate {input.model} {input.inputs} --metrics {output.metrics}"
        " --confusion {output.confusion} --predictions {output.predictions}"
        " --threads {threads} --device {params.device} > {log} 2>&1"


rule disk_count_interpret:
    input:
        model=f"{DC_OUT}/{{dc_dispersity}}/model.pt",
        inputs=f"{DC_OUT}/{{dc_dispersity}}/inputs_{DC['size']}.zarr",
        src=stage_sources("speckleml.disk_count.cli:interpret"),
    output:
        directory(f"{DC_OUT}/{{dc_dispersity}}/maps.zarr"),
    params:
        device=config["device"],
    threads: DC["threads"]
    log:
        log_path("disk_count", "interpret_{dc_dispersity}"),
    benchmark:
        bench_path("disk_count", "interpret_{dc_dispersity}")
    conda:
        ENV
    shell:
        "speckleml disk-count interpret {input.model} {input.inputs} {output}"
        " --threads {threads} --device {params.device} > {log} 2>&1"


rule disk_count_moments:
    input:
        patterns=f"{DC_OUT}/mono/patterns_{DC['large_size']}.zarr",
        src=stage_sources("speckleml.disk_count.cli:moments"),
    output:
        f"{DC_OUT}/mono/first_moments.csv",
    params:
        block=DC["block"],
        per_class=DC["moments_per_class"],
        seed=config["seed"],
    log:
        log_path("disk_count", "moments"),
    benchmark:
        bench_path("disk_count", "moments")
    conda:
        ENV
    shell:
        "speckleml disk-count moments {input.patterns} {output} --block {params.block}"
        " --per-class {params.per_class} --seed {params.seed} > {log} 2>&1"


rule disk_count_fig_systems:
    input:
        patterns=f"{DC_OUT}/mono/patterns_{DC['size']}.zarr",
        src=stage_sources("speckleml.disk_count.cli:figures"),
    output:
        report(f"{DC_FIG}/fig2_systems.png", category="disk_count", caption="../report/disk_count/fig2.rst"),
    params:
        # the schema's "where simulated": the figures CLI refuses a number it was not given patterns of
        show=cli_list([n for n in DC["show"] if n in DC["n_disks"]] or DC["n_disks"][:1]),
    log:
        log_path("disk_count", "fig2"),
    benchmark:
        bench_path("disk_count", "fig2")
    conda:
        ENV
    shell:
        "speckleml disk-count figures systems {input.patterns} {output} --show {params.show} > {log} 2>&1"


rule disk_count_fig_confusion:
    input:
        confusion=f"{DC_OUT}/{{dc_dispersity}}/eval_{{dc_size}}/confusion.csv",
        src=stage_sources("speckleml.disk_count.cli:figures"),
    output:
        report(f"{DC_FIG}/confusion_{{dc_dispersity}}_{{dc_size}}.png", category="disk_count",
               caption="../report/disk_count/confusion.rst"),
    params:
        title=lambda w: q(f"{w.dc_dispersity}disperse, {w.dc_size}x{w.dc_size} patterns"),
    log:
        log_path("disk_count", "fig_confusion_{dc_dispersity}_{dc_size}"),
    benchmark:
        bench_path("disk_count", "fig_confusion_{dc_dispersity}_{dc_size}")
    conda:
        ENV
    shell:
        "speckleml disk-count figures confusion {input.confusion} {output} --title {params.title}"
        " --bands > {log} 2>&1"


rule disk_count_fig_moments:
    input:
        moments=f"{DC_OUT}/mono/first_moments.csv",
        src=stage_sources("speckleml.disk_count.cli:figures"),
    output:
        report(f"{DC_FIG}/fig6_first_moment.png", category="disk_count", caption="../report/disk_count/fig6.rst"),
    log:
        log_path("disk_count", "fig6"),
    benchmark:
        bench_path("disk_count", "fig6")
    conda:
        ENV
    shell:
        "speckleml disk-count figures moments {input.moments} {output} > {log} 2>&1"


rule disk_count_fig_maps:
    input:
        maps=f"{DC_OUT}/{{dc_dispersity}}/maps.zarr",
        src=stage_sources("speckleml.disk_count.cli:figures"),
    output:
        report(f"{DC_FIG}/maps_{{dc_dispersity}}.png", category="disk_count", caption="../report/disk_count/maps.rst"),
    log:
        log_path("disk_count", "fig_maps_{dc_dispersity}"),
    benchmark:
        bench_path("disk_count", "fig_maps_{dc_dispersity}")
    conda:
        ENV
    shell:
        "speckleml disk-count figures maps {input.maps} {output} > {log} 2>&1"


rule disk_count_fig_history:
    input:
        history=f"{DC_OUT}/{{dc_dispersity}}/history.csv",
        src=stage_sources("speckleml.disk_count.cli:figures"),
    output:
        report(f"{DC_FIG}/history_{{dc_dispersity}}.png", category="disk_count",
               caption="../report/disk_count/history.rst"),
    log:
        log_path("disk_count", "fig_history_{dc_dispersity}"),
    benchmark:
        bench_path("disk_count", "fig_history_{dc_dispersity}")
    conda:
        ENV
    shell:
        "speckleml disk-count figures history {input.history} {output} > {log} 2>&1"


# Final outputs: the transfer (Fig. 4) and baseline (Fig. 6) on mono; figures and Table 1 per dispersity.
STUDY_TARGETS["disk_count"] = lambda: [
    f"{DC_FIG}/fig2_systems.png",
    f"{DC_FIG}/fig6_first_moment.png",
    f"{DC_FIG}/confusion_mono_{DC['large_size']}.png",
    *(
        path
        for d in DC["dispersities"]
        for path in (
            f"{DC_FIG}/confusion_{d}_{DC['size']}.png",
            f"{DC_FIG}/maps_{d}.png",
            f"{DC_FIG}/history_{d}.png",
            f"{DC_OUT}/{d}/eval_{DC['size']}/metrics.csv",
        )
    ),
]
