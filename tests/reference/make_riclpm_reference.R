# Fits the random-intercept cross-lagged panel models (RI-CLPM; Hamaker, Kuiper & Grasman 2015)
# that tests/test_sem.py compares alliance.engine.sem against.
#
# Run from the repository root, after `.venv/bin/python tests/test_sem.py` has written the
# panels and cases.csv:   Rscript tests/reference/make_riclpm_reference.R
# Needs (Debian): r-base-core r-cran-lavaan
#
# Input (tests/reference/riclpm/): cases.csv (case, data, waves, y_slope, x_error_var, y_error_var,
# equal_lags, equal_innovations) and data_*.csv, wide panels (patient, x_1..x_W, y_1..y_W; NA =
# missing: monotone dropout plus a few missing cells).
# python_syntax.lav is the lavaan syntax the Python builder writes for case b_slope_error; it is
# fitted as it stands (case python_syntax), to check that formula_r is the same model.
# Output: lavaan_estimates.csv, long format  case, section, term, stat, value  (17 significant
# digits):
#   par   est, se per parameter label (one row per label: equal-constrained rows share it)
#   fit   logl, npar, ntotal (rows used), chisq, df (test against the saturated model),
#         converged, iterations
# The lavaan syntax is built here independently of the Python builder (same parameter labels).
# Estimation: sem(..., missing = "ml", meanstructure = TRUE) with lavaan's defaults, i.e.
# full-information ML, SEs from the observed information (information = "observed",
# observed.information = "hessian"), nlminb.

suppressPackageStartupMessages(library(lavaan))

dir <- "tests/reference/riclpm"
source("tests/reference/common.R")  # rows, add(), write_rows()

riclpm_syntax <- function(W, y_slope, x_error_var, y_error_var, equal_lags, equal_innovations) {
  x <- paste0("x_", 1:W)
  y <- paste0("y_", 1:W)
  wx <- paste0("w_x_", 1:W)
  wy <- paste0("w_y_", 1:W)
  ones <- function(v) paste0("1*", v, collapse = " + ")
  s <- c(
    paste("ri_x =~", ones(x)),
    paste("ri_y =~", ones(y))
  )
  if (y_slope) s <- c(s, paste("slope_y =~", paste0(0:(W - 1), "*", y, collapse = " + ")))
  s <- c(s, paste0(wx, " =~ 1*", x), paste0(wy, " =~ 1*", y))
  for (t in 2:W) {
    tag <- if (equal_lags) "" else paste0("_", t)
    s <- c(s,
      sprintf("%s ~ x_ar%s*%s + y_to_x%s*%s", wx[t], tag, wx[t - 1], tag, wy[t - 1]),
      sprintf("%s ~ y_ar%s*%s + x_to_y%s*%s", wy[t], tag, wy[t - 1], tag, wx[t - 1]))
  }
  s <- c(s, "ri_x ~~ ri_x_var*ri_x", "ri_y ~~ ri_y_var*ri_y", "ri_x ~~ ri_cov*ri_y")
  between <- c("ri_x", "ri_y")
  if (y_slope) {
    s <- c(s, "slope_y ~~ slope_y_var*slope_y", "slope_y ~~ slope_ri_x_cov*ri_x",
           "slope_y ~~ slope_ri_y_cov*ri_y")
    between <- c(between, "slope_y")
  }
  s <- c(s, "w_x_1 ~~ within_x_var_1*w_x_1", "w_y_1 ~~ within_y_var_1*w_y_1",
         "w_x_1 ~~ within_cov_1*w_y_1")
  for (b in between) s <- c(s, sprintf("%s ~~ 0*w_x_1 + 0*w_y_1", b))
  for (t in 2:W) {
    tag <- if (equal_innovations) "" else paste0("_", t)
    s <- c(s,
      sprintf("%s ~~ innovation_x_var%s*%s", wx[t], tag, wx[t]),
      sprintf("%s ~~ innovation_y_var%s*%s", wy[t], tag, wy[t]),
      sprintf("%s ~~ innovation_cov%s*%s", wx[t], tag, wy[t]))
  }
  s <- c(s, sprintf("%s ~~ %s*%s", x, format(x_error_var, digits = 17), x), sprintf("%s ~~ %s*%s", y, format(y_error_var, digits = 17), y))
  s <- c(s, sprintf("%s ~ x_mean_%d*1", x, 1:W), sprintf("%s ~ y_mean_%d*1", y, 1:W))
  paste(s, collapse = "\n")
}

cases <- read.csv(file.path(dir, "cases.csv"), stringsAsFactors = FALSE)
for (i in seq_len(nrow(cases))) {
  cs <- cases[i, ]
  data <- read.csv(file.path(dir, cs$data))
  model <- riclpm_syntax(cs$waves, as.logical(cs$y_slope), cs$x_error_var, cs$y_error_var,
                         as.logical(cs$equal_lags), as.logical(cs$equal_innovations))
  fit <- sem(model, data = data, missing = "ml", meanstructure = TRUE)
  pe <- parameterEstimates(fit)
  pe <- pe[pe$label != "" & !duplicated(pe$label), ]
  for (j in seq_len(nrow(pe))) {
    add(cs$case, "par", pe$label[j], "est", pe$est[j])
    add(cs$case, "par", pe$label[j], "se", pe$se[j])
  }
  fm <- fitMeasures(fit, c("logl", "npar", "ntotal", "chisq", "df"))
  for (m in names(fm)) add(cs$case, "fit", "", m, fm[[m]])
  add(cs$case, "fit", "", "converged", lavInspect(fit, "converged"))
  add(cs$case, "fit", "", "iterations", lavInspect(fit, "iterations"))
}

# The syntax alliance.engine.sem writes (what the model kind's formula_r carries) for case
# b_slope_error, fitted as it stands: the test checks it is the same model.
py <- paste(readLines(file.path(dir, "python_syntax.lav")), collapse = "\n")
fit <- sem(py, data = read.csv(file.path(dir, "data_b.csv")), missing = "ml", meanstructure = TRUE)
pe <- parameterEstimates(fit)
pe <- pe[pe$label != "" & !duplicated(pe$label), ]
for (j in seq_len(nrow(pe))) add("python_syntax", "par", pe$label[j], "est", pe$est[j])
add("python_syntax", "fit", "", "logl", fitMeasures(fit, "logl"))
add("python_syntax", "fit", "", "npar", fitMeasures(fit, "npar"))

write_rows(file.path(dir, "lavaan_estimates.csv"))
writeLines(c(R.version.string, paste("lavaan", as.character(packageVersion("lavaan")))),
           file.path(dir, "versions.txt"))
