# alliance-outcomes: therapeutic alliance and outcomes in depression-treatment trials.
# Stages: clean -> score -> model -> render. Run `make run` (demo) or `make run CONFIG=my.yaml`.


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/outputs.smk"
include: "workflow/rules/clean.smk"
include: "workflow/rules/score.smk"
include: "workflow/rules/model.smk"
include: "workflow/rules/bootstrap.smk"
include: "workflow/rules/sensitivity.smk"
include: "workflow/rules/validate.smk"
include: "workflow/rules/power.smk"
include: "workflow/rules/render.smk"
include: "workflow/rules/provenance.smk"


rule all:
    default_target: True
    input:
        all_outputs(),
