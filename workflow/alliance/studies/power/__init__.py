"""Simulation-based power and sample size for alliance effects (issue #15, `make power`).

Why: alliance effects are small and live at three levels, so how many therapists, patients
and sessions a trial needs is a simulation question. Each design cell x replicate simulates a
trial (`alliance.simulate`), runs the pipeline's clean -> score -> model path on it (the
recovery study's helpers) and keeps the tested terms' estimates and p-values.

Modules: `study` (the `power` block of config/power.yaml: schema, grid cells), `calibrate`
(simulator parameters from a finished analysis; effect sizes on the raw or r scale; dropout
rate -> hazard intercept), `trials` (one replicate, one shard), `results` (gather, power with
Wilson CIs, smallest designs, Markdown), `closed_form` (exact noncentral-t power of a balanced
two-level design and its direct simulation through the engine, the check of the machinery).
"""
