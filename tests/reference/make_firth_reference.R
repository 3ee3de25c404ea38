# Writes tests/reference/firth_reference.csv: Firth-penalised Cox fits (coxphf's estimator, written
# with survival only in firth_coxph.R) that tests/test_engine_survival_firth.py and
# tests/test_models_cox.py compare against. Run from the repository root:
#   Rscript tests/reference/make_firth_reference.R
# Needs (Debian): r-base-core r-cran-survival. Deterministic: the data sets are fixed files.
#
# Cases (long table: case, section, term, stat, value):
#   sim_efron, sim_breslow      sim_cox_cluster.csv: week, relapse ~ alliance + arm (tied weeks)
#   sim_profile_mle             the same, penalty 0: profile-likelihood CIs of the ordinary MLE
#   monotone_breslow/_efron     sim_cox_cluster.csv with `early` = relapse within 8 weeks: at
#                               every event time the highest value has the event, so the MLE
#                               of `early` is infinite (monotone likelihood) and Firth's is not
#   relapse_efron, _breslow     sim_relapse_small.csv: the project's simulator, 73 responders,
#                               28 relapses, 6 terms, 23 therapists (robust and CR1 SEs too)
source("tests/reference/common.R")  # rows, add(), write_rows()
source("tests/reference/firth_coxph.R")

add_firth <- function(case, fit) {
  for (j in seq_along(fit$coefficients)) {
    term <- names(fit$coefficients)[j]
    add(case, "coef", term, "estimate", fit$coefficients[j])
    add(case, "coef", term, "std_error", fit$se[j])
    add(case, "coef", term, "ci_low", fit$ci_low[j])
    add(case, "coef", term, "ci_high", fit$ci_high[j])
    add(case, "coef", term, "chisq", fit$chisq[j])
    add(case, "coef", term, "p_value", fit$p[j])
    if (!is.null(fit$robust_se)) {
      add(case, "coef", term, "robust_se", fit$robust_se[j])
      add(case, "coef", term, "robust_cr1_se", fit$robust_cr1_se[j])
    }
  }
  add(case, "fit", "", "loglik_penalised", fit$loglik_penalised)
  add(case, "fit", "", "loglik", fit$loglik)
  add(case, "fit", "", "loglik_penalised_null", fit$loglik_penalised_null)
  if (!is.null(fit$n_clusters)) add(case, "fit", "", "n_clusters", fit$n_clusters)
}

sim <- read.csv("tests/reference/sim_cox_cluster.csv")
f_sim <- Surv(week, relapse) ~ alliance + arm
add_firth("sim_efron", firth_coxph(f_sim, sim, "efron", cluster = "therapist"))
add_firth("sim_breslow", firth_coxph(f_sim, sim, "breslow"))
add_firth("sim_profile_mle", firth_coxph(f_sim, sim, "efron", penalty = 0))

sim$early <- as.integer(sim$relapse == 1 & sim$week <= 8)
f_mono <- Surv(week, relapse) ~ alliance + early
add_firth("monotone_breslow", firth_coxph(f_mono, sim, "breslow"))
add_firth("monotone_efron", firth_coxph(f_mono, sim, "efron"))

rel <- read.csv("tests/reference/sim_relapse_small.csv")
f_rel <- Surv(relapse_time, relapse_event) ~ alliance_last + alliance_mean + baseline_symptom +
  armCBT + armIMI.CM + armIPT
add_firth("relapse_efron", firth_coxph(f_rel, rel, "efron", cluster = "therapist"))
add_firth("relapse_breslow", firth_coxph(f_rel, rel, "breslow"))

write_rows("tests/reference/firth_reference.csv")
