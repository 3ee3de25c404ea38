# Rater agreement as psych::ICC computes it, for tests/test_agreement.py.
#
# Run from the repository root, after `.venv/bin/python tests/test_agreement.py` has written
# tests/reference/agreement_pairs.csv:   Rscript tests/reference/make_agreement_reference.R
# Needs (Debian): r-base-core r-cran-psych
#
# Input: agreement_pairs.csv, one row per patient x session of the demo (every third patient),
# columns session, patient, therapist, observer (each rater's total score; NA where that rater
# has none; no identifiers). Output: agreement_reference.csv, long format
#   case = "<rater_a>-<rater_b>", section = session number or "pooled", term = "", stat, value:
#   n_pairs, icc_a1 (psych ICC2, single raters absolute), icc_c1 (ICC3, single fixed raters),
#   ms_targets, ms_raters, ms_error (psych's two-way ANOVA mean squares), r (Pearson),
#   mean_diff, sd_diff (a - b) -- on the rows where both raters have a score; sessions with
#   fewer than 3 pairs are left out (no correlation).

suppressPackageStartupMessages(library(psych))
source("tests/reference/common.R")  # rows, add(), write_rows()

d <- read.csv("tests/reference/agreement_pairs.csv")
pairs <- list(c("patient", "therapist"), c("patient", "observer"), c("therapist", "observer"))
one <- function(case, section, x) {
  r <- ICC(x, lmer = FALSE)
  icc <- setNames(r$results$ICC, r$results$type)
  add(case, section, "", "n_pairs", nrow(x))
  add(case, section, "", "icc_a1", icc[["ICC2"]])
  add(case, section, "", "icc_c1", icc[["ICC3"]])
  add(case, section, "", "ms_targets", r$stats["MS", 1])
  add(case, section, "", "ms_raters", r$stats["MS", 2])
  add(case, section, "", "ms_error", r$stats["MS", 3])
  add(case, section, "", "r", cor(x[, 1], x[, 2]))
  add(case, section, "", "mean_diff", mean(x[, 1] - x[, 2]))
  add(case, section, "", "sd_diff", sd(x[, 1] - x[, 2]))
}
for (p in pairs) {
  case <- paste(p, collapse = "-")
  both <- d[!is.na(d[[p[1]]]) & !is.na(d[[p[2]]]), ]
  one(case, "pooled", as.matrix(both[, p]))
  for (s in sort(unique(both$session))) {
    x <- as.matrix(both[both$session == s, p])
    if (nrow(x) >= 3) one(case, as.character(s), x)
  }
}
write_rows("tests/reference/agreement_reference.csv")
writeLines(c(R.version.string, paste("psych", packageVersion("psych"))),
           "tests/reference/agreement_versions.txt")
