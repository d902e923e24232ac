# speckleml: coherent X-ray scattering (speckle) to physics, four published methods end to end.
#
#   snakemake --profile profiles/default                          # laptop scale (config.yaml)
#   snakemake --profile profiles/slurm --configfile config/paper.yaml   # paper scale on SLURM
#   snakemake --report results/report.html                         # figures and tables
from snakemake.utils import min_version

min_version("9.20")


configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/xpcs.smk"
include: "rules/dynamics.smk"
include: "rules/dynamics_lotka_volterra.smk"
include: "rules/dynamics_swarm.smk"
include: "rules/dynamics_scan.smk"
include: "rules/clustering.smk"
include: "rules/disk_count.smk"
include: "rules/shear.smk"
include: "rules/report.smk"


report: "report/workflow.rst"


rule all:
    input:
        all_targets(),
    default_target: True
