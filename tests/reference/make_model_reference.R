# Refits the model stage's default (G)LMMs and GEEs in R and writes what
# tests/test_models_reference.py compares against.
#
# Run from the repository root, after `.venv/bin/python tests/test_models_reference.py` has
# written the frames and specs.csv:   Rscript tests/reference/make_model_reference.R
# Needs (Debian): r-base-core r-cran-lme4 r-cran-lmertest r-cran-geepack
#
# Input (tests/reference/models/): specs.csv (case, model, formula_r, robust_cluster, ...) and
# <case>_frame.csv, the model frames exactly as the pipeline fitted them (factors already 0/1
# columns with R names, so R and Python see the same design).
# Output: reference.csv, long format  case, section, term, stat, value  (17 significant digits):
#   fixef        estimate, std_error, statistic, df (lmerTest Satterthwaite; Inf for glmer)
#   varcorr      vcov, sdcor per  group|term1|term2  (as.data.frame(VarCorr(fit)))
#   fit          loglik, aic, bic, n_obs, singular
#   slopes       simple slopes (estimate, std_error) per  term|level     L b, sqrt(L V L')
#   contrasts    drug - placebo slope difference per  term|contrast
#   predictions  population predictions per  by_level|x  (X b, sqrt(x V x'))
#   ranef        therapist conditional modes / SDs per  group|term|level
#   robust       CR1 cluster-robust SEs of the two-level fit (few-therapists fallback)
# GEE cases (kind gee, geepack::geeglm):
#   fixef        estimate, std_error (sandwich, san.se), statistic (z = estimate / SE), df Inf
#   fit          scale (dispersion), alpha (exchangeable correlation), qic, n_obs, clusters
# Definitions follow alliance/models/contrasts.py and mixed.py docstrings, coded here
# independently.

suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(geepack)
})

dir <- "tests/reference/models"
source("tests/reference/common.R")  # rows, add(), write_rows()

# Class of each demo arm (config/config.yaml codings.arm).
arm_class <- c("CBT" = "psychotherapy", "IPT" = "psychotherapy", "IMI-CM" = "drug",
               "PLA-CM" = "placebo")

fixef_vcov <- function(fit) {
  b <- fixef(fit)
  v <- as.matrix(vcov(fit))
  list(b = b, v = v[names(b), names(b)])
}

add_lincomb <- function(case, section, key, L, bv) {
  # L: named weights on coefficients
  w <- setNames(rep(0, length(bv$b)), names(bv$b))
  w[names(L)] <- L
  add(case, section, key, "estimate", sum(w * bv$b))
  add(case, section, key, "std_error", sqrt(drop(t(w) %*% bv$v %*% w)))
}

slope_L <- function(focal, cols, b) {
  # slope of `focal` where moderator columns take values `cols`
  L <- c(1)
  names(L) <- focal
  for (col in names(cols)) {
    for (nm in c(paste0(focal, ":", col), paste0(col, ":", focal))) {
      if (nm %in% names(b) && cols[[col]] != 0) L[nm] <- cols[[col]]
    }
  }
  L
}

# R name of an arm's 0/1 column (make.names of variable + level); the reference has none.
arm_column <- function(level) make.names(paste0("arm", level))

add_arm_slopes <- function(case, fit, data) {
  bv <- fixef_vcov(fit)
  levels <- unique(data$arm)
  ref <- "PLA-CM"
  level_cols <- lapply(levels, function(l) if (l == ref) list() else setNames(list(1), arm_column(l)))
  names(level_cols) <- levels
  slopes <- list()
  for (focal in c("alliance_pat_prior", "alliance_within_prior")) {
    for (l in levels) {
      L <- slope_L(focal, level_cols[[l]], bv$b)
      slopes[[paste(focal, l, sep = "|")]] <- L
      add_lincomb(case, "slopes", paste(focal, l, sep = "|"), L, bv)
    }
    for (cl in unique(arm_class[levels])) {
      members <- levels[arm_class[levels] == cl]
      L <- setNames(numeric(0), character(0))
      for (l in members) {
        Ll <- slope_L(focal, level_cols[[l]], bv$b) / length(members)
        for (nm in names(Ll)) L[nm] <- (if (is.na(L[nm])) 0 else L[nm]) + Ll[[nm]]
      }
      slopes[[paste(focal, cl, sep = "|")]] <- L
      add_lincomb(case, "slopes", paste(focal, cl, sep = "|"), L, bv)
    }
    plus <- slopes[[paste(focal, "drug", sep = "|")]]
    minus <- slopes[[paste(focal, "placebo", sep = "|")]]
    nms <- union(names(plus), names(minus))
    D <- setNames(sapply(nms, function(n) {
      (if (n %in% names(plus)) plus[[n]] else 0) - (if (n %in% names(minus)) minus[[n]] else 0)
    }), nms)
    add_lincomb(case, "contrasts", paste(focal, "drug_vs_placebo", sep = "|"), D, bv)
  }
}

