# Writes the lmerTest contest1D fixtures that tests/test_contest.py (and the p.adjust values that
# tests/test_multiplicity.py) compare against.
#
# Run from the repository root:   Rscript tests/reference/make_contest_reference.R
# Needs (Debian): r-base-core r-cran-lme4 r-cran-lmertest
# The tests never need R. Data: the simulated sets of make_reference.R (tests/reference/sim_*.csv)
# and the demo model frames of make_model_reference.R (tests/reference/models/<case>_frame.csv).
#
# Every LMM is fitted with the control `formula_r` carries (bobyqa to rhoend 1e-10), so R reaches
# the optimum the engine reports; the GLMM with glmerControl(tolPwrss = 1e-10), likewise.
#
# Output (tests/reference/):
#   contest_cases.csv      case, data, formula, reml, family  (what to fit, in R and in Python)
#   contest_reference.csv  long format  case, section, term, stat, value  (17 significant digits):
#     frame     n_obs, outcome_sum          fingerprint of the data fitted (a regenerated frame
#                                           must be refitted here too)
#     weights   term = contrast label, stat = coefficient, value = weight (non-zero weights only)
#     contest   term = contrast label: estimate, std_error, df, statistic, p_value, ci_low,
#               ci_high  (lmerTest::contest1D(fit, L, ddf = "Satterthwaite", confint = TRUE));
#               GLMM: Wald z (df Inf), SE from vcov(fit) (lme4's Hessian)
#     p_adjust  term = position i:  p, holm, BH  (stats::p.adjust)

suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
})

out_dir <- "tests/reference"
source("tests/reference/common.R")  # rows, add(), write_rows()
tight_lmer <- lmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5, rhoend = 1e-10))
tight_glmer <- glmerControl(tolPwrss = 1e-10)

cases <- list()
add_case <- function(case, data, formula, reml = TRUE, family = "gaussian") {
  cases[[length(cases) + 1]] <<- data.frame(case = case, data = data, formula = formula,
                                            reml = reml, family = family)
}

read_data <- function(path) {
  d <- read.csv(path, stringsAsFactors = FALSE, check.names = FALSE)
  d$zero <- 0  # a covariate without information (sim3_uninformed_reml); tests add it too
  for (col in intersect(c("patient", "therapist", "g", "patient_local"), names(d))) {
    d[[col]] <- factor(d[[col]])
  }
  d
}

# L from named weights (absent coefficients weigh 0); `key` labels the contrast.
add_contest <- function(case, fit, key, weights) {
  b <- fixef(fit)
  L <- setNames(rep(0, length(b)), names(b))
  stopifnot(all(names(weights) %in% names(b)))
  L[names(weights)] <- weights
  for (nm in names(weights)) add(case, "weights", key, nm, weights[[nm]])
  if (inherits(fit, "glmerMod")) {
    est <- sum(L * b)
    se <- sqrt(drop(t(L) %*% as.matrix(vcov(fit)) %*% L))
    z <- est / se
    q <- qnorm(0.975)
    res <- c(estimate = est, std_error = se, df = Inf, statistic = z,
             p_value = 2 * pnorm(-abs(z)), ci_low = est - q * se, ci_high = est + q * se)
  } else {
    ct <- contest1D(fit, L, ddf = "Satterthwaite", confint = TRUE)
    res <- c(estimate = ct[["Estimate"]], std_error = ct[["Std. Error"]], df = ct[["df"]],
             statistic = ct[["t value"]], p_value = ct[["Pr(>|t|)"]], ci_low = ct[["lower"]],
             ci_high = ct[["upper"]])
  }
  for (stat in names(res)) add(case, "contest", key, stat, res[[stat]])
}

fit_case <- function(case, data_path, formula, reml = TRUE, family = "gaussian") {
  reml <- as.logical(reml)  # specs.csv spells it True / False
  add_case(case, data_path, formula, reml, family)
  data <- read_data(data_path)
  fit <- if (family == "binomial") {
    glmer(as.formula(formula), data, family = binomial, control = tight_glmer)
  } else {
    suppressMessages(lmer(as.formula(formula), data, REML = reml, control = tight_lmer))
  }
  outcome <- all.vars(as.formula(formula))[1]
  add(case, "frame", "", "n_obs", nobs(fit))
  add(case, "frame", "", "outcome_sum", sum(model.frame(fit)[[outcome]]))
  fit
}

