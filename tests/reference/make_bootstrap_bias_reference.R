# Writes tests/reference/bootstrap_bias_reference.csv: the bootstrap bias correction of
# relapse_cox on sim_relapse_small.csv, computed with R boot on the data sets the pipeline's
# conditional model-based bootstrap draws (Davison & Hinkley 1997, Algorithm 7.3), rebuilt here
# with survival's own estimates from the uniforms the pipeline uses (bootstrap_uniforms.csv,
# written by make_bootstrap_uniforms.py: 30 replicates), so tests/test_models_cox_bias.py can
# compare replicate by replicate. Run from the repository root:
#   Rscript tests/reference/make_bootstrap_bias_reference.R
# Needs (Debian): r-base-core r-cran-survival r-cran-boot. Deterministic: fixed data and uniforms.
#
# A replicate: patient i's event time is the first event time t of the data with
# H0(t) exp(x_i'b) >= -log(u_event,i), H0 the Breslow baseline cumulative hazard at b
# (survfit.coxph, ctype = 1, at x = 0); none: no event. A censored patient keeps their time; a
# patient with an event draws the first censoring time c > y_i with G(c) / G(y_i) <= u_cens,i, G
# the Kaplan-Meier of the censoring times (survfit on 1 - status); none: followed to the end
# (the last observed time). boot(sim = "parametric") takes these data sets through ran.gen;
# its t0 and t give the bias (mean(t) - t0), the corrected estimate 2 t0 - mean(t) and the
# bootstrap SE. Cases: firth_efron (coxphf's estimator with Efron ties, firth_coxph.R's
# firth_max, started at the estimate) and mle_efron (coxph itself; section "flag": 1 for a
# replicate whose coefficient coxph says may be infinite, left out of the bias).
source("tests/reference/common.R")  # rows, add(), write_rows()
source("tests/reference/firth_coxph.R")
suppressPackageStartupMessages(library(boot))

rel <- read.csv("tests/reference/sim_relapse_small.csv")
uni <- read.csv("tests/reference/bootstrap_uniforms.csv")
f_rel <- Surv(relapse_time, relapse_event) ~ alliance_last + alliance_mean + baseline_symptom +
  armCBT + armIMI.CM + armIPT
covs <- c("alliance_last", "alliance_mean", "baseline_symptom", "armCBT", "armIMI.CM", "armIPT")
n_boot <- max(uni$replicate)

model_pieces <- function(beta) {
  at <- coxph(f_rel, data = rel, ties = "efron", init = beta,
              control = coxph.control(iter.max = 0))
  zero <- as.data.frame(setNames(as.list(rep(0, length(covs))), covs))
  sf <- survfit(at, newdata = zero, ctype = 1, se.fit = FALSE)
  km <- survfit(Surv(relapse_time, 1 - relapse_event) ~ 1, data = rel)
  list(risk = exp(as.matrix(rel[, covs]) %*% beta)[, 1],
       ev = sf$time[sf$n.event > 0], h0 = sf$cumhaz[sf$n.event > 0],
       ct = km$time[km$n.event > 0], g = km$surv[km$n.event > 0])
}

draw_data <- function(m, k) {
  ue <- unlist(uni[uni$replicate == k & uni$draw == "event", -(1:2)])
  uc <- unlist(uni[uni$replicate == k & uni$draw == "censoring", -(1:2)])
  y <- rel$relapse_time
  d <- rel$relapse_event
  t_new <- numeric(nrow(rel))
  d_new <- numeric(nrow(rel))
  for (i in seq_len(nrow(rel))) {
    hit <- which(m$h0 * m$risk[i] >= -log(ue[i]))
    te <- if (length(hit)) m$ev[min(hit)] else Inf
    if (d[i] == 0) {
      tc <- y[i]
    } else {
      g_y <- if (any(m$ct <= y[i])) m$g[max(which(m$ct <= y[i]))] else 1
      ok <- which(m$ct > y[i] & m$g <= uc[i] * g_y)
      tc <- if (length(ok)) m$ct[min(ok)] else Inf
    }
    t_new[i] <- min(te, tc)
    d_new[i] <- as.numeric(te <= tc)
  }
  t_new[!is.finite(t_new)] <- max(y)
  out <- rel
  out$relapse_time <- t_new
  out$relapse_event <- d_new
  out
}

on_model <- function(statistic, beta) {
  m <- model_pieces(beta)
  k <- 0
  next_data <- function(data, mle) {
    k <<- k + 1
    draw_data(mle, k)
  }
  boot(rel, statistic, R = n_boot, sim = "parametric", ran.gen = next_data, mle = m)
}

add_boot <- function(case, b, kept = seq_len(nrow(b$t))) {
  terms <- names(b$t0)
  bias <- colMeans(b$t) - b$t0
  for (j in seq_along(terms)) {
    add(case, "coef", terms[j], "estimate", b$t0[j])
    add(case, "coef", terms[j], "bias", bias[j])
    add(case, "coef", terms[j], "corrected", b$t0[j] - bias[j])
    add(case, "coef", terms[j], "bootstrap_se", sd(b$t[, j]))
    for (r in seq_len(nrow(b$t))) {
      add(case, "replicate", terms[j], sprintf("b%03d", kept[r]), b$t[r, j])
    }
  }
}

# coxph warns when a coefficient may be infinite (monotone likelihood in that replicate): the
# replicate is flagged and left out of the bias, as the pipeline leaves out such a refit
infinite <- logical(0)
mle <- function(d) {
  flag <- FALSE
  fit <- withCallingHandlers(coxph(f_rel, data = d, ties = "efron"), warning = function(w) {
    if (grepl("may be infinite", conditionMessage(w))) flag <<- TRUE
    invokeRestart("muffleWarning")
  })
  infinite <<- c(infinite, flag)
  coef(fit)
}
b_mle <- on_model(mle, coef(coxph(f_rel, data = rel, ties = "efron")))
flagged <- infinite[-1]  # the first call is t0 on the data
b_mle$t <- b_mle$t[!flagged, , drop = FALSE]
add_boot("mle_efron", b_mle, which(!flagged))
for (r in seq_along(flagged)) add("mle_efron", "flag", "", sprintf("b%03d", r), flagged[r])

full <- firth_max(rep(0, length(covs)), f_rel, rel, "efron")$beta
names(full) <- covs
firth <- function(d) {
  beta <- firth_max(full, f_rel, d, "efron")$beta
  names(beta) <- covs
  beta
}
add_boot("firth_efron", on_model(firth, full))

write_rows("tests/reference/bootstrap_bias_reference.csv")
