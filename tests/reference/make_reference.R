# Writes the R reference fixtures that tests/test_engine_*.py compare against.
#
# Run from the repository root:   Rscript tests/reference/make_reference.R
# Needs (Debian): r-base-core r-cran-lme4 r-cran-lmertest r-cran-survival r-cran-metafor
#                 r-cran-hsaur3 r-cran-cardata (metafor pulls in r-cran-metadat)
# The tests never need R: they read the CSVs this script writes. Re-run it only to refresh them;
# the simulated data sets are written too, so Python always fits exactly the data R fitted.
#
# Output (all in tests/reference/):
#   mixed_reference.csv, survival_reference.csv, meta_reference.csv  long tables:
#       case, section, term, stat, value   (value printed with 17 significant digits)
#   km_lung_reference.csv     survfit(Surv(time, status) ~ sex, lung) table, log CI (R default)
#   sim_threelevel.csv, sim_singular.csv, sim_dropout.csv, sim_cox_cluster.csv, molloy2014.csv
#   versions.txt              R and package versions used

suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(survival)
  library(metafor)
  library(HSAUR3)
  library(carData)
})

out_dir <- "tests/reference"
source("tests/reference/common.R")  # rows, add(), write_rows()
flush_rows <- function(file) {
  write_rows(file.path(out_dir, file))
  rows <<- list()
}
write_data <- function(df, file) {
  write.csv(df, file.path(out_dir, file), row.names = FALSE)
}

# ---- mixed models ----------------------------------------------------------------------------
add_lmer <- function(case, fit) {
  # lmerTest summary: Estimate, SE, Satterthwaite df, t, p
  co <- summary(fit)$coefficients
  for (term in rownames(co)) {
    add(case, "fixef", term, "estimate", co[term, "Estimate"])
    add(case, "fixef", term, "std_error", co[term, "Std. Error"])
    add(case, "fixef", term, "df", co[term, "df"])
    add(case, "fixef", term, "statistic", co[term, "t value"])
    add(case, "fixef", term, "p_value", co[term, "Pr(>|t|)"])
  }
  add_varcorr(case, fit)
  add(case, "fit", "", "loglik", as.numeric(logLik(fit)))
  add(case, "fit", "", "aic", AIC(fit))
  add(case, "fit", "", "bic", BIC(fit))
  add(case, "fit", "", "deviance_or_reml_crit",
      if (isREML(fit)) REMLcrit(fit) else deviance(fit))
  add(case, "fit", "", "singular", as.numeric(isSingular(fit)))
  add(case, "fit", "", "n_obs", nobs(fit))
  for (g in names(ngrps(fit))) add(case, "n_groups", g, "n", ngrps(fit)[[g]])
}
add_varcorr <- function(case, fit) {
  vc <- as.data.frame(VarCorr(fit))
  for (i in seq_len(nrow(vc))) {
    t2 <- ifelse(is.na(vc$var2[i]), "", vc$var2[i])
    t1 <- ifelse(is.na(vc$var1[i]), "", vc$var1[i])
    term <- paste(vc$grp[i], t1, t2, sep = "|")
    add(case, "varcorr", term, "vcov", vc$vcov[i])
    add(case, "varcorr", term, "sdcor", vc$sdcor[i])
  }
}
add_ranef <- function(case, fit) {
  re <- as.data.frame(ranef(fit, condVar = TRUE))
  for (i in seq_len(nrow(re))) {
    term <- paste(re$grpvar[i], re$term[i], re$grp[i], sep = "|")
    add(case, "ranef", term, "condval", re$condval[i])
    add(case, "ranef", term, "condsd", re$condsd[i])
  }
}

# sleepstudy, REML (lme4 README example)
fit <- lmerTest::lmer(Reaction ~ Days + (Days | Subject), sleepstudy, REML = TRUE)
add_lmer("sleepstudy_reml", fit)
add_ranef("sleepstudy_reml", fit)
# population-level prediction with a fixed-effect CI from vcov (re.form = NA)
nd <- data.frame(Days = c(0, 4.5, 9))
X <- model.matrix(~Days, nd)
pred <- predict(fit, newdata = nd, re.form = NA)
se_pred <- sqrt(diag(X %*% as.matrix(vcov(fit)) %*% t(X)))
for (i in seq_len(nrow(nd))) {
  add("sleepstudy_reml", "predict", format(nd$Days[i]), "fit", pred[i])
  add("sleepstudy_reml", "predict", format(nd$Days[i]), "se_fit", se_pred[i])
}

