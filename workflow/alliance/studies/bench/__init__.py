"""Benchmarks: pipeline wall time and peak memory per stage, fit time per model, engines.

`make bench` (python -m alliance.studies.bench) writes `results/bench/bench.json` and `bench.md`:

- pipeline: the real Snakefile run fresh, then re-run as a no-op, on the demo trial and on
  simulated trials of about 10k / 120k / 600k session rows (`alliance simulate`, fixed seed,
  12-13 patients per therapist as in the demo). Each run's process tree is sampled for memory:
  per stage (script) the longest job, the summed job time and the peak RSS of one job; for the
  whole run the wall time, the largest single process (exact, from wait4) and the concurrent
  peak of the tree (sampled);
- fit time of every model (results/models/<id>/timing.json, as the pipeline wrote it);
- engines: the `symptoms_growth` frame of each trial fitted with mixedlm (our engine, raw and
  through alliance.engine.mixed.fit_lmm with Satterthwaite df), lme4 (Rscript, when installed)
  and statsmodels MixedLM for the two models it can also fit (below a row limit: it takes
  minutes at 600k rows);
- binomial GLMMs: one model of each form the pipeline fits (dropout_hazard, suicidality,
  missed_sessions, adherence_alliance) refitted from its frame in a fresh process: fit time and
  peak RSS, beside lme4's time as tests/reference/make_glmm_scale_reference.R recorded it in
  tests/reference/glmm_scale_timings.csv (never run here; bench.md says which are missing).

Timings are measurements, never assertions: the machine (cores, load average before and after,
whether Python loads compiled bytecode) is recorded beside them, because on a shared 2-core
machine the same run can take twice as long.

Modules: `trials` (the simulated data), `pipeline` (Snakefile runs), `sampler` (process-tree
time and memory), `engines` (mixedlm / lme4 / statsmodels), `glmm` (the binomial GLMMs),
`report` (bench.json, bench.md), `cli` (the driver and `main`).
"""
