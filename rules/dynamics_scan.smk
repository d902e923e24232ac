# dynamics (paper 000), case 4: a ptychographic scan trajectory (eq. 9) learned from its diffraction patterns.
# scan-simulate (object, probe, eq. 9 truth, training frames, test truth) -> scan-train (one job per ensemble
# member, shared checkpointed loop) -> scan-evaluate (extrapolation to 2x the window: angular lag, spectra +
# EMD, C2 at three Q, real-space frames) -> scan-figures. Part of the "dynamics" study's targets.
SCN = config["dynamics"]["scan"]
SCN_SYS = SCN["system"]
SCN_SAMPLE = SCN["sample"]
SCN_TRAIN = SCN["train"]
SCN_EVAL = SCN["evaluate"]
SCN_DIR = "results/dynamics/scan"
SCN_MEMBERS = list(range(SCN_TRAIN["members"]))


# ``--{prefix}key value`` options of one config section (values shell-quoted).
scn_args = lambda section, keys, prefix="": " ".join(
    f"--{prefix}{key.replace('_', '-')} {q(section[key])}" for key in keys
)


rule dynamics_scan_simulate:
    input:
        src=stage_sources("speckleml.dynamics.scan_cli:cmd_simulate"),
    output:
        states=directory(f"{SCN_DIR}/states.zarr"),
        frames=directory(f"{SCN_DIR}/frames.zarr"),
        test=directory(f"{SCN_DIR}/test_states.zarr"),
        sample=directory(f"{SCN_DIR}/sample.zarr"),
    params:
        system=scn_args(SCN_SYS, ("window", "turns", "radius", "extrapolation", "omega")),
        sample=scn_args(SCN_SAMPLE, ("detector", "probe_sigma", "defocus", "feature_size", "phase", "absorption",
                                     "beamstop", "lambda_max")),
        seed=config["seed"],
    threads: SCN_SYS["threads"]
    log:
        log_path("dynamics", "scan_simulate"),
    benchmark:
        bench_path("dynamics", "scan_simulate")
    conda:
        ENV
    shell:
        "speckleml dynamics scan-simulate {output.states} --frames {output.frames} --test-states {output.test}"
        " --sample {output.sample} {params.system} {params.sample} --seed {params.seed} --threads {threads}"
        " > {log} 2>&1"


rule dynamics_scan_train:
    input:
        states=f"{SCN_DIR}/states.zarr",
        frames=f"{SCN_DIR}/frames.zarr",
        sample=f"{SCN_DIR}/sample.zarr",
        src=stage_sources("speckleml.dynamics.scan_cli:cmd_train"),
    output:
        model=f"{SCN_DIR}/models/member{{member}}.pt",
        history=directory(f"{SCN_DIR}/models/member{{member}}_history.zarr"),
    params:
        training=scn_args(SCN_TRAIN, ("features", "hidden", "depth", "iterations", "learning_rate", "batch_series",
                                      "batch_time", "loss", "poisson_below", "rescale_t0", "method", "rtol", "atol",
                                      "max_num_steps", "spike_rule", "spike_factor", "spike_mad", "spike_window",
                                      "spike_patience", "lr_recovery", "min_learning_rate", "checkpoint_every",
                                      "snapshot_every")),
        seed=config["seed"],
        device=config["device"],
        # Not an output: it survives a killed job, and a rerun resumes from it.
        checkpoint=f"{SCN_DIR}/checkpoints/member{{member}}.ckpt",
    threads: SCN_TRAIN["threads"]
    resources:
        gpu=SCN_TRAIN["gpu"],
    log:
        log_path("dynamics", "scan_train_member{member}"),
    benchmark:
        bench_path("dynamics", "scan_train_member{member}")
    conda:
        ENV
    shell:
        "speckleml dynamics scan-train --states {input.states} --frames {input.frames} --model {output.model}"
        " --history {output.history} --checkpoint {params.checkpoint} --member {wildcards.member}"
        " {params.training} --seed {params.seed} --device {params.device} --threads {threads} > {log} 2>&1"


rule dynamics_scan_evaluate:
    input:
        test=f"{SCN_DIR}/test_states.zarr",
        frames=f"{SCN_DIR}/frames.zarr",
        sample=f"{SCN_DIR}/sample.zarr",
        models=expand(f"{SCN_DIR}/models/member{{member}}.pt", member=SCN_MEMBERS),
        src=stage_sources("speckleml.dynamics.scan_cli:cmd_evaluate"),
    output:
        metrics=report(f"{SCN_DIR}/metrics.csv", category="dynamics (scan)",
                       caption="../report/dynamics/scan_metrics.rst"),
        store=directory(f"{SCN_DIR}/evaluation.zarr"),
    params:
        evaluation=(f"--q-fractions {' '.join(q(v) for v in SCN_EVAL['q_fractions'])}"
                    f" {scn_args(SCN_EVAL, ('ring_width',))} {scn_args(SCN_EVAL, ('rtol', 'atol'), prefix='eval-')}"),
        device=config["device"],
    threads: SCN_EVAL["threads"]
    log:
        log_path("dynamics", "scan_evaluate"),
    benchmark:
        bench_path("dynamics", "scan_evaluate")
    conda:
        ENV
    shell:
        "speckleml dynamics scan-evaluate --test-states {input.test} --frames {input.frames}"
        " --models {input.models} --metrics {output.metrics} --store {output.store} {params.evaluation}"
        " --device {params.device} --threads {threads} > {log} 2>&1"


rule dynamics_scan_figures:
    input:
        evaluation=f"{SCN_DIR}/evaluation.zarr",
        src=stage_sources("speckleml.dynamics.scan_cli:cmd_figures"),
    output:
        fig7=report(f"{SCN_DIR}/figures/fig7.png", category="dynamics (scan)",
                    caption="../report/dynamics/scan_fig7.rst"),
        supp17=report(f"{SCN_DIR}/figures/supp17.png", category="dynamics (scan)",
                      caption="../report/dynamics/scan_supp17.rst"),
        supp18=report(f"{SCN_DIR}/figures/supp18.png", category="dynamics (scan)",
                      caption="../report/dynamics/scan_supp18.rst"),
    log:
        log_path("dynamics", "scan_figures"),
    benchmark:
        bench_path("dynamics", "scan_figures")
    conda:
        ENV
    shell:
        "speckleml dynamics scan-figures --evaluation {input.evaluation} --fig7 {output.fig7}"
        " --supp17 {output.supp17} --supp18 {output.supp18} > {log} 2>&1"


_dynamics_before_scan_targets = STUDY_TARGETS["dynamics"]
STUDY_TARGETS["dynamics"] = lambda: _dynamics_before_scan_targets() + [
    f"{SCN_DIR}/metrics.csv",
    f"{SCN_DIR}/figures/fig7.png",
    f"{SCN_DIR}/figures/supp17.png",
    f"{SCN_DIR}/figures/supp18.png",
]