# BtheB (HSAUR3 calls the months bdi.3m/bdi.5m; HSAUR and the book use 2/4/6/8)
data("BtheB", package = "HSAUR3")
BtheB$subject <- factor(rownames(BtheB))
nobs_bt <- nrow(BtheB)
bt_long <- reshape(BtheB, idvar = "subject",
                   varying = c("bdi.2m", "bdi.3m", "bdi.5m", "bdi.8m"),
                   direction = "long")
bt_long$time <- rep(c(2, 4, 6, 8), rep(nobs_bt, 4))
bt_long <- bt_long[!is.na(bt_long$bdi), ]
fit <- lmerTest::lmer(bdi ~ bdi.pre + time + treatment + drug + length + (1 | subject),
                      data = bt_long, REML = FALSE)
add_lmer("btheb_ri_ml", fit)
fit <- lmerTest::lmer(bdi ~ bdi.pre + time + treatment + drug + length + (time | subject),
                      data = bt_long, REML = FALSE)
add_lmer("btheb_rs_ml", fit)

# cbpp binomial GLMM, Laplace
fit <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, family = binomial)
add_glmer <- function(case, fit) {
  b <- fixef(fit)
  se_h <- sqrt(diag(as.matrix(vcov(fit, use.hessian = TRUE))))
  # use.hessian = FALSE is the RX-based vcov (beta conditional on theta); kept for comparison
  se_rx <- sqrt(diag(as.matrix(suppressWarnings(vcov(fit, use.hessian = FALSE)))))
  for (term in names(b)) {
    add(case, "fixef", term, "estimate", b[[term]])
    add(case, "fixef", term, "std_error", se_h[[term]])
    add(case, "fixef", term, "std_error_rx", se_rx[[term]])
    add(case, "fixef", term, "statistic", b[[term]] / se_h[[term]])
  }
  add_varcorr(case, fit)
  add(case, "fit", "", "loglik", as.numeric(logLik(fit)))
  add(case, "fit", "", "aic", AIC(fit))
  add(case, "fit", "", "bic", BIC(fit))
  add(case, "fit", "", "minus2loglik", -2 * as.numeric(logLik(fit)))
  add(case, "fit", "", "singular", as.numeric(isSingular(fit)))
  add(case, "fit", "", "n_obs", nobs(fit))
  for (i in seq_along(getME(fit, "theta"))) add(case, "theta", "", paste0("theta", i),
                                                getME(fit, "theta")[[i]])
}
add_glmer("cbpp_laplace", fit)
# lme4's default PIRLS tolerance (tolPwrss = 1e-7) leaves the inner conditional-mode solve
# slightly inexact; with 1e-10 the Laplace deviance is exact and the fit is the true optimum.
# This is the call alliance.engine.mixed puts in formula_r.
tight <- glmerControl(tolPwrss = 1e-10)
fit <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, family = binomial,
             control = tight)
add_glmer("cbpp_laplace_tight", fit)

# Simulated three-level data: sessions in patients in therapists (patient ids unique overall,
# patient_local repeats across therapists for the nested a/b syntax).
set.seed(20240601)
n_ther <- 12; n_pat <- 8; n_ses <- 6
ther <- rep(seq_len(n_ther), each = n_pat * n_ses)
pat <- rep(seq_len(n_ther * n_pat), each = n_ses)
pat_local <- rep(rep(seq_len(n_pat), each = n_ses), n_ther)
time <- rep(0:(n_ses - 1), n_ther * n_pat)
u_t <- rnorm(n_ther, 0, 1.2)[ther]
u_p0 <- rnorm(n_ther * n_pat, 0, 3)[pat]
u_p1 <- rnorm(n_ther * n_pat, 0, 0.5)[pat]
x <- round(rnorm(length(pat), 0, 1), 4)
y <- round(20 + u_t + u_p0 + (-1 + u_p1) * time + 0.8 * x + rnorm(length(pat), 0, 2), 4)
sim3 <- data.frame(therapist = paste0("T", ther), patient = paste0("P", pat),
                   patient_local = pat_local, time = time, x = x, y = y)
