"""Statistical engines behind small, swappable interfaces, each checked against R.

- `mixed`: linear and binomial mixed models (lme4 / lmerTest semantics) via `mixedlm`.
- `survival`: Cox models (Efron ties, cluster-robust SEs), cox.zph, Kaplan-Meier, log-rank.
- `meta`: random-effects pooling of correlations (Fisher z; REML or DerSimonian-Laird).
- `tidy`: the coefficient-table layout they all share.
- `bootstrap`: replicate seeds, shard ranges and percentile intervals for resampling studies.
- `threads`: one BLAS thread while an engine fits.
"""
