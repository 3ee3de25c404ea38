# Writes the R reference fixtures for the model kinds cox, gee, rsa and pool
# (tests/test_models_*.py compare against them).
#
# Run from the repository root:   Rscript tests/reference/make_kinds_reference.R
# Needs (Debian): r-base-core r-cran-survival r-cran-metafor r-cran-geepack
# The tests never need R: they read the CSVs this script writes. The data sets are simulated here
# with a fixed seed and written too, so Python fits exactly the data R fitted. IDs are synthetic
# (P001, T01, S1): no trial data is involved.
#
# Output (all in tests/reference/kinds/):
#   kinds_reference.csv   long table: case, section, term, stat, value (17 significant digits)
#   cox_data.csv, gee_data.csv, rsa_data.csv, pool_data.csv   the simulated data sets
#   versions.txt          R and package versions used

suppressPackageStartupMessages({
  library(survival)
  library(metafor)
  library(geepack)
})

out_dir <- "tests/reference/kinds"
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)
source("tests/reference/common.R")  # rows, add(), write_rows()
write_data <- function(df, file) {
  write.csv(df, file.path(out_dir, file), row.names = FALSE)
}
# R's quantile type 7 tertiles, lowest value included (what the cox kind cuts)
tertile <- function(x) {
  cut(x, quantile(x, c(0, 1, 2, 3) / 3), labels = c("low", "middle", "high"),
      include.lowest = TRUE)
}

# ---- cox: relapse among responders, patients clustered in therapists ------------------------
set.seed(20261127)
n <- 240
n_ther <- 25
ther <- sample(n_ther, n, replace = TRUE)
frailty <- rnorm(n_ther, 0, 0.4)[ther]
alliance_mean <- round(rnorm(n, 3.8, 0.5), 3)
baseline_symptom <- round(rnorm(n, 20, 4))
armCBT <- rbinom(n, 1, 0.5)
rate <- 0.02 * exp(-0.6 * (alliance_mean - 3.8) + 0.04 * (baseline_symptom - 20) + frailty)
t_event <- rexp(n, rate)
t_cens <- pmin(runif(n, 20, 80), 52)
cox_data <- data.frame(
  patient = sprintf("P%03d", seq_len(n)), therapist = sprintf("T%02d", ther),
  site = "S1", alliance_mean = alliance_mean, baseline_symptom = baseline_symptom,
  armCBT = armCBT,
  relapse_time = pmax(1, ceiling(pmin(t_event, t_cens))),  # whole weeks: many ties
  relapse_event = as.integer(t_event <= t_cens)
)
write_data(cox_data, "cox_data.csv")
fit <- coxph(Surv(relapse_time, relapse_event) ~ alliance_mean + baseline_symptom + armCBT +
               cluster(therapist), data = cox_data, ties = "efron")
co <- summary(fit)$coefficients
for (term in rownames(co)) {
  add("cox", "coef", term, "estimate", co[term, "coef"])
  add("cox", "coef", term, "std_error", co[term, "robust se"])
  add("cox", "coef", term, "naive_se", co[term, "se(coef)"])
  add("cox", "coef", term, "p_value", co[term, "Pr(>|z|)"])
}
add("cox", "fit", "", "loglik", fit$loglik[2])
add("cox", "fit", "", "aic", AIC(fit))
add("cox", "fit", "", "bic", BIC(fit))
add("cox", "fit", "", "n_events", fit$nevent)
add("cox", "fit", "", "concordance", fit$concordance[["concordance"]])
z <- cox.zph(fit, transform = "km")$table
for (term in rownames(z)) {
  add("cox", "zph", term, "chisq", z[term, "chisq"])
  add("cox", "zph", term, "p", z[term, "p"])
}
cox_data$tertile <- tertile(cox_data$alliance_mean)
sd_t <- survdiff(Surv(relapse_time, relapse_event) ~ tertile, data = cox_data)
add("cox", "logrank", "", "chisq", sd_t$chisq)
add("cox", "logrank", "", "df", length(sd_t$n) - 1)
km <- survfit(Surv(relapse_time, relapse_event) ~ tertile, data = cox_data)
s <- summary(km, times = c(0, 10, 20, 30, 40, 50), extend = TRUE)
for (i in seq_along(s$time)) {
  g <- sub("tertile=", "", as.character(s$strata[i]))
  add("cox", "at_risk", paste(g, s$time[i], sep = "|"), "n_risk", s$n.risk[i])
  add("cox", "at_risk", paste(g, s$time[i], sep = "|"), "survival", s$surv[i])
}

