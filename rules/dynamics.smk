# dynamics (paper 000), case 1: Kuramoto moments learned through speckle.
# simulate (truth + frames + test truth) -> train (one job per ensemble member) -> evaluate
# (extrapolation on new initial conditions) -> figures; robustness sweeps: one job per level
# (speckle under the condition, train, evaluate) -> one gather rule (table + plot).
DYN = config["dynamics"]["kuramoto"]
DYN_SYS = DYN["system"]
DYN_SPK = DYN["speckle"]
DYN_TRAIN = DYN["train"]
DYN_EVAL = DYN["evaluate"]
DYN_SWEEPS = DYN["sweeps"]
DYN_DIR = "results/dynamics/kuramoto"
DYN_MEMBERS = list(range(DYN_TRAIN["members"]))
# (parameter, level index) of every sweep job; the level's value is DYN_SWEEPS[param][level].
DYN_LEVELS = [(p, i) for p in ("lambda_max", "dq_factor", "probe_sigma", "sigma_coh", "delta") for i in range(len(DYN_SWEEPS[p]))]
DYN_OPTION = {"lambda_max": "lambda-max", "dq_factor": "dq-factor", "probe_sigma": "probe-sigma",
              "sigma_coh": "sigma-coh", "delta": "delta"}


wildcard_constraints:
    sweep_param="lambda_max|dq_factor|probe_sigma|sigma_coh|delta",
    level=r"\d+",


# CLI options of the scattering geometry (null -> none), the training and the evaluation, all
# from config; a sweep level replaces one geometry option (DYN_OPTION) by its value.
DYN_GEOMETRY = {
    "box": q(DYN_SYS["box"]),
    **{DYN_OPTION.get(key, key.replace("_", "-")): "none" if DYN_SPK[key] is None else q(DYN_SPK[key])
       for key in ("detector", "dq_factor", "probe_sigma", "beamstop", "sigma_coh", "static_weight", "delta",
                   "lambda_max")},
}
DYN_GEOMETRY_ARGS = " ".join(f"--{option} {value}" for option, value in DYN_GEOMETRY.items())
DYN_TRAINING_ARGS = " ".join(
    [f"--coupling {q(DYN_SYS['coupling'])}", f"--seed {q(config['seed'])}", f"--device {q(config['device'])}"]
    + [f"--{key.replace('_', '-')} {q(DYN_TRAIN[key])}"
       for key in ("kernel_size", "kernel_symmetry", "init_std", "iterations", "learning_rate", "batch_series", "batch_time", "loss",
                   "poisson_below", "rescale_t0", "method", "rtol", "atol", "max_num_steps", "spike_rule",
                   "spike_factor", "spike_mad", "spike_window", "spike_patience", "lr_recovery", "min_learning_rate",
                   "checkpoint_every", "snapshot_every")]
)
DYN_EVALUATION_ARGS = (
    f"--example {q(DYN_EVAL['example'])} --eval-rtol {q(DYN_EVAL['rtol'])} --eval-atol {q(DYN_EVAL['atol'])}"
)
# Geometry options of one sweep level: the level's value replaces the configured one.
DYN_LEVEL_GEOMETRY = lambda wc: " ".join(
    f"--{option} {value}"
    for option, value in {**DYN_GEOMETRY, DYN_OPTION[wc.sweep_param]: q(DYN_SWEEPS[wc.sweep_param][int(wc.level)])}.items()
)
# Output folder of one sweep level.
dyn_level_dir = lambda param, level: f"{DYN_DIR}/sweeps/{param}/{level}"