write_data(sim3, "sim_threelevel.csv")
sim3$patient_local <- factor(sim3$patient_local)
fit <- lmerTest::lmer(y ~ x + time + (1 + time | patient) + (1 | therapist), sim3)
add_lmer("sim3_slope_reml", fit)
fit <- lmerTest::lmer(y ~ x + time + (1 | therapist / patient_local), sim3)
add_lmer("sim3_nested_reml", fit)
fit <- lmerTest::lmer(y ~ x + time + (1 | therapist) + (1 | therapist:patient_local), sim3)
add_lmer("sim3_explicit_reml", fit)

# Singular fit: no group variance in the generating model; keep the first seed lme4 calls singular
for (seed in 1:200) {
  set.seed(seed)
  g <- rep(seq_len(10), each = 5)
  xs <- round(rnorm(50), 4)
  ys <- round(1 + 0.5 * xs + rnorm(50), 4)
  sing <- data.frame(g = paste0("G", g), x = xs, y = ys)
  fit <- suppressMessages(lmerTest::lmer(y ~ x + (1 | g), sing))
  if (isSingular(fit)) break
}
write_data(sing, "sim_singular.csv")
add_lmer("singular_reml", fit)
add("singular_reml", "fit", "", "seed", seed)

# Bernoulli GLMM: patient dropout ~ early alliance + (1 | therapist)
set.seed(20240602)
n_t <- 25; per <- 12
th <- rep(seq_len(n_t), each = per)
alliance <- round(rnorm(n_t * per, 0, 1), 4)
eta <- -1.3 - 0.5 * alliance + rnorm(n_t, 0, 0.6)[th]
drop <- rbinom(length(eta), 1, plogis(eta))
dd <- data.frame(therapist = paste0("T", th), alliance = alliance, drop = drop)
write_data(dd, "sim_dropout.csv")
fit <- glmer(drop ~ alliance + (1 | therapist), dd, family = binomial)
add_glmer("dropout_laplace", fit)
fit <- glmer(drop ~ alliance + (1 | therapist), dd, family = binomial, control = tight)
add_glmer("dropout_laplace_tight", fit)

flush_rows("mixed_reference.csv")

# ---- survival ---------------------------------------------------------------------------------
add_cox <- function(case, fit) {
  s <- summary(fit)$coefficients
  for (term in rownames(s)) {
    add(case, "coef", term, "estimate", s[term, "coef"])
    add(case, "coef", term, "std_error", s[term, "se(coef)"])
    if ("robust se" %in% colnames(s)) add(case, "coef", term, "robust_se", s[term, "robust se"])
    add(case, "coef", term, "statistic", s[term, "z"])
    add(case, "coef", term, "p_value", s[term, "Pr(>|z|)"])
  }
  add(case, "fit", "", "loglik", fit$loglik[2])
  add(case, "fit", "", "loglik_null", fit$loglik[1])
  add(case, "fit", "", "n", fit$n)
  add(case, "fit", "", "n_events", fit$nevent)
  add(case, "fit", "", "concordance", fit$concordance[["concordance"]])
}
add_zph <- function(case, fit, transform) {
  z <- cox.zph(fit, transform = transform)$table
  for (term in rownames(z)) {
    add(case, paste0("zph_", transform), term, "chisq", z[term, "chisq"])
    add(case, paste0("zph_", transform), term, "df", z[term, "df"])
    add(case, paste0("zph_", transform), term, "p", z[term, "p"])
  }
}

fit <- coxph(Surv(time, status) ~ age + sex, lung, ties = "efron")
add_cox("lung_efron", fit)
for (tr in c("km", "identity", "rank", "log")) add_zph("lung_efron", fit, tr)
fit_b <- coxph(Surv(time, status) ~ age + sex, lung, ties = "breslow")
add_cox("lung_breslow", fit_b)

sd_lung <- survdiff(Surv(time, status) ~ sex, lung)
add("lung_logrank", "logrank", "", "chisq", sd_lung$chisq)
add("lung_logrank", "logrank", "", "df", length(sd_lung$n) - 1)
add("lung_logrank", "logrank", "", "p",
    pchisq(sd_lung$chisq, length(sd_lung$n) - 1, lower.tail = FALSE))
km <- survfit(Surv(time, status) ~ sex, lung)  # conf.type = "log" (R default)
ks <- summary(km, censored = TRUE)
km_tab <- data.frame(group = sub("sex=", "", as.character(ks$strata)), time = ks$time,
                     n_risk = ks$n.risk, n_event = ks$n.event, survival = ks$surv,
                     std_err = ks$std.err, ci_low = ks$lower, ci_high = ks$upper)
