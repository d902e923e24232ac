# clustering (paper 001, AI-NERD): simulated non-equilibrium XPCS with known dynamics classes
# -> C2 of 18 azimuthal sectors (shared correlation engine) -> min-max crops along the diagonal
# -> convolutional autoencoder -> k-means with an automatic elbow, UMAP, nearest neighbours
# -> the paper's Fig. 2-4 and Supp. Fig. 2-3; with the authors' real data, their Fig. 3.
import math

CLU = config["clustering"]
CLU_DIR = "results/clustering"
CLU_FIG = f"{CLU_DIR}/figures"
CLU_REAL_DIR = Path(CLU["real_data_dir"]) if CLU.get("real_data_dir") else None
CLU_REAL = CLU_REAL_DIR is not None and CLU_REAL_DIR.is_dir()
CLU_SIM = CLU["simulate"]
CLU_TRAIN = CLU["train"]
CLU_SWEEP = CLU["sweep"]
CLU_CLUSTER = CLU["cluster"]
CLU_POOLS = " ".join(map(str, CLU_TRAIN["pools"]))   # as the --pools option takes them
if CLU["crop"] % math.prod(CLU_TRAIN["pools"]):
    # a cross-key rule the schema cannot state: found here, before any job, not at the first training
    raise WorkflowError(f"invalid config: clustering.train.pools: {CLU_TRAIN['pools']} must divide clustering.crop "
                        f"{CLU['crop']} (the product of the pools is the crop side / the bottleneck map side)")
CLU_FIGURES = ["supp_fig2", "supp_fig3", "fig2", "fig3", "fig4", "relaxation"]
CLU_REAL_FIGURES = ["real_recon", "real_fig3", "real_umap"]


rule clustering_simulate:
    input:
        src=stage_sources("speckleml.clustering.cli:simulate"),
    output:
        library=directory(f"{CLU_DIR}/frames_library.zarr"),
        drive=directory(f"{CLU_DIR}/frames_drive.zarr"),
    params:
        per_class=CLU_SIM["per_class"],
        frames=CLU_SIM["frames"],
        drive_frames=CLU_SIM["drive_frames"],
        segment=CLU_SIM["segment"],
        crop=CLU["crop"],
        crop_bin=CLU["crop_bin"],
        size=CLU_SIM["size"],
        q_inner=CLU_SIM["q_inner"],
        q_outer=CLU_SIM["q_outer"],
        mean_counts=CLU_SIM["mean_counts"],
        anisotropy=CLU_SIM["anisotropy"],
        dt=CLU_SIM["dt"],
        seed=config["seed"],
    log:
        log_path("clustering", "simulate"),
    benchmark:
        bench_path("clustering", "simulate")
    conda:
        ENV
    shell:
        "speckleml clustering simulate {output.library} {output.drive} --per-class {params.per_class}"
        " --frames {params.frames} --drive-frames {params.drive_frames} --segment {params.segment}"
        " --crop {params.crop} --crop-bin {params.crop_bin} --size {params.size} --q-inner {params.q_inner} --q-outer {params.q_outer}"
        " --mean-counts {params.mean_counts} --anisotropy {params.anisotropy} --dt {params.dt}"
        " --seed {params.seed} > {log} 2>&1"


rule clustering_crops_library:
    input:
        frames=f"{CLU_DIR}/frames_library.zarr",
        src=stage_sources("speckleml.clustering.cli:crops"),
    output:
        directory(f"{CLU_DIR}/crops_library.zarr"),
    params:
        crop=CLU["crop"],
        crop_bin=CLU["crop_bin"],
        sectors=CLU["sectors"],
        normalization=CLU["normalization"],
        per_map=CLU["crops_per_map"],
        seed=config["seed"],
    log:
        log_path("clustering", "crops_library"),
    benchmark:
        bench_path("clustering", "crops_library")
    conda:
        ENV
    shell:
        "speckleml clustering crops {input.frames} {output} --crop {params.crop} --crop-bin {params.crop_bin} --sectors {params.sectors}"
        " --normalization {params.normalization} --per-map {params.per_map} --seed {params.seed} > {log} 2>&1"


rule clustering_crops_drive:
    input:
        frames=f"{CLU_DIR}/frames_drive.zarr",
        src=stage_sources("speckleml.clustering.cli:crops"),
    output:
        directory(f"{CLU_DIR}/crops_drive.zarr"),
    params:
        crop=CLU["crop"],
        crop_bin=CLU["crop_bin"],
        sectors=CLU["sectors"],
        normalization=CLU["normalization"],
        stride=CLU["drive_stride"],
        seed=config["seed"],
    log:
        log_path("clustering", "crops_drive"),
    benchmark:
        bench_path("clustering", "crops_drive")
    conda:
        ENV
    shell:
        "speckleml clustering crops {input.frames} {output} --crop {params.crop} --crop-bin {params.crop_bin} --sectors {params.sectors}"
        " --normalization {params.normalization} --stride {params.stride} --seed {params.seed} > {log} 2>&1"