rule dynamics_simulate:
    input:
        src=stage_sources("speckleml.dynamics.cli:cmd_simulate"),
    output:
        states=directory(f"{DYN_DIR}/states.zarr"),
        frames=directory(f"{DYN_DIR}/frames.zarr"),
        test=directory(f"{DYN_DIR}/test_states.zarr"),
    params:
        series=DYN_SYS["series"],
        lattice=DYN_SYS["lattice"],
        kernel_size=DYN_SYS["kernel_size"],
        kernel_sigma=DYN_SYS["kernel_sigma"],
        normalization=DYN_SYS["kernel_normalization"],
        coupling=DYN_SYS["coupling"],
        t_max=DYN_SYS["t_max"],
        dt=DYN_SYS["dt"],
        drop=DYN_SYS["drop"],
        rtol=DYN_SYS["rtol"],
        atol=DYN_SYS["atol"],
        test_series=DYN_SYS["test_series"],
        extrapolation=DYN_SYS["extrapolation"],
        geometry=DYN_GEOMETRY_ARGS,
        seed=config["seed"],
    threads: DYN_SYS["threads"]
    log:
        log_path("dynamics", "kuramoto_simulate"),
    benchmark:
        bench_path("dynamics", "kuramoto_simulate")
    conda:
        ENV
    shell:
        "speckleml dynamics simulate {output.states} --frames {output.frames} --test-states {output.test}"
        " --series {params.series} --lattice {params.lattice} --kernel-size {params.kernel_size}"
        " --kernel-sigma {params.kernel_sigma} --kernel-normalization {params.normalization}"
        " --coupling {params.coupling} --t-max {params.t_max} --dt {params.dt} --drop {params.drop}"
        " --rtol {params.rtol} --atol {params.atol} --test-series {params.test_series}"
        " --extrapolation {params.extrapolation} {params.geometry} --seed {params.seed}"
        " --threads {threads} > {log} 2>&1"


rule dynamics_train:
    input:
        states=f"{DYN_DIR}/states.zarr",
        frames=f"{DYN_DIR}/frames.zarr",
        src=stage_sources("speckleml.dynamics.cli:cmd_train"),
    output:
        model=f"{DYN_DIR}/models/member{{member}}.pt",
        history=directory(f"{DYN_DIR}/models/member{{member}}_history.zarr"),
    params:
        training=DYN_TRAINING_ARGS,
        # Not an output: it survives a killed job, and a rerun resumes from it.
        checkpoint=f"{DYN_DIR}/checkpoints/member{{member}}.ckpt",
    threads: DYN_TRAIN["threads"]
    resources:
        gpu=DYN_TRAIN["gpu"],
    log:
        log_path("dynamics", "kuramoto_train_member{member}"),
    benchmark:
        bench_path("dynamics", "kuramoto_train_member{member}")
    conda:
        ENV
    shell:
        "speckleml dynamics train --states {input.states} --frames {input.frames} --model {output.model}"
        " --history {output.history} --checkpoint {params.checkpoint} --member {wildcards.member}"
        " {params.training} --threads {threads} > {log} 2>&1"


rule dynamics_evaluate:
    input:
        test=f"{DYN_DIR}/test_states.zarr",
        states=f"{DYN_DIR}/states.zarr",
        frames=f"{DYN_DIR}/frames.zarr",
        models=expand(f"{DYN_DIR}/models/member{{member}}.pt", member=DYN_MEMBERS),
        src=stage_sources("speckleml.dynamics.cli:cmd_evaluate"),
    output:
        metrics=f"{DYN_DIR}/metrics.csv",
        per_frame=f"{DYN_DIR}/per_frame.csv",
        store=directory(f"{DYN_DIR}/evaluation.zarr"),
    params:
        evaluation=DYN_EVALUATION_ARGS,
        device=config["device"],
    threads: DYN_EVAL["threads"]
    log:
        log_path("dynamics", "kuramoto_evaluate"),
    benchmark:
        bench_path("dynamics", "kuramoto_evaluate")
    conda:
        ENV
    shell:
        "speckleml dynamics evaluate --test-states {input.test} --train-states {input.states}"
        " --frames {input.frames} --models {input.models} --metrics {output.metrics}"
        " --per-frame {output.per_frame} --store {output.store} {params.evaluation}"
        " --device {params.device} --threads {threads} > {log} 2>&1"


rule dynamics_figures:
    input:
        evaluation=f"{DYN_DIR}/evaluation.zarr",
        histories=expand(f"{DYN_DIR}/models/member{{member}}_history.zarr", member=DYN_MEMBERS),
        metrics=f"{DYN_DIR}/metrics.csv",
        src=stage_sources("speckleml.dynamics.cli:cmd_figures"),
    output:
        fig2=report(f"{DYN_DIR}/figures/fig2.png", category="dynamics", caption="../report/dynamics/fig2.rst"),
        kernels=report(f"{DYN_DIR}/figures/supp2_kernel_history.png", category="dynamics",
                       caption="../report/dynamics/supp2_kernel_history.rst"),
        vorticity=report(f"{DYN_DIR}/figures/supp3_vorticity.png", category="dynamics",
                         caption="../report/dynamics/supp3_vorticity.rst"),
        spread=report(f"{DYN_DIR}/figures/supp4_mae_spread.png", category="dynamics",
                      caption="../report/dynamics/supp4_mae_spread.rst"),
        c2=report(f"{DYN_DIR}/figures/fig2k_c2.png", category="dynamics", caption="../report/dynamics/fig2k_c2.rst"),
    log:
        log_path("dynamics", "kuramoto_figures"),
    benchmark:
        bench_path("dynamics", "kuramoto_figures")
    conda:
        ENV
    shell:
        "speckleml dynamics figures --evaluation {input.evaluation} --histories {input.histories}"
        " --metrics {input.metrics} --fig2 {output.fig2} --kernels {output.kernels}"
        " --vorticity {output.vorticity} --spread {output.spread} --c2 {output.c2} > {log} 2>&1"


