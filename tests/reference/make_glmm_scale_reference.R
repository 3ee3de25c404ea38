# lme4 reference for the binomial GLMMs at scale (issue #16, item 0): the 120k-row bench trial's
# dropout_hazard (discrete-time hazard) and suicidality (two crossed random intercepts) frames,
# fitted with the call the pipeline writes to fit.json `formula_r`
# (glmerControl(tolPwrss = 1e-10)). The frames are too large to commit; they are rebuilt from
# the bench's fixed seed by tests/reference/glmm_scale_frames.py. From the repository root:
#
#   PYTHONPATH=workflow .venv/bin/python tests/reference/glmm_scale_frames.py /tmp/glmm_scale
#   Rscript tests/reference/make_glmm_scale_reference.R /tmp/glmm_scale [model ...]
#
# writes tests/reference/glmm_scale_reference.csv (long: case, section, term, stat, value) with
# fixed effects, Hessian and RX-based SEs, VarCorr, theta, logLik and the convergence messages.
# Given models are refitted and replace their rows; the others are kept. Elapsed times (and,
# with GLMM_SCALE_TIME_DEFAULT=1, the time of lme4's default-control fit) go to stdout only, so
# the CSV stays byte-reproducible.
suppressPackageStartupMessages(library(lme4))
source("tests/reference/common.R")  # rows, add(), write_rows()

out <- "tests/reference/glmm_scale_reference.csv"
args <- commandArgs(trailingOnly = TRUE)
frames <- args[[1]]
models <- if (length(args) > 1) args[-1] else c("dropout_hazard", "suicidality")
trial <- "120k"

add_text <- function(case, section, term, stat, text) {
  rows[[length(rows) + 1]] <<- data.frame(
    case = case, section = section, term = term, stat = stat, value = text,
    stringsAsFactors = FALSE
  )
}

record <- function(case, fit) {
  b <- fixef(fit)
  se_h <- sqrt(diag(as.matrix(vcov(fit, use.hessian = TRUE))))
  se_rx <- sqrt(diag(as.matrix(suppressWarnings(vcov(fit, use.hessian = FALSE)))))
  for (term in names(b)) {
    add(case, "fixef", term, "estimate", b[[term]])
    add(case, "fixef", term, "std_error", se_h[[term]])
    add(case, "fixef", term, "std_error_rx", se_rx[[term]])
  }
  vc <- as.data.frame(VarCorr(fit))
  for (i in seq_len(nrow(vc))) {
    term <- paste(vc$grp[i], vc$var1[i], ifelse(is.na(vc$var2[i]), "", vc$var2[i]), sep = "|")
    add(case, "varcorr", term, "vcov", vc$vcov[i])
    add(case, "varcorr", term, "sdcor", vc$sdcor[i])
  }
  theta <- getME(fit, "theta")
  for (i in seq_along(theta)) add(case, "theta", names(theta)[i], "theta", theta[[i]])
  add(case, "fit", "", "loglik", as.numeric(logLik(fit)))
  add(case, "fit", "", "n_obs", nobs(fit))
  add(case, "fit", "", "singular", as.numeric(isSingular(fit)))
  for (g in names(ngrps(fit))) add(case, "n_groups", g, "n", ngrps(fit)[[g]])
  opt <- fit@optinfo
  add(case, "convergence", "", "optimizer_code", opt$conv$opt)
  add(case, "convergence", "", "feval", opt$feval)
  msgs <- gsub("\\s+", " ", unlist(c(opt$conv$lme4$messages, opt$warnings)))
  add_text(case, "convergence", "", "messages", paste(msgs, collapse = " | "))
  length(opt$conv$lme4$messages[grepl("failed to converge", opt$conv$lme4$messages)]) == 0
}

# When the formula_r fit stops short (lme4's checkConv gradient test fails), the optimum is
# also fitted with bobyqa run to a small trust region (case <model>_<trial>_converged); the
# test compares with that one.
BOBYQA <- 'optimizer = "bobyqa", optCtrl = list(maxfun = 1e5, rhoend = 1e-10), '

for (model in models) {
  case <- paste0(model, "_", trial)
  data <- read.csv(file.path(frames, paste0(model, "_frame.csv")), stringsAsFactors = TRUE)
  call_r <- readLines(file.path(frames, paste0(model, "_formula_r.txt")))[[1]]
  elapsed <- system.time(fit <- eval(parse(text = call_r)))[["elapsed"]]
  message(sprintf("%s: %s  %.1f s (tolPwrss = 1e-10)", case, call_r, elapsed))
  if (!record(case, fit)) {
    tight_call <- sub("glmerControl(", paste0("glmerControl(", BOBYQA), call_r, fixed = TRUE)
    elapsed <- system.time(fit <- eval(parse(text = tight_call)))[["elapsed"]]
    message(sprintf("%s_converged: %s  %.1f s", case, tight_call, elapsed))
    add_text(paste0(case, "_converged"), "call", "", "formula_r", tight_call)
    record(paste0(case, "_converged"), fit)
  }
  if (identical(Sys.getenv("GLMM_SCALE_TIME_DEFAULT"), "1")) {
    default_call <- sub(", control = glmerControl\\(tolPwrss = 1e-10\\)", "", call_r)
    t_default <- system.time(fd <- eval(parse(text = default_call)))[["elapsed"]]
    message(sprintf("%s: default control %.1f s, logLik %.6f (tight %.6f)", case, t_default,
                    as.numeric(logLik(fd)), as.numeric(logLik(fit))))
  }
}

# keep the rows of models not refitted in this run
if (file.exists(out)) {
  old <- read.csv(out, colClasses = "character")
  keep <- old[!(old$case %in% c(paste0(models, "_", trial), paste0(models, "_", trial, "_converged"))), ]
  if (nrow(keep)) rows <- c(list(keep), rows)
}
all <- do.call(rbind, rows)
all <- all[order(all$case, seq_len(nrow(all))), ]
write.csv(all, out, row.names = FALSE, quote = TRUE)
writeLines(c(R.version.string, paste("lme4", packageVersion("lme4")),
             paste("Matrix", packageVersion("Matrix"))), "tests/reference/glmm_scale_versions.txt")