# ---- gee: dropout by early alliance, patients clustered in therapists -----------------------
set.seed(20261128)
n <- 320
n_ther <- 30
ther <- sample(n_ther, n, replace = TRUE, prob = rgamma(n_ther, 2))
u <- rnorm(n_ther, 0, 0.6)[ther]
alliance_early <- round(rnorm(n, 3.7, 0.5), 3)
baseline_symptom <- round(rnorm(n, 20, 4))
eta <- -1 - 0.8 * (alliance_early - 3.7) + 0.05 * (baseline_symptom - 20) + u
gee_data <- data.frame(
  patient = sprintf("P%03d", seq_len(n)), therapist = sprintf("T%02d", ther),
  alliance_early = alliance_early, baseline_symptom = baseline_symptom,
  dropout = rbinom(n, 1, plogis(eta))
)
gee_data <- gee_data[order(gee_data$therapist, gee_data$patient), ]  # geeglm: clusters contiguous
write_data(gee_data, "gee_data.csv")
# geepack's default convergence tolerance (epsilon = 1e-4) stops short of the solution by up to
# 5e-5 relative on these data; the *_tight cases iterate to 1e-12, which is what Python matches.
gee_cases <- list(
  gee_exchangeable = list("exchangeable", geese.control()),
  gee_exchangeable_tight = list("exchangeable", geese.control(epsilon = 1e-12, maxit = 200)),
  gee_independence_tight = list("independence", geese.control(epsilon = 1e-12, maxit = 200))
)
for (case in names(gee_cases)) {
  cs <- gee_cases[[case]][[1]]
  fit <- geeglm(dropout ~ alliance_early + baseline_symptom, family = binomial, data = gee_data,
                id = factor(therapist), corstr = cs, control = gee_cases[[case]][[2]])
  co <- summary(fit)$coefficients
  for (term in rownames(co)) {
    add(case, "coef", term, "estimate", co[term, "Estimate"])
    add(case, "coef", term, "std_error", co[term, "Std.err"])
  }
  add(case, "fit", "", "scale", summary(fit)$dispersion$Estimate)
  if (cs == "exchangeable") add(case, "fit", "", "alpha", summary(fit)$corr$Estimate)
  add(case, "fit", "", "qic", QIC(fit)[["QIC"]])
}

fit <- geeglm(baseline_symptom ~ alliance_early, family = gaussian, data = gee_data,
              id = factor(therapist), corstr = "exchangeable",
              control = geese.control(epsilon = 1e-12, maxit = 200))
co <- summary(fit)$coefficients
for (term in rownames(co)) {
  add("gee_gaussian_tight", "coef", term, "estimate", co[term, "Estimate"])
  add("gee_gaussian_tight", "coef", term, "std_error", co[term, "Std.err"])
}
add("gee_gaussian_tight", "fit", "", "scale", summary(fit)$dispersion$Estimate)
add("gee_gaussian_tight", "fit", "", "alpha", summary(fit)$corr$Estimate)
add("gee_gaussian_tight", "fit", "", "qic", QIC(fit)[["QIC"]])

