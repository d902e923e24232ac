# shear (paper 003): Monte Carlo speckle of sheared colloids -> g(theta) data set (scatter over
# chunks of parameter draws, then gather) -> SVD + one GPR per target -> errors -> Fig. 1-7.
SHEAR = config["shear"]
SHEAR_MC = SHEAR["monte_carlo"]
SHEAR_GRID = SHEAR["grid"]
SHEAR_DATA = SHEAR["dataset"]
SHEAR_SIM = SHEAR["simulate"]
SHEAR_FIT = SHEAR["fit"]
SHEAR_CHUNKS = list(range(SHEAR_DATA["chunks"]))


# geometry and Monte Carlo options shared by simulate and dataset (all from config)
SHEAR_COMMON_ARGS = (
    f"--beam {q(SHEAR_GRID['beam'])} --q-min {q(SHEAR_GRID['q_min'])} --q-max {q(SHEAR_GRID['q_max'])}"
    f" --n-q {q(SHEAR_GRID['n_q'])} --n-theta {q(SHEAR_GRID['n_theta'])}"
    f" --nonaffine-scaling {q(SHEAR_MC['nonaffine_scaling'])}"
    f" --batch {q(SHEAR_MC['batch'])} --dtype {q(SHEAR_MC['dtype'])}"
    f" --incoherent-configs {q(SHEAR_MC['incoherent_configs'])}"
    f" --device {q(config['device'])} --seed {q(config['seed'])}"
)


rule shear_simulate:
    input:
        src=stage_sources("speckleml.shear.cli:simulate"),
    output:
        directory("results/shear/simulation.zarr"),
    params:
        common=SHEAR_COMMON_ARGS,
        estimator=SHEAR_MC["estimator"],
        configs=SHEAR_SIM["configs"],
        speckle_configs=SHEAR_SIM["speckle_configs"],
        fig1=cli_list(SHEAR_SIM["fig1"]),
        fig2=cli_list(SHEAR_SIM["fig2"]),
        baseline=cli_list(SHEAR_SIM["baseline"]),
        sweep_r_s=cli_list(SHEAR_SIM["sweep_r_s"]),
        sweep_d2=cli_list(SHEAR_SIM["sweep_d2"]),
        sweep_gamma_l=cli_list(SHEAR_SIM["sweep_gamma_l"]),
        compare_scaling="--compare-scaling" if SHEAR_SIM["compare_scaling"] else "--no-compare-scaling",
    log:
        log_path("shear", "simulate"),
    benchmark:
        bench_path("shear", "simulate")
    conda:
        ENV
    shell:
        "speckleml shear simulate {output} {params.common} --estimator {params.estimator}"
        " --configs {params.configs} --speckle-configs {params.speckle_configs}"
        " --fig1 {params.fig1} --fig2 {params.fig2} --baseline {params.baseline}"
        " --sweep-r-s {params.sweep_r_s} --sweep-d2 {params.sweep_d2}"
        " --sweep-gamma-l {params.sweep_gamma_l} {params.compare_scaling} > {log} 2>&1"


rule shear_dataset_chunk:
    input:
        src=stage_sources("speckleml.shear.cli:dataset"),
    output:
        temp(directory("results/shear/chunks/{chunk}.zarr")),
    params:
        common=SHEAR_COMMON_ARGS,
        estimator=SHEAR_MC["estimator"],
        draws=SHEAR_DATA["draws"],
        chunks=SHEAR_DATA["chunks"],
        configs=SHEAR_DATA["configs"],
        range_nl2=cli_list(SHEAR_DATA["ranges"]["nL2"]),
        range_r_s=cli_list(SHEAR_DATA["ranges"]["R_s"]),
        range_d2=cli_list(SHEAR_DATA["ranges"]["D2"]),
        range_gamma_l=cli_list(SHEAR_DATA["ranges"]["gamma_L"]),
    log:
        log_path("shear", "dataset_{chunk}"),
    benchmark:
        bench_path("shear", "dataset_{chunk}")
    conda:
        ENV
    shell:
        "speckleml shear dataset {output} {params.common} --estimator {params.estimator}"
        " --draws {params.draws} --chunks {params.chunks} --chunk {wildcards.chunk}"
        " --configs {params.configs} --range-nl2 {params.range_nl2} --range-r-s {params.range_r_s}"
        " --range-d2 {params.range_d2} --range-gamma-l {params.range_gamma_l} > {log} 2>&1"