rule dynamics_sweep_level:
    input:
        states=f"{DYN_DIR}/states.zarr",
        test=f"{DYN_DIR}/test_states.zarr",
        src=stage_sources("speckleml.dynamics.cli:cmd_sweep_level"),
    output:
        frames=directory(f"{DYN_DIR}/sweeps/{{sweep_param}}/{{level}}/frames.zarr"),
        model=f"{DYN_DIR}/sweeps/{{sweep_param}}/{{level}}/model.pt",
        history=directory(f"{DYN_DIR}/sweeps/{{sweep_param}}/{{level}}/history.zarr"),
        metrics=f"{DYN_DIR}/sweeps/{{sweep_param}}/{{level}}/metrics.csv",
        store=directory(f"{DYN_DIR}/sweeps/{{sweep_param}}/{{level}}/evaluation.zarr"),
    params:
        geometry=DYN_LEVEL_GEOMETRY,
        training=DYN_TRAINING_ARGS,
        evaluation=DYN_EVALUATION_ARGS,
        checkpoint=f"{DYN_DIR}/checkpoints/sweep_{{sweep_param}}_{{level}}.ckpt",
    threads: DYN_TRAIN["threads"]
    resources:
        gpu=DYN_TRAIN["gpu"],
    log:
        log_path("dynamics", "kuramoto_sweep_{sweep_param}_{level}"),
    benchmark:
        bench_path("dynamics", "kuramoto_sweep_{sweep_param}_{level}")
    conda:
        ENV
    shell:
        "speckleml dynamics sweep-level --states {input.states} --test-states {input.test}"
        " --frames {output.frames} --model {output.model} --history {output.history}"
        " --metrics {output.metrics} --store {output.store} --checkpoint {params.checkpoint}"
        " {params.geometry} {params.training} {params.evaluation} --threads {threads} > {log} 2>&1"


rule dynamics_sweep_table:
    input:
        reference=f"{DYN_DIR}/metrics.csv",
        metrics=[f"{dyn_level_dir(p, i)}/metrics.csv" for p, i in DYN_LEVELS],
        stores=[f"{dyn_level_dir(p, i)}/evaluation.zarr" for p, i in DYN_LEVELS],
        src=stage_sources("speckleml.dynamics.cli:cmd_sweep_table"),
    output:
        table=f"{DYN_DIR}/sweeps.csv",
        plot=report(f"{DYN_DIR}/figures/sweeps.png", category="dynamics", caption="../report/dynamics/sweeps.rst"),
    params:
        conditions=" ".join(
            f"--condition {p} {q(DYN_SWEEPS[p][i])} {dyn_level_dir(p, i)}/metrics.csv"
            for p, i in DYN_LEVELS
        ),
    log:
        log_path("dynamics", "kuramoto_sweep_table"),
    benchmark:
        bench_path("dynamics", "kuramoto_sweep_table")
    conda:
        ENV
    shell:
        "speckleml dynamics sweep-table --reference {input.reference} {params.conditions}"
        " --level-stores {input.stores} --table {output.table} --plot {output.plot} > {log} 2>&1"


STUDY_TARGETS["dynamics"] = lambda: [
    f"{DYN_DIR}/figures/fig2.png",
    f"{DYN_DIR}/figures/supp2_kernel_history.png",
    f"{DYN_DIR}/figures/supp3_vorticity.png",
    f"{DYN_DIR}/figures/supp4_mae_spread.png",
    f"{DYN_DIR}/figures/fig2k_c2.png",
    f"{DYN_DIR}/metrics.csv",
    f"{DYN_DIR}/per_frame.csv",
    f"{DYN_DIR}/sweeps.csv",
    f"{DYN_DIR}/figures/sweeps.png",
]