# ---- rsa: patient (P) and therapist (T) alliance, centred at the WAI-SR midpoint 3 ----------
set.seed(20261129)
n <- 260
n_ther <- 40
ther <- sample(n_ther, n, replace = TRUE)
clamp <- function(x) pmin(5, pmax(1, x))
agree_p <- round(clamp(rnorm(n, 3.9, 0.55)), 3)
agree_t <- round(clamp(0.5 * agree_p + rnorm(n, 1.8, 0.45)), 3)
age <- round(runif(n, 20, 65))
P <- agree_p - 3
T <- agree_t - 3
rsa_data <- data.frame(
  patient = sprintf("P%03d", seq_len(n)), therapist = sprintf("T%02d", ther),
  agree_p = agree_p, agree_t = agree_t, age = age,
  symptom_change = round(-9 - 2 * P - 1 * T + 0.6 * P^2 - 1.2 * P * T + 0.5 * T^2 +
                           0.03 * (age - 40) + rnorm(n_ther, 0, 1.5)[ther] + rnorm(n, 0, 4), 2)
)
write_data(rsa_data, "rsa_data.csv")
dat <- within(rsa_data, {P <- agree_p - 3; T <- agree_t - 3})
fit <- lm(symptom_change ~ P + T + I(P^2) + P:T + I(T^2) + age, data = dat)
b <- coef(fit)
V <- vcov(fit)
# the surface parameters as linear combinations of the coefficients
lc <- function(...) {  # a coefficient vector with the named entries set, zero elsewhere
  v <- setNames(numeric(length(b)), names(b))
  w <- c(...)
  v[names(w)] <- w
  v
}
L <- rbind(
  a1 = lc(P = 1, T = 1), a2 = lc(`I(P^2)` = 1, `P:T` = 1, `I(T^2)` = 1),
  a3 = lc(P = 1, T = -1), a4 = lc(`I(P^2)` = 1, `P:T` = -1, `I(T^2)` = 1)
)
# CR1 cluster-robust covariance by therapist (sandwich::vcovCL(fit, ~therapist, type = "HC1"))
X <- model.matrix(fit)
e <- residuals(fit)
bread <- solve(crossprod(X))
scores <- rowsum(X * e, dat$therapist)
G <- nrow(scores)
N <- nrow(X)
K <- ncol(X)
V_cl <- bread %*% crossprod(scores) %*% bread * (G / (G - 1)) * ((N - 1) / (N - K))
for (case in c("rsa", "rsa_cluster")) {
  VV <- if (case == "rsa") V else V_cl
  for (term in names(b)) {
    add(case, "coef", term, "estimate", b[[term]])
    add(case, "coef", term, "std_error", sqrt(VV[term, term]))
  }
  for (a in rownames(L)) {
    add(case, "coef", a, "estimate", sum(L[a, ] * b))
    add(case, "coef", a, "std_error", sqrt(drop(t(L[a, ]) %*% VV %*% L[a, ])))
  }
}
add("rsa", "fit", "", "df_residual", df.residual(fit))
add("rsa", "fit", "", "loglik", as.numeric(logLik(fit)))
add("rsa", "fit", "", "aic", AIC(fit))
add("rsa", "fit", "", "bic", BIC(fit))
add("rsa", "fit", "", "r_squared", summary(fit)$r.squared)
add("rsa", "fit", "", "predict_p1_t2", predict(fit, data.frame(P = 1, T = 2, age = mean(dat$age))))

# ---- pool: per-site alliance-symptom change correlations --------------------------------------
set.seed(20261130)
sizes <- c(24, 35, 41, 52, 60, 73, 88, 97)
rho <- c(-0.45, -0.2, -0.35, -0.05, -0.3, -0.4, -0.15, -0.28)
pool_data <- do.call(rbind, lapply(seq_along(sizes), function(k) {
  x <- rnorm(sizes[k])
  y <- rho[k] * x + sqrt(1 - rho[k]^2) * rnorm(sizes[k])
  data.frame(patient = sprintf("S%d-P%03d", k, seq_len(sizes[k])), site = paste0("S", k),
             alliance_mean = round(3.8 + 0.5 * x, 4), symptom_change = round(-10 + 6 * y, 3))
}))
write_data(pool_data, "pool_data.csv")
per_site <- do.call(rbind, lapply(split(pool_data, pool_data$site), function(d) {
  data.frame(site = d$site[1], r = cor(d$alliance_mean, d$symptom_change), n = nrow(d))
}))
for (i in seq_len(nrow(per_site))) {
  add("pool", "units", per_site$site[i], "r", per_site$r[i])
  add("pool", "units", per_site$site[i], "n", per_site$n[i])
}
# sign -1: better alliance (higher) with more improvement (more negative change) is positive
es <- escalc(measure = "ZCOR", ri = -per_site$r, ni = per_site$n)
for (m in c("DL", "REML")) {
  ctrl <- if (m == "REML") list(threshold = 1e-12, maxiter = 1000) else list()
  res <- rma(yi, vi, data = es, method = m, control = ctrl)
  pr <- predict(res, transf = transf.ztor)
  case <- paste0("pool_", m)
  add(case, "fit", "", "z", res$b[1])
  add(case, "fit", "", "se", res$se)
  add(case, "fit", "", "r", pr$pred)
  add(case, "fit", "", "r_ci_low", pr$ci.lb)
  add(case, "fit", "", "r_ci_high", pr$ci.ub)
  add(case, "fit", "", "r_pi_low", pr$pi.lb)
  add(case, "fit", "", "r_pi_high", pr$pi.ub)
  add(case, "fit", "", "tau2", res$tau2)
  add(case, "fit", "", "i2", res$I2)
  add(case, "fit", "", "q", res$QE)
  add(case, "fit", "", "p_value", res$pval)
}

write_rows(file.path(out_dir, "kinds_reference.csv"))
writeLines(c(
  R.version.string,
  paste("survival", packageVersion("survival")),
  paste("metafor", packageVersion("metafor")),
  paste("geepack", packageVersion("geepack"))
), file.path(out_dir, "versions.txt"))