rule shear_dataset:
    input:
        chunks=expand("results/shear/chunks/{chunk}.zarr", chunk=SHEAR_CHUNKS),
        src=stage_sources("speckleml.shear.cli:merge"),
    output:
        directory("results/shear/dataset.zarr"),
    log:
        log_path("shear", "dataset_merge"),
    benchmark:
        bench_path("shear", "dataset_merge")
    conda:
        ENV
    shell:
        "speckleml shear merge {input.chunks} --output {output} > {log} 2>&1"


rule shear_fit:
    input:
        dataset="results/shear/dataset.zarr",
        src=stage_sources("speckleml.shear.cli:fit"),
    output:
        model="results/shear/gpr.pkl",
        analysis=directory("results/shear/analysis.zarr"),
    params:
        features=cli_list(SHEAR_FIT["features"]),
        targets=cli_list(SHEAR_FIT["targets"]),
        train_fraction=SHEAR_FIT["train_fraction"],
        restarts=SHEAR_FIT["restarts"],
        components=SHEAR_FIT["components"],
        input_components=SHEAR_FIT["input_components"],
        log_targets=cli_list(SHEAR_FIT["log_targets"]),
        feature_scale=SHEAR_FIT["feature_scale"],
        plateau_scale=SHEAR_FIT["plateau_scale"],
        lml_grid=SHEAR_FIT["lml_grid"],
        lml_points=SHEAR_FIT["lml_points"],
        pddf_points=SHEAR_FIT["pddf_points"],
        pddf_bins=SHEAR_FIT["pddf_bins"],
        seed=config["seed"],
    log:
        log_path("shear", "fit"),
    benchmark:
        bench_path("shear", "fit")
    conda:
        ENV
    shell:
        "speckleml shear fit {input.dataset} {output.model} {output.analysis}"
        " --features {params.features} --targets {params.targets}"
        " --train-fraction {params.train_fraction} --restarts {params.restarts}"
        " --components {params.components} --input-components {params.input_components}"
        " --log-targets {params.log_targets} --feature-scale {params.feature_scale}"
        " --plateau-scale {params.plateau_scale} --lml-grid {params.lml_grid}"
        " --lml-points {params.lml_points} --pddf-points {params.pddf_points}"
        " --pddf-bins {params.pddf_bins} --seed {params.seed} > {log} 2>&1"


rule shear_evaluate:
    input:
        dataset="results/shear/dataset.zarr",
        model="results/shear/gpr.pkl",
        src=stage_sources("speckleml.shear.cli:evaluate"),
    output:
        predictions="results/shear/predictions.csv",
        table=report("results/shear/table1.csv", category="shear", caption="../report/shear/table1.rst"),
    log:
        log_path("shear", "evaluate"),
    benchmark:
        bench_path("shear", "evaluate")
    conda:
        ENV
    shell:
        "speckleml shear evaluate {input.dataset} {input.model}"
        " --predictions {output.predictions} --table {output.table} > {log} 2>&1"


SHEAR_FIGURES = [f"fig{k}" for k in range(1, 8)]


rule shear_figures:
    input:
        simulation="results/shear/simulation.zarr",
        dataset="results/shear/dataset.zarr",
        analysis="results/shear/analysis.zarr",
        predictions="results/shear/predictions.csv",
        table="results/shear/table1.csv",
        src=stage_sources("speckleml.shear.cli:figures"),
    output:
        [
            report(f"results/shear/figures/{name}.png", category="shear", caption=f"../report/shear/{name}.rst")
            for name in SHEAR_FIGURES
        ],
    params:
        out_dir=lambda wildcards, output: os.path.dirname(output[0]),
    log:
        log_path("shear", "figures"),
    benchmark:
        bench_path("shear", "figures")
    conda:
        ENV
    shell:
        "speckleml shear figures --simulation {input.simulation} --dataset {input.dataset}"
        " --analysis {input.analysis} --predictions {input.predictions} --table {input.table}"
        " --out-dir {params.out_dir} > {log} 2>&1"


STUDY_TARGETS["shear"] = lambda: [
    "results/shear/table1.csv",
    *[f"results/shear/figures/{name}.png" for name in SHEAR_FIGURES],
]
