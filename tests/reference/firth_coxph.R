# Firth-penalised Cox regression with survival only (as CRAN coxphf, which is not on Debian and
# has Breslow ties only): maximise l(b) + 0.5 log det I(b), profile-likelihood CIs and penalised
# likelihood-ratio p values. Sourced by make_firth_reference.R; also the verbatim refit that
# fit.json's `formula_r_survival` names for a Firth fit with Efron ties:
#   source("tests/reference/firth_coxph.R")
#   firth_coxph(Surv(time, status) ~ x1 + x2, data = data, ties = "efron")
# l(b) and I(b) come from coxph itself at fixed b (init = b, iter.max = 0); the maximum from
# optim(BFGS, reltol 1e-14, central differences), restarted until it stops moving; the CI bounds
# from uniroot on the profile deviance (other coefficients re-maximised at each trial value).
suppressPackageStartupMessages(library(survival))

firth_loglik <- function(beta, formula, data, ties, penalty = 0.5) {
  fit <- coxph(formula, data = data, ties = ties, init = beta,
               control = coxph.control(iter.max = 0))
  info_logdet <- -as.numeric(determinant(fit$var, logarithm = TRUE)$modulus)
  c(penalised = fit$loglik[2] + penalty * info_logdet, loglik = fit$loglik[2])
}

firth_max <- function(start, formula, data, ties, fixed = integer(0), penalty = 0.5) {
  free <- setdiff(seq_along(start), fixed)
  full <- function(b) { beta <- start; beta[free] <- b; beta }
  fn <- function(b) -firth_loglik(full(b), formula, data, ties, penalty)[["penalised"]]
  if (length(free) == 0) return(list(beta = start, value = -fn(numeric(0))))
  par <- start[free]
  prev <- Inf
  for (i in 1:20) {
    o <- optim(par, fn, method = "BFGS",
               control = list(reltol = 1e-14, maxit = 5000, ndeps = rep(1e-6, length(par))))
    par <- o$par
    if (abs(prev - o$value) < 1e-13) break
    prev <- o$value
  }
  list(beta = full(par), value = -o$value)
}

firth_coxph <- function(formula, data, ties = "efron", level = 0.95, penalty = 0.5,
                        cluster = NULL) {
  mle <- coxph(formula, data = data, ties = ties)
  p <- length(coef(mle))
  best <- firth_max(rep(0, p), formula, data, ties, penalty = penalty)
  beta <- best$beta
  names(beta) <- names(coef(mle))
  at <- coxph(formula, data = data, ties = ties, init = beta,
              control = coxph.control(iter.max = 0))
  se <- sqrt(diag(at$var))
  crit <- qchisq(level, 1)
  profile_dev <- function(j, b) {
    start <- beta
    start[j] <- b
    2 * (best$value - firth_max(start, formula, data, ties, fixed = j, penalty)$value)
  }
  bound <- function(j, side) {
    f <- function(b) profile_dev(j, b) - crit
    step <- sqrt(crit) * se[j]
    inner <- beta[j]
    outer <- beta[j] + side * step
    while (f(outer) < 0) {
      inner <- outer
      outer <- beta[j] + 2 * (outer - beta[j])
      if (abs(outer - beta[j]) > 100 * step) return(side * Inf)
    }
    uniroot(f, sort(c(inner, outer)), tol = 1e-11)$root
  }
  lo <- vapply(seq_len(p), bound, 0, side = -1)
  hi <- vapply(seq_len(p), bound, 0, side = 1)
  chisq <- vapply(seq_len(p), function(j) max(0, profile_dev(j, 0)), 0)
  out <- list(coefficients = beta, se = se, ci_low = lo, ci_high = hi, chisq = chisq,
              p = pchisq(chisq, 1, lower.tail = FALSE),
              loglik_penalised = best$value,
              loglik = firth_loglik(beta, formula, data, ties, penalty)[["loglik"]],
              loglik_penalised_null = firth_loglik(rep(0, p), formula, data, ties,
                                                   penalty)[["penalised"]])
  if (!is.null(cluster)) {
    # R's robust variance at the penalised estimate: coxph(init = b*, iter.max = 0) with
    # cluster(); the G / (G - 1) small-sample factor on top
    rob <- coxph(update(formula, as.formula(paste(". ~ . + cluster(", cluster, ")"))),
                 data = data, ties = ties, init = beta,
                 control = coxph.control(iter.max = 0))
    out$robust_se <- sqrt(diag(rob$var))
    g <- length(unique(data[[cluster]]))
    out$robust_cr1_se <- sqrt(diag(rob$var) * g / (g - 1))
    out$n_clusters <- g
  }
  out
}
