# The Snakemake report: `snakemake --report results/report.html` collects every output
# declared with report(...) in the study rule files, grouped by category (study).