add_value_slopes <- function(case, fit, data, by) {
  bv <- fixef_vcov(fit)
  x <- data[[by]]
  if (all(x %in% c(0, 1))) {
    points <- c(0, 1)
    labels <- paste(by, "=", points)
  } else {
    per_patient <- tapply(x, data$patient, function(v) v[1])  # constant within patient
    m <- mean(per_patient)
    s <- sd(per_patient)
    points <- c(m - s, m, m + s)
    labels <- c("-1 SD", "mean", "+1 SD")
  }
  for (focal in c("alliance_pat_prior", "alliance_within_prior")) {
    for (k in seq_along(points)) {
      L <- slope_L(focal, setNames(list(points[k]), by), bv$b)
      add_lincomb(case, "slopes", paste(focal, labels[k], sep = "|"), L, bv)
    }
  }
}

add_predictions <- function(case, fit, data, x, by, patient_level, derived = function(v) v) {
  bv <- fixef_vcov(fit)
  terms <- names(bv$b)
  pieces <- unique(unlist(strsplit(setdiff(terms, "(Intercept)"), ":", fixed = TRUE)))
  held <- sapply(pieces, function(p) mean(data[[p]]))
  dummies <- grep("^arm", pieces, value = TRUE)  # 0/1 arm columns: reference arm
  held[dummies] <- 0
  byv <- if (patient_level) tapply(data[[by]], data$patient, function(v) v[1]) else data[[by]]
  m <- mean(byv)
  s <- sd(byv)
  grid_x <- seq(min(data[[x]]), max(data[[x]]), by = 1)
  for (k in c(-1, 0, 1)) {
    label <- c("-1 SD", "mean", "+1 SD")[k + 2]
    for (xv in grid_x) {
      v <- held
      v[x] <- xv
      v[by] <- m + k * s
      v <- derived(v)
      w <- sapply(terms, function(t) {
        if (t == "(Intercept)") 1 else prod(v[strsplit(t, ":", fixed = TRUE)[[1]]])
      })
      add_lincomb(case, "predictions", paste(label, format(xv, digits = 6), sep = "|"), w, bv)
    }
  }
}

add_ranef <- function(case, fit, group) {
  re <- as.data.frame(ranef(fit, condVar = TRUE))
  re <- re[re$grpvar == group, ]
  for (i in seq_len(nrow(re))) {
    term <- paste(re$grpvar[i], re$term[i], re$grp[i], sep = "|")
    add(case, "ranef", term, "condval", re$condval[i])
    add(case, "ranef", term, "condsd", re$condsd[i])
  }
}

# CR1 sandwich of a two-level LMM (one random-effects block), clustered by `cluster`:
# (X'WX)^-1 [J/(J-1) sum_j X_j'W_j r_j r_j'W_j X_j] (X'WX)^-1, W = V^-1 per patient block.
add_robust <- function(case, fit, data, cluster) {
  X <- getME(fit, "X")
  b <- fixef(fit)
  r <- getME(fit, "y") - drop(X %*% b)
  vc <- VarCorr(fit)
  group <- names(vc)[1]
  G <- vc[[group]][, , drop = FALSE]
  Zcols <- colnames(G)
  sigma2 <- sigma(fit)^2
  p <- ncol(X)
  bread <- matrix(0, p, p)
  clusters <- unique(data[[cluster]])
  score <- matrix(0, length(clusters), p, dimnames = list(clusters, colnames(X)))
  for (g in unique(data[[group]])) {
    idx <- which(data[[group]] == g)
    Zi <- sapply(Zcols, function(z) if (z == "(Intercept)") rep(1, length(idx)) else data[[z]][idx])
    Zi <- matrix(Zi, nrow = length(idx))
    Vi <- Zi %*% G %*% t(Zi) + sigma2 * diag(length(idx))
    WX <- solve(Vi, X[idx, , drop = FALSE])
    bread <- bread + t(X[idx, , drop = FALSE]) %*% WX
    cl <- as.character(data[[cluster]][idx[1]])
    score[cl, ] <- score[cl, ] + drop(t(WX) %*% r[idx])
  }
  J <- length(clusters)
  inv <- solve(bread)
  V <- inv %*% crossprod(score) %*% inv * J / (J - 1)
  for (k in seq_len(p)) {
    add(case, "robust", colnames(X)[k], "estimate", b[k])
    add(case, "robust", colnames(X)[k], "std_error", sqrt(V[k, k]))
  }
}

# geeglm with family binomial on a proportion (the fractional logit) warns "non-integer
# #successes in a binomial glm!" from the family's initialize (again in QIC's independence refit):
# expected for the quasi-likelihood (Papke & Wooldridge 1996), so that warning alone is muffled;
# any other is kept.
muffle_fractional <- function(expr) {
  withCallingHandlers(expr, warning = function(w) {
    if (grepl("non-integer #successes", conditionMessage(w), fixed = TRUE)) {
      invokeRestart("muffleWarning")
    }
  })
}