rule clustering_train:
    input:
        crops=f"{CLU_DIR}/crops_library.zarr",
        src=stage_sources("speckleml.clustering.cli:train"),
    output:
        model=f"{CLU_DIR}/model.pt",
        history=f"{CLU_DIR}/train_history.csv",
        metrics=f"{CLU_DIR}/train_metrics.json",
    params:
        latent=CLU_TRAIN["latent"],
        pools=CLU_POOLS,
        epochs=CLU_TRAIN["epochs"],
        batch_size=CLU_TRAIN["batch_size"],
        lr=CLU_TRAIN["lr"],
        cycle_epochs=CLU_TRAIN["cycle_epochs"],
        val_fraction=CLU_TRAIN["val_fraction"],
        seed=config["seed"],
        device=config["device"],
    threads: 1
    resources:
        gpu=1,
    log:
        log_path("clustering", "train"),
    benchmark:
        bench_path("clustering", "train")
    conda:
        ENV
    shell:
        "speckleml clustering train {input.crops} {output.model} --latent {params.latent} --pools {params.pools}"
        " --epochs {params.epochs} --batch-size {params.batch_size} --lr {params.lr}"
        " --cycle-epochs {params.cycle_epochs} --val-fraction {params.val_fraction}"
        " --history {output.history} --metrics {output.metrics} --threads {threads}"
        " --seed {params.seed} --device {params.device} > {log} 2>&1"


rule clustering_train_sweep:
    input:
        crops=f"{CLU_DIR}/crops_library.zarr",
        src=stage_sources("speckleml.clustering.cli:train"),
    output:
        model=f"{CLU_DIR}/sweep/latent{{latent}}.pt",
        metrics=f"{CLU_DIR}/sweep/latent{{latent}}.json",
    wildcard_constraints:
        latent=r"\d+",
    params:
        epochs=CLU_SWEEP["epochs"],
        pools=CLU_POOLS,
        batch_size=CLU_TRAIN["batch_size"],
        lr=CLU_TRAIN["lr"],
        cycle_epochs=CLU_TRAIN["cycle_epochs"],
        val_fraction=CLU_TRAIN["val_fraction"],
        seed=config["seed"],
        device=config["device"],
    threads: 1
    resources:
        gpu=1,
    log:
        log_path("clustering", "train_sweep_{latent}"),
    benchmark:
        bench_path("clustering", "train_sweep_{latent}")
    conda:
        ENV
    shell:
        "speckleml clustering train {input.crops} {output.model} --latent {wildcards.latent} --pools {params.pools}"
        " --epochs {params.epochs} --batch-size {params.batch_size} --lr {params.lr}"
        " --cycle-epochs {params.cycle_epochs} --val-fraction {params.val_fraction}"
        " --metrics {output.metrics} --threads {threads}"
        " --seed {params.seed} --device {params.device} > {log} 2>&1"


rule clustering_encode:
    input:
        model=f"{CLU_DIR}/model.pt",
        crops=f"{CLU_DIR}/crops_{{dataset}}.zarr",
        src=stage_sources("speckleml.clustering.cli:encode"),
    output:
        directory(f"{CLU_DIR}/latents_{{dataset}}.zarr"),
    wildcard_constraints:
        dataset="library|drive",
    params:
        device=config["device"],
    log:
        log_path("clustering", "encode_{dataset}"),
    benchmark:
        bench_path("clustering", "encode_{dataset}")
    conda:
        ENV
    shell:
        "speckleml clustering encode {input.model} {input.crops} {output} --device {params.device} > {log} 2>&1"


rule clustering_cluster:
    input:
        latents=f"{CLU_DIR}/latents_library.zarr",
        drive=f"{CLU_DIR}/latents_drive.zarr",
        src=stage_sources("speckleml.clustering.cli:cluster"),
    output:
        assignments=f"{CLU_DIR}/clusters.csv",
        elbow=f"{CLU_DIR}/elbow.csv",
        scores=f"{CLU_DIR}/scores.csv",
        drive=f"{CLU_DIR}/clusters_drive.csv",
    params:
        k_min=CLU_CLUSTER["k_min"],
        k_max=CLU_CLUSTER["k_max"],
        embedding=CLU_CLUSTER["embedding"],
        n_neighbors=CLU_CLUSTER["n_neighbors"],
        min_dist=CLU_CLUSTER["min_dist"],
        latent_transform=CLU_CLUSTER["latent_transform"],
        seed=config["seed"],
    log:
        log_path("clustering", "cluster"),
    benchmark:
        bench_path("clustering", "cluster")
    conda:
        ENV
    shell:
        "speckleml clustering cluster {input.latents} --k-min {params.k_min} --k-max {params.k_max}"
        " --embedding {params.embedding} --n-neighbors {params.n_neighbors} --min-dist {params.min_dist}"
        " --latent-transform {params.latent_transform}"
        " --assignments {output.assignments} --elbow {output.elbow} --scores {output.scores}"
        " --apply {input.drive} --apply-out {output.drive} --seed {params.seed} > {log} 2>&1"