# The Baldwin contrast: alliance_ther<suffix> - alliance_pat<suffix> for each pair in the model.
add_baldwin <- function(case, fit) {
  b <- names(fixef(fit))
  for (ther in grep("^alliance_ther[A-Za-z0-9_]*$", b, value = TRUE)) {
    pat <- sub("^alliance_ther", "alliance_pat", ther)
    if (pat %in% b) add_contest(case, fit, paste(ther, "-", pat), setNames(c(1, -1), c(ther, pat)))
  }
}

# ---- simulated data -----------------------------------------------------------------------------
sim3 <- "tests/reference/sim_threelevel.csv"
three <- list(x = c(x = 1), x_plus_time = c(x = 1, time = 1), x_minus_time = c(x = 1, time = -1),
              mean_at_time5 = c("(Intercept)" = 1, time = 5), scaled = c(x = 2.5, time = -0.5))
for (reml in c(TRUE, FALSE)) {
  case <- if (reml) "sim3_slope_reml" else "sim3_slope_ml"
  fit <- fit_case(case, sim3, "y ~ x + time + (1 + time | patient) + (1 | therapist)", reml)
  for (key in names(three)) add_contest(case, fit, key, three[[key]])
}
# a variance at exactly 0 beside non-zero ones (patient_local: crossed, no effect in the data)
fit <- fit_case("sim3_zero_reml", sim3, "y ~ x + time + (1 + time | patient) + (1 | patient_local)")
stopifnot(isSingular(fit))
for (key in names(three)) add_contest("sim3_zero_reml", fit, key, three[[key]])

# a variance the data do not inform (its Z column is 0): a zero eigenvalue of the deviance Hessian,
# which lmerTest leaves out of its generalised inverse (warning "eigenvalue close to zero")
fit <- suppressWarnings(
  fit_case("sim3_uninformed_reml", sim3, "y ~ x + time + (1 | patient) + (0 + zero | therapist)")
)
for (key in names(three)) add_contest("sim3_uninformed_reml", fit, key, three[[key]])

sing <- "tests/reference/sim_singular.csv"
fit <- fit_case("singular_reml", sing, "y ~ x + (1 | g)")  # group variance exactly 0
add_contest("singular_reml", fit, "intercept_plus_x", c("(Intercept)" = 1, x = 1))
add_contest("singular_reml", fit, "x", c(x = 1))
fit <- fit_case("singular_slope_reml", sing, "y ~ x + (1 + x | g)")  # correlation at -1/+1
add_contest("singular_slope_reml", fit, "intercept_plus_x", c("(Intercept)" = 1, x = 1))
add_contest("singular_slope_reml", fit, "x", c(x = 1))

fit <- fit_case("dropout_glmm", "tests/reference/sim_dropout.csv",
                "drop ~ alliance + (1 | therapist)", FALSE, "binomial")
add_contest("dropout_glmm", fit, "logit_at_alliance_1", c("(Intercept)" = 1, alliance = 1))
add_contest("dropout_glmm", fit, "alliance", c(alliance = 1))

# ---- demo model frames (make_model_reference.R's fixtures) --------------------------------------
specs <- read.csv("tests/reference/models/specs.csv", stringsAsFactors = FALSE, na.strings = "")
frame_of <- function(case) sprintf("tests/reference/models/%s_frame.csv", case)
spec_of <- function(case) specs[specs$case == case, ]

s <- spec_of("symptoms_growth")
fit <- fit_case(s$case, frame_of(s$case), s$formula, s$reml)
add_baldwin(s$case, fit)
pat <- grep("^alliance_pat[A-Za-z0-9_]*$", names(fixef(fit)), value = TRUE)[1]
add_contest(s$case, fit, "pat_slope_at_week_10",
            setNames(c(1, 10), c(pat, paste0("weeks:", pat))))