add_gee <- function(case, fit) {
  co <- summary(fit)$coefficients
  for (term in rownames(co)) {
    add(case, "fixef", term, "estimate", co[term, "Estimate"])
    add(case, "fixef", term, "std_error", co[term, "Std.err"])
    add(case, "fixef", term, "statistic", co[term, "Estimate"] / co[term, "Std.err"])
    add(case, "fixef", term, "df", Inf)
  }
  add(case, "fit", "", "scale", summary(fit)$dispersion$Estimate)
  add(case, "fit", "", "alpha", summary(fit)$corr$Estimate)
  add(case, "fit", "", "qic", QIC(fit)[["QIC"]])
  add(case, "fit", "", "n_obs", length(fit$y))
  add(case, "fit", "", "clusters", length(summary(fit)$clusz))
}

# When a GLMM's formula_r fit stops short (lme4's checkConv gradient test fails), it is refitted
# with bobyqa run to a small trust region (as make_glmm_scale_reference.R does), so the reference
# is the optimum (the engine's logLik was higher than the stopped fit's); the case keeps its name.
BOBYQA <- 'optimizer = "bobyqa", optCtrl = list(maxfun = 1e5, rhoend = 1e-10), '
stopped_short <- function(fit) any(grepl("failed to converge", fit@optinfo$conv$lme4$messages))

specs <- read.csv(file.path(dir, "specs.csv"), stringsAsFactors = FALSE, na.strings = "")
for (i in seq_len(nrow(specs))) {
  s <- specs[i, ]
  data <- read.csv(file.path(dir, paste0(s$case, "_frame.csv")), stringsAsFactors = FALSE,
                   check.names = FALSE)
  if (s$kind == "gee") {
    muffle_fractional(add_gee(s$case, eval(parse(text = s$formula_r))))
    cat(s$case, ": done\n", sep = "")
    next
  }
  fit <- eval(parse(text = s$formula_r))
  if (stopped_short(fit) && grepl("glmerControl(", s$formula_r, fixed = TRUE)) {
    fit <- eval(parse(text = sub("glmerControl(", paste0("glmerControl(", BOBYQA), s$formula_r,
                                 fixed = TRUE)))
    cat(s$case, ": refitted with bobyqa (rhoend 1e-10) after a failed gradient check\n", sep = "")
  }
  co <- summary(fit)$coefficients
  if (inherits(fit, "glmerMod") && exact_se_possible(s$formula_r)) {  # common.R
    add_exact_se(s$case, devfun_for(s$formula_r), getME(fit, "theta"), fixef(fit))
  }
  for (term in rownames(co)) {
    add(s$case, "fixef", term, "estimate", co[term, "Estimate"])
    add(s$case, "fixef", term, "std_error", co[term, "Std. Error"])
    add(s$case, "fixef", term, "df", if ("df" %in% colnames(co)) co[term, "df"] else Inf)
    add(s$case, "fixef", term, "statistic", co[term, grep(" value$", colnames(co))])
  }
  vc <- as.data.frame(VarCorr(fit))
  for (k in seq_len(nrow(vc))) {
    t1 <- ifelse(is.na(vc$var1[k]), "", vc$var1[k])
    t2 <- ifelse(is.na(vc$var2[k]), "", vc$var2[k])
    term <- paste(vc$grp[k], t1, t2, sep = "|")
    add(s$case, "varcorr", term, "vcov", vc$vcov[k])
    add(s$case, "varcorr", term, "sdcor", vc$sdcor[k])
  }
  add(s$case, "fit", "", "loglik", as.numeric(logLik(fit)))
  add(s$case, "fit", "", "aic", AIC(fit))
  add(s$case, "fit", "", "bic", BIC(fit))
  add(s$case, "fit", "", "n_obs", nobs(fit))
  add(s$case, "fit", "", "singular", as.numeric(isSingular(fit)))

  if (s$case == "symptoms_by_arm") add_arm_slopes(s$case, fit, data)
  if (s$case == "symptoms_by_modality") add_value_slopes(s$case, fit, data, "telehealth")
  if (s$case == "symptoms_by_agency") add_value_slopes(s$case, fit, data, "agency")
  if (s$case == "symptoms_by_trd") add_value_slopes(s$case, fit, data, "trd")
  if (s$case == "symptoms_growth") {
    add_predictions(s$case, fit, data, "weeks", "alliance_pat_prior", patient_level = FALSE)
    add_ranef(s$case, fit, "therapist")
  }
  if (s$case == "dropout_hazard") {
    add_predictions(s$case, fit, data, "period", "alliance", patient_level = FALSE,
                    derived = function(v) { v["period_sq"] <- v[["period"]]^2; v })
  }
  if (s$case == "missed_sessions") {
    add_predictions(s$case, fit, data, "period", "alliance", patient_level = FALSE)
  }
  if (!is.na(s$robust_cluster) && nzchar(s$robust_cluster)) {
    add_robust(s$case, fit, data, s$robust_cluster)
  }
  cat(s$case, ": done\n", sep = "")
}

write_rows(file.path(dir, "reference.csv"))
writeLines(c(R.version.string,
             paste("lme4", packageVersion("lme4")),
             paste("lmerTest", packageVersion("lmerTest")),
             paste("Matrix", packageVersion("Matrix")),
             paste("geepack", packageVersion("geepack"))),
           file.path(dir, "versions.txt"))