rule clustering_similar:
    input:
        model=f"{CLU_DIR}/model.pt",
        latents=f"{CLU_DIR}/latents_library.zarr",
        crops=f"{CLU_DIR}/crops_library.zarr",
        src=stage_sources("speckleml.clustering.cli:similar"),
    output:
        neighbours=f"{CLU_DIR}/neighbours.csv",
        precision=f"{CLU_DIR}/neighbours_precision.csv",
    params:
        query_class=CLU["similar"]["query_class"],
        n_queries=CLU["similar"]["n_queries"],
        neighbours=CLU["similar"]["neighbours"],
        exclude_series="--exclude-series" if CLU["similar"]["exclude_series"] else "--no-exclude-series",
        seed=config["seed"],
        device=config["device"],
    log:
        log_path("clustering", "similar"),
    benchmark:
        bench_path("clustering", "similar")
    conda:
        ENV
    shell:
        "speckleml clustering similar {input.model} {input.latents} --crops {input.crops}"
        " --query-class {params.query_class} --n-queries {params.n_queries} -k {params.neighbours}"
        " {params.exclude_series} --out {output.neighbours} --precision {output.precision}"
        " --seed {params.seed} --device {params.device} > {log} 2>&1"


rule clustering_figures:
    input:
        crops=f"{CLU_DIR}/crops_library.zarr",
        clusters=f"{CLU_DIR}/clusters.csv",
        elbow=f"{CLU_DIR}/elbow.csv",
        scores=f"{CLU_DIR}/scores.csv",
        drive_frames=f"{CLU_DIR}/frames_drive.zarr",
        drive_clusters=f"{CLU_DIR}/clusters_drive.csv",
        neighbours=f"{CLU_DIR}/neighbours.csv",
        sweep=expand(f"{CLU_DIR}/sweep/latent{{latent}}.json", latent=CLU_SWEEP["latents"]),
        src=stage_sources("speckleml.clustering.cli:figures"),
    output:
        **{
            name: report(f"{CLU_FIG}/{name}.png", category="clustering", caption=f"../report/clustering/{name}.rst")
            for name in CLU_FIGURES
        },
    params:
        out_dir=lambda wildcards, output: str(Path(output[0]).parent),
        seed=config["seed"],
    log:
        log_path("clustering", "figures"),
    benchmark:
        bench_path("clustering", "figures")
    conda:
        ENV
    shell:
        "speckleml clustering figures --crops {input.crops} --clusters {input.clusters}"
        " --elbow {input.elbow} --scores {input.scores}"
        " --drive-frames {input.drive_frames} --drive-clusters {input.drive_clusters}"
        " --neighbours {input.neighbours} --sweep {input.sweep} --out-dir {params.out_dir}"
        " --seed {params.seed} > {log} 2>&1"


if CLU_REAL:

    rule clustering_real:
        input:
            data=str(CLU_REAL_DIR),
            model=f"{CLU_DIR}/model.pt",
            src=stage_sources("speckleml.clustering.cli:real"),
        output:
            summary=f"{CLU_DIR}/real/real_summary.json",
            clusters=f"{CLU_DIR}/real/real_clusters.csv",
            elbow=f"{CLU_DIR}/real/real_elbow.csv",
            figures=[
                report(f"{CLU_DIR}/real/{name}.png", category="clustering", caption=f"../report/clustering/{name}.rst")
                for name in CLU_REAL_FIGURES
            ],
        params:
            out_dir=lambda wildcards, output: str(Path(output.summary).parent),
            k_min=CLU_CLUSTER["k_min"],
            k_max=CLU_CLUSTER["k_max"],
            embedding=CLU_CLUSTER["embedding"],
            n_neighbors=CLU_CLUSTER["n_neighbors"],
            min_dist=CLU_CLUSTER["min_dist"],
            latent_transform=CLU_CLUSTER["latent_transform"],
            seed=config["seed"],
        log:
            log_path("clustering", "real"),
        benchmark:
            bench_path("clustering", "real")
        conda:
            ENV
        shell:
            "speckleml clustering real {input.data} --model {input.model} --out-dir {params.out_dir}"
            " --k-min {params.k_min} --k-max {params.k_max} --embedding {params.embedding}"
            " --n-neighbors {params.n_neighbors} --min-dist {params.min_dist} --latent-transform {params.latent_transform}"
            " --seed {params.seed} > {log} 2>&1"


STUDY_TARGETS["clustering"] = lambda: (
    [f"{CLU_FIG}/{name}.png" for name in CLU_FIGURES]
    + [f"{CLU_DIR}/scores.csv", f"{CLU_DIR}/neighbours_precision.csv"]
    + ([f"{CLU_DIR}/real/{name}.png" for name in CLU_REAL_FIGURES] + [f"{CLU_DIR}/real/real_summary.json"] if CLU_REAL else [])
)