for (case in c("symptoms_lagged", "symptoms_lagged_detrended")) {
  s <- spec_of(case)
  fit <- fit_case(s$case, frame_of(s$case), s$formula, s$reml)
  add_baldwin(s$case, fit)
}

# Simple slopes per arm, per class and the drug - placebo contrast (alliance.models.contrasts).
s <- spec_of("symptoms_by_arm")
fit <- fit_case(s$case, frame_of(s$case), s$formula, s$reml)
add_baldwin(s$case, fit)
b <- names(fixef(fit))
arm_cols <- c(CBT = "armCBT", "IMI-CM" = "armIMI.CM", IPT = "armIPT", "PLA-CM" = NA)
classes <- list(drug = "IMI-CM", placebo = "PLA-CM", psychotherapy = c("CBT", "IPT"))
for (focal in grep("^alliance_(pat|within)[A-Za-z0-9_]*$", b, value = TRUE)) {
  slope <- function(arm) {
    col <- arm_cols[[arm]]
    inter <- paste0(focal, ":", col)
    if (is.na(col) || !(inter %in% b)) return(setNames(1, focal))
    setNames(c(1, 1), c(focal, inter))
  }
  average <- function(arms) {
    w <- setNames(numeric(0), character(0))
    for (a in arms) {
      l <- slope(a) / length(arms)
      for (nm in names(l)) w[nm] <- (if (is.na(w[nm])) 0 else w[nm]) + l[[nm]]
    }
    w
  }
  for (arm in names(arm_cols)) add_contest(s$case, fit, paste(focal, arm, sep = "|"), slope(arm))
  for (cl in names(classes)) {
    add_contest(s$case, fit, paste(focal, cl, sep = "|"), average(classes[[cl]]))
  }
  d <- slope("IMI-CM")
  d <- d[names(d) != focal]  # drug - placebo: the focal main effect cancels
  add_contest(s$case, fit, paste(focal, "drug_vs_placebo", sep = "|"), d)
}

# Simple slopes at moderator values: 0/1 for a binary moderator, else the patients' mean -/+ 1 SD
# (alliance.models.mixed._moderator_values).
for (cm in list(c("symptoms_by_modality", "telehealth"), c("symptoms_by_agency", "agency"))) {
  s <- spec_of(cm[1])
  by <- cm[2]
  fit <- fit_case(s$case, frame_of(s$case), s$formula, s$reml)
  add_baldwin(s$case, fit)
  data <- read_data(frame_of(s$case))
  b <- names(fixef(fit))
  if (all(data[[by]] %in% c(0, 1))) {
    points <- setNames(c(0, 1), paste(by, "=", c(0, 1)))
  } else {
    per_patient <- tapply(data[[by]], data$patient, function(v) v[1])  # constant within patient
    m <- mean(per_patient)
    points <- setNames(m + c(-1, 0, 1) * sd(per_patient), c("-1 SD", "mean", "+1 SD"))
  }
  for (focal in grep("^alliance_(pat|within)[A-Za-z0-9_]*$", b, value = TRUE)) {
    inter <- intersect(c(paste0(focal, ":", by), paste0(by, ":", focal)), b)
    for (label in names(points)) {
      w <- setNames(c(1, points[[label]]), c(focal, inter))
      add_contest(s$case, fit, paste(focal, label, sep = "|"), w[w != 0])
    }
  }
}

# ---- p.adjust ------------------------------------------------------------------------------------
p <- c(0.01, 0.04, 0.03, 0.005, 0.2, 0.04, 0.0001, 0.9, 0.049, 0.5)
adj <- list(p = p, holm = p.adjust(p, "holm"), BH = p.adjust(p, "BH"))
for (i in seq_along(p)) for (m in names(adj)) add("p_adjust", "p_adjust", i, m, adj[[m]][i])

write_rows(file.path(out_dir, "contest_reference.csv"))
write.csv(do.call(rbind, cases), file.path(out_dir, "contest_cases.csv"), row.names = FALSE)
