# dynamics (paper 000), case 2: self-organising particles, a graph neural ODE learned through speckle.
# swarm-simulate (truth + frames + test truth) -> swarm-train (R0 from the bright ring, pretraining to
# (R0 - r)/r, training through speckle; one job per ensemble member) -> swarm-evaluate (extrapolation to
# 5x the window on new initial conditions) -> swarm-figures. Part of the "dynamics" study's targets.
SWM = config["dynamics"]["swarm"]
SWM_SYS = SWM["system"]
SWM_SPK = SWM["speckle"]
SWM_TRAIN = SWM["train"]
SWM_EVAL = SWM["evaluate"]
SWM_DIR = "results/dynamics/swarm"
SWM_MEMBERS = list(range(SWM_TRAIN["members"]))


# ``--{prefix}key value`` options of one config section (values shell-quoted).
swm_args = lambda section, keys, prefix="": " ".join(
    f"--{prefix}{key.replace('_', '-')} {q(section[key])}" for key in keys
)


rule dynamics_swarm_simulate:
    input:
        src=stage_sources("speckleml.dynamics.swarm_cli:cmd_simulate"),
    output:
        states=directory(f"{SWM_DIR}/states.zarr"),
        frames=directory(f"{SWM_DIR}/frames.zarr"),
        test=directory(f"{SWM_DIR}/test_states.zarr"),
    params:
        system=swm_args(SWM_SYS, ("series", "particles", "disk_radius", "box_length", "cutoff", "aggregation",
                                  "t_max", "dt", "extrapolation", "test_series", "rtol", "atol")),
        geometry=swm_args(SWM_SPK, ("detector", "dq_factor", "probe_sigma", "beamstop", "particle_radius")),
        seed=config["seed"],
    threads: SWM_SYS["threads"]
    log:
        log_path("dynamics", "swarm_simulate"),
    benchmark:
        bench_path("dynamics", "swarm_simulate")
    conda:
        ENV
    shell:
        "speckleml dynamics swarm-simulate {output.states} --frames {output.frames} --test-states {output.test}"
        " {params.system} {params.geometry} --seed {params.seed} --threads {threads} > {log} 2>&1"


rule dynamics_swarm_train:
    input:
        states=f"{SWM_DIR}/states.zarr",
        frames=f"{SWM_DIR}/frames.zarr",
        src=stage_sources("speckleml.dynamics.swarm_cli:cmd_train"),
    output:
        model=f"{SWM_DIR}/models/member{{member}}.pt",
        history=directory(f"{SWM_DIR}/models/member{{member}}_history.zarr"),
    params:
        training=swm_args(SWM_TRAIN, ("hidden", "pretrain_steps", "pretrain_lr", "pretrain_scale", "iterations",
                                      "learning_rate", "batch_series", "batch_time", "loss", "poisson_below",
                                      "rescale_t0", "method", "rtol", "atol", "max_num_steps", "spike_rule",
                                      "spike_factor", "spike_mad", "spike_window", "spike_patience", "lr_recovery",
                                      "min_learning_rate", "checkpoint_every", "snapshot_every")),
        seed=config["seed"],
        device=config["device"],
        # Not an output: it survives a killed job, and a rerun resumes from it.
        checkpoint=f"{SWM_DIR}/checkpoints/member{{member}}.ckpt",
    threads: SWM_TRAIN["threads"]
    resources:
        gpu=SWM_TRAIN["gpu"],
    log:
        log_path("dynamics", "swarm_train_member{member}"),
    benchmark:
        bench_path("dynamics", "swarm_train_member{member}")
    conda:
        ENV
    shell:
        "speckleml dynamics swarm-train --states {input.states} --frames {input.frames} --model {output.model}"
        " --history {output.history} --checkpoint {params.checkpoint} --member {wildcards.member}"
        " {params.training} --seed {params.seed} --device {params.device} --threads {threads} > {log} 2>&1"


rule dynamics_swarm_evaluate:
    input:
        test=f"{SWM_DIR}/test_states.zarr",
        frames=f"{SWM_DIR}/frames.zarr",
        models=expand(f"{SWM_DIR}/models/member{{member}}.pt", member=SWM_MEMBERS),
        src=stage_sources("speckleml.dynamics.swarm_cli:cmd_evaluate"),
    output:
        metrics=report(f"{SWM_DIR}/metrics.csv", category="dynamics (swarm)",
                       caption="../report/dynamics/swarm_metrics.rst"),
        store=directory(f"{SWM_DIR}/evaluation.zarr"),
    params:
        evaluation=swm_args(SWM_EVAL, ("example", "snapshots", "n_lags", "agreement_mae")) + " "
        + swm_args(SWM_EVAL, ("rtol", "atol"), prefix="eval-"),
        device=config["device"],
    threads: SWM_EVAL["threads"]
    log:
        log_path("dynamics", "swarm_evaluate"),
    benchmark:
        bench_path("dynamics", "swarm_evaluate")
    conda:
        ENV
    shell:
        "speckleml dynamics swarm-evaluate --test-states {input.test} --frames {input.frames}"
        " --models {input.models} --metrics {output.metrics} --store {output.store} {params.evaluation}"
        " --device {params.device} --threads {threads} > {log} 2>&1"


rule dynamics_swarm_figures:
    input:
        evaluation=f"{SWM_DIR}/evaluation.zarr",
        src=stage_sources("speckleml.dynamics.swarm_cli:cmd_figures"),
    output:
        fig3=report(f"{SWM_DIR}/figures/fig3.png", category="dynamics (swarm)",
                    caption="../report/dynamics/swarm_fig3.rst"),
        supp10=report(f"{SWM_DIR}/figures/supp10.png", category="dynamics (swarm)",
                      caption="../report/dynamics/swarm_supp10.rst"),
    log:
        log_path("dynamics", "swarm_figures"),
    benchmark:
        bench_path("dynamics", "swarm_figures")
    conda:
        ENV
    shell:
        "speckleml dynamics swarm-figures --evaluation {input.evaluation} --fig3 {output.fig3}"
        " --supp10 {output.supp10} > {log} 2>&1"


_dynamics_kuramoto_targets = STUDY_TARGETS["dynamics"]
STUDY_TARGETS["dynamics"] = lambda: _dynamics_kuramoto_targets() + [
    f"{SWM_DIR}/metrics.csv",
    f"{SWM_DIR}/figures/fig3.png",
    f"{SWM_DIR}/figures/supp10.png",
]
