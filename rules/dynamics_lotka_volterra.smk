# dynamics (paper 000), case 3: a fluctuating source (Lotka-Volterra beam motion) learned through speckle.
# simulate (objects, truth, training frames, test truth) -> train (one job per member, checkpointed)
# -> evaluate (members, ensemble model, untrained baseline on new objects) -> figures.
LV = config["dynamics"]["lotka_volterra"]
LV_SYS = LV["system"]
LV_SPK = LV["speckle"]
LV_TRAIN = LV["train"]
LV_EVAL = LV["evaluate"]
LV_DIR = "results/dynamics/lotka_volterra"
LV_MEMBERS = list(range(LV_TRAIN["members"]))
LV_SIMULATE_ARGS = " ".join(
    f"--{key.replace('_', '-')} {q(section[key])}"
    for section, keys in (
        (LV_SYS, ("series", "t_max", "dt", "test_series", "test_t_max", "test_dt", "n_particles", "box",
                  "particle_radius")),
        (LV_SPK, ("detector", "dq_factor", "probe_sigma", "render_dtype")),
    )
    for key in keys
)
LV_TRAINING_ARGS = " ".join(
    [f"--seed {q(config['seed'])}", f"--device {q(config['device'])}"]
    + [f"--{key.replace('_', '-')} {q(LV_TRAIN[key])}"
       for key in ("hidden", "init_scale", "iterations", "learning_rate", "batch_series", "batch_time", "loss", "poisson_below",
                   "rescale_t0", "method", "rtol", "atol", "max_num_steps", "spike_rule", "spike_factor", "spike_mad",
                   "spike_window", "spike_patience", "lr_recovery", "min_learning_rate", "checkpoint_every",
                   "snapshot_every")]
)
LV_EVALUATION_ARGS = (
    f"--grid-points {q(LV_EVAL['grid_points'])} --agreement-tolerance {q(LV_EVAL['agreement_tolerance'])}"
    f" --eval-rtol {q(LV_EVAL['rtol'])} --eval-atol {q(LV_EVAL['atol'])} --seed {q(config['seed'])}"
)
LV_FIGURES = ("trajectories", "spectra", "emd", "vector_fields")


rule dynamics_lotka_volterra_simulate:
    input:
        src=stage_sources("speckleml.dynamics.lotka_volterra_cli:cmd_simulate"),
    output:
        states=directory(f"{LV_DIR}/states.zarr"),
        frames=directory(f"{LV_DIR}/frames.zarr"),
        test=directory(f"{LV_DIR}/test_states.zarr"),
    params:
        options=LV_SIMULATE_ARGS,
        seed=config["seed"],
    threads: LV_SYS["threads"]
    log:
        log_path("dynamics", "lotka_volterra_simulate"),
    benchmark:
        bench_path("dynamics", "lotka_volterra_simulate")
    conda:
        ENV
    shell:
        "speckleml lotka-volterra simulate {output.states} {output.frames} {output.test} {params.options}"
        " --seed {params.seed} --threads {threads} > {log} 2>&1"


rule dynamics_lotka_volterra_train:
    input:
        states=f"{LV_DIR}/states.zarr",
        frames=f"{LV_DIR}/frames.zarr",
        src=stage_sources("speckleml.dynamics.lotka_volterra_cli:cmd_train"),
    output:
        model=f"{LV_DIR}/models/member{{member}}.pt",
        history=directory(f"{LV_DIR}/models/member{{member}}_history.zarr"),
    params:
        training=LV_TRAINING_ARGS,
        # Not an output: it survives a killed job, and a rerun resumes from it.
        checkpoint=f"{LV_DIR}/checkpoints/member{{member}}.ckpt",
    threads: LV_TRAIN["threads"]
    resources:
        gpu=LV_TRAIN["gpu"],
    log:
        log_path("dynamics", "lotka_volterra_train_member{member}"),
    benchmark:
        bench_path("dynamics", "lotka_volterra_train_member{member}")
    conda:
        ENV
    shell:
        "speckleml lotka-volterra train --states {input.states} --frames {input.frames} --model {output.model}"
        " --history {output.history} --checkpoint {params.checkpoint} --member {wildcards.member}"
        " {params.training} --threads {threads} > {log} 2>&1"


rule dynamics_lotka_volterra_evaluate:
    input:
        test=f"{LV_DIR}/test_states.zarr",
        states=f"{LV_DIR}/states.zarr",
        models=expand(f"{LV_DIR}/models/member{{member}}.pt", member=LV_MEMBERS),
        src=stage_sources("speckleml.dynamics.lotka_volterra_cli:cmd_evaluate"),
    output:
        metrics=report(f"{LV_DIR}/metrics.csv", category="dynamics", subcategory="lotka_volterra",
                       caption="../report/dynamics/lotka_volterra_metrics.rst"),
        store=directory(f"{LV_DIR}/evaluation.zarr"),
    params:
        evaluation=LV_EVALUATION_ARGS,
    threads: LV_EVAL["threads"]
    log:
        log_path("dynamics", "lotka_volterra_evaluate"),
    benchmark:
        bench_path("dynamics", "lotka_volterra_evaluate")
    conda:
        ENV
    shell:
        "speckleml lotka-volterra evaluate --test-states {input.test} --train-states {input.states}"
        " --models {input.models} --metrics {output.metrics} --store {output.store} {params.evaluation}"
        " --threads {threads} > {log} 2>&1"


rule dynamics_lotka_volterra_figures:
    input:
        evaluation=f"{LV_DIR}/evaluation.zarr",
        metrics=f"{LV_DIR}/metrics.csv",
        src=stage_sources("speckleml.dynamics.lotka_volterra_cli:cmd_figures"),
    output:
        **{name: report(f"{LV_DIR}/figures/{name}.png", category="dynamics", subcategory="lotka_volterra",
                        caption=f"../report/dynamics/lotka_volterra_{name}.rst") for name in LV_FIGURES},
    log:
        log_path("dynamics", "lotka_volterra_figures"),
    benchmark:
        bench_path("dynamics", "lotka_volterra_figures")
    conda:
        ENV
    shell:
        "speckleml lotka-volterra figures --evaluation {input.evaluation} --metrics {input.metrics}"
        " --trajectories {output.trajectories} --spectra {output.spectra} --emd {output.emd}"
        " --fields {output.vector_fields} > {log} 2>&1"


# The dynamics study's targets: the Kuramoto case's (rules/dynamics.smk) and this case's.
_LV_PREVIOUS_TARGETS = STUDY_TARGETS["dynamics"]
STUDY_TARGETS["dynamics"] = lambda: _LV_PREVIOUS_TARGETS() + [
    f"{LV_DIR}/metrics.csv",
    *[f"{LV_DIR}/figures/{name}.png" for name in LV_FIGURES],
]