write.csv(km_tab, file.path(out_dir, "km_lung_reference.csv"), row.names = FALSE)

data("Rossi", package = "carData")
fit <- coxph(Surv(week, arrest) ~ fin + age + race + wexp + mar + paro + prio, Rossi,
             ties = "efron")
add_cox("rossi_efron", fit)
add_zph("rossi_efron", fit, "km")

# Clustered Cox: patients in therapists, shared frailty, ties from rounding times to weeks
set.seed(20240603)
n_t <- 20; per <- 10
th <- rep(seq_len(n_t), each = per)
a <- round(rnorm(n_t * per), 4)
arm <- rbinom(n_t * per, 1, 0.5)
frail <- rnorm(n_t, 0, 0.5)[th]
rate <- 0.02 * exp(-0.4 * a + 0.3 * arm + frail)
t_event <- rexp(length(rate), rate)
t_cens <- pmin(runif(length(rate), 10, 120), 52)
wk <- pmax(1, ceiling(pmin(t_event, t_cens)))
ev <- as.integer(t_event <= t_cens)
cox_sim <- data.frame(therapist = paste0("T", th), alliance = a, arm = arm, week = wk,
                      relapse = ev)
write_data(cox_sim, "sim_cox_cluster.csv")
fit <- coxph(Surv(week, relapse) ~ alliance + arm + cluster(therapist), cox_sim,
             ties = "efron")
add_cox("sim_cox_cluster", fit)
add_zph("sim_cox_cluster", fit, "km")
sd_sim <- survdiff(Surv(week, relapse) ~ arm, cox_sim)
add("sim_logrank", "logrank", "", "chisq", sd_sim$chisq)
add("sim_logrank", "logrank", "", "df", length(sd_sim$n) - 1)
add("sim_logrank", "logrank", "", "p",
    pchisq(sd_sim$chisq, length(sd_sim$n) - 1, lower.tail = FALSE))

flush_rows("survival_reference.csv")

# ---- meta-analysis of correlations -----------------------------------------------------------
data("dat.molloy2014", package = "metadat")
mol <- dat.molloy2014[, c("authors", "year", "ni", "ri")]
write_data(mol, "molloy2014.csv")
es <- escalc(measure = "ZCOR", ri = ri, ni = ni, data = mol)
# metafor's default REML convergence threshold (1e-5 on tau^2 steps) stops early; "REML_tight"
# uses 1e-12, the precision alliance.engine.meta iterates to.
fits <- list(REML = list("REML", list()), DL = list("DL", list()),
             REML_tight = list("REML", list(threshold = 1e-12)))
for (m in names(fits)) {
  res <- rma(yi, vi, data = es, method = fits[[m]][[1]], control = fits[[m]][[2]])
  pr <- predict(res)
  pr_r <- predict(res, transf = transf.ztor)
  case <- paste0("molloy_", m)
  add(case, "pool", "", "k", res$k)
  add(case, "pool", "", "z", res$b[1])
  add(case, "pool", "", "se", res$se)
  add(case, "pool", "", "z_ci_low", res$ci.lb)
  add(case, "pool", "", "z_ci_high", res$ci.ub)
  add(case, "pool", "", "z_pi_low", pr$pi.lb)
  add(case, "pool", "", "z_pi_high", pr$pi.ub)
  add(case, "pool", "", "r", pr_r$pred)
  add(case, "pool", "", "r_ci_low", pr_r$ci.lb)
  add(case, "pool", "", "r_ci_high", pr_r$ci.ub)
  add(case, "pool", "", "r_pi_low", pr_r$pi.lb)
  add(case, "pool", "", "r_pi_high", pr_r$pi.ub)
  add(case, "pool", "", "tau2", res$tau2)
  add(case, "pool", "", "q", res$QE)
  add(case, "pool", "", "q_p", res$QEp)
  add(case, "pool", "", "i2", res$I2)
  add(case, "pool", "", "h2", res$H2)
  add(case, "pool", "", "p_value", res$pval)
}
flush_rows("meta_reference.csv")

# ---- versions --------------------------------------------------------------------------------
pk <- c("lme4", "lmerTest", "Matrix", "survival", "metafor", "metadat", "HSAUR3", "carData")
writeLines(c(R.version.string,
             paste(pk, vapply(pk, function(p) as.character(packageVersion(p)), ""))),
           file.path(out_dir, "versions.txt"))
