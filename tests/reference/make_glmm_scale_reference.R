# lme4 reference for the binomial GLMMs at scale (issue #16): the bench trials' binomial GLMM
# frames (dropout_hazard: discrete-time hazard; suicidality: two crossed random intercepts; and
# for the bench's timings missed_sessions and adherence_alliance), fitted with the call the
# pipeline writes to fit.json `formula_r` (glmerControl(tolPwrss = 1e-10)). The frames are too
# large to commit; they are rebuilt from the bench's fixed seed by
# tests/reference/glmm_scale_frames.py. From the repository root:
#
#   PYTHONPATH=workflow .venv/bin/python tests/reference/glmm_scale_frames.py /tmp/glmm_scale
#   Rscript tests/reference/make_glmm_scale_reference.R /tmp/glmm_scale [--trial T] [model ...]
#
# writes tests/reference/glmm_scale_reference.csv (trial 120k, the default) or
# glmm_scale_reference_<T>.csv (long: case, section, term, stat, value) with fixed effects,
# Hessian and RX-based SEs, VarCorr, theta, logLik and the convergence messages. Given models
# are refitted and replace their rows; the others are kept. Elapsed times (and, with
# GLMM_SCALE_TIME_DEFAULT=1, the time of lme4's default-control fit) go to stdout and to
# tests/reference/glmm_scale_timings.csv (trial, model, call, elapsed and CPU seconds, load
# average at the start, date; read by `make bench`), so the reference CSVs stay
# byte-reproducible. GLMM_SCALE_DEFAULT_ONLY=1 times only lme4's default-control fit (issue #16's
# comparison; at 600k the formula_r fit takes hours). GLMM_SCALE_TIMING_ONLY=1 times the formula_r fits and writes no reference
# rows; GLMM_SCALE_START=1 starts them at our estimates (see below); GLMM_SCALE_NO_REFIT=1 skips
# the bobyqa refit of a formula_r fit that stops short. Every case also gets std_error_exact, the
# SEs from lme4's deviance function differentiated precisely (common.R precise_hessian; lme4's
# own vcov is only good to a few 1e-4); GLMM_SCALE_EXACT_ONLY=1 (re)computes just those for the
# recorded cases, at their recorded estimates, without refitting.
suppressPackageStartupMessages(library(lme4))
source("tests/reference/common.R")  # rows, add(), write_rows(), devfun_for(), add_exact_se()

args <- commandArgs(trailingOnly = TRUE)
frames <- args[[1]]
args <- args[-1]
trial <- "120k"
at <- match("--trial", args)
if (!is.na(at)) {
  trial <- args[[at + 1]]
  args <- args[-c(at, at + 1)]
}
models <- if (length(args)) args else c("dropout_hazard", "suicidality")
out <- if (trial == "120k") {
  "tests/reference/glmm_scale_reference.csv"
} else {
  sprintf("tests/reference/glmm_scale_reference_%s.csv", trial)
}
timings_out <- "tests/reference/glmm_scale_timings.csv"
timings <- list()

# one timed fit: elapsed seconds to stdout and a row of glmm_scale_timings.csv
timed <- function(model, call_name, call_r) {
  load1 <- tryCatch(as.numeric(strsplit(readLines("/proc/loadavg"), " ")[[1]][1]),
                    error = function(e) NA_real_)
  st <- system.time(fit <- eval(parse(text = call_r)), gcFirst = TRUE)
  msgs <- fit@optinfo$conv$lme4$messages
  conv <- !any(grepl("failed to converge", msgs))
  message(sprintf("%s_%s %s: %.1f s elapsed, %.1f s CPU (load %.2f), logLik %.6f%s", model,
                  trial, call_name, st[["elapsed"]], st[["user.self"]] + st[["sys.self"]],
                  load1, as.numeric(logLik(fit)), if (conv) "" else ", not converged"))
  timings[[length(timings) + 1]] <<- data.frame(
    trial = trial, model = model, call = call_name, seconds = round(st[["elapsed"]], 1),
    cpu_seconds = round(st[["user.self"]] + st[["sys.self"]], 1), converged = conv,
    loglik = formatC(as.numeric(logLik(fit)), digits = 12, format = "g"), n_obs = nobs(fit),
    load_start = load1, date = format(Sys.Date()), lme4 = as.character(packageVersion("lme4")),
    stringsAsFactors = FALSE
  )
  fit
}

add_text <- function(case, section, term, stat, text) {
  rows[[length(rows) + 1]] <<- data.frame(
    case = case, section = section, term = term, stat = stat, value = text,
    stringsAsFactors = FALSE
  )
}

record <- function(case, fit, devfun) {
  b <- fixef(fit)
  se_h <- sqrt(diag(as.matrix(vcov(fit, use.hessian = TRUE))))
  se_rx <- sqrt(diag(as.matrix(suppressWarnings(vcov(fit, use.hessian = FALSE)))))
  for (term in names(b)) {
    add(case, "fixef", term, "estimate", b[[term]])
    add(case, "fixef", term, "std_error", se_h[[term]])
    add(case, "fixef", term, "std_error_rx", se_rx[[term]])
  }
  if (!is.null(devfun)) add_exact_se(case, devfun, getME(fit, "theta"), b)
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

# GLMM_SCALE_TIMING_ONLY=1: time the formula_r fits only; no reference rows are written
timing_only <- identical(Sys.getenv("GLMM_SCALE_TIMING_ONLY"), "1")
# GLMM_SCALE_DEFAULT_ONLY=1: time lme4's default-control fit (no glmerControl) only, the
# comparison issue #16 asks for, where the formula_r fit takes hours (600k rows); no reference rows
default_only <- identical(Sys.getenv("GLMM_SCALE_DEFAULT_ONLY"), "1")
timing_only <- timing_only || default_only
# GLMM_SCALE_START=1: the formula_r call started at our estimates (<model>_start.csv, written by
# glmm_scale_frames.py), cases <model>_<trial>_start_ours: lme4 confirms or improves our
# optimum and computes its Hessian SEs there when a fit from lme4's own start takes too long
# (600k rows on a loaded machine); its time is not the formula_r time
start_mode <- identical(Sys.getenv("GLMM_SCALE_START"), "1")
suffix <- if (start_mode) "_start_ours" else ""

# GLMM_SCALE_EXACT_ONLY=1: no fits; the std_error_exact rows of every recorded case of the given
# models are (re)computed at that case's recorded theta and estimates, the other rows kept
if (identical(Sys.getenv("GLMM_SCALE_EXACT_ONLY"), "1")) {
  old <- read.csv(out, colClasses = "character")
  for (model in models) {
    data <- read.csv(file.path(frames, paste0(model, "_frame.csv")), stringsAsFactors = TRUE)
    call_r <- readLines(file.path(frames, paste0(model, "_formula_r.txt")))[[1]]
    if (!exact_se_possible(call_r)) next
    devfun <- devfun_for(call_r)
    for (case in unique(old$case[startsWith(old$case, paste0(model, "_", trial))])) {
      r <- old[old$case == case, ]
      est <- r[r$section == "fixef" & r$stat == "estimate", ]
      message(sprintf("%s: exact SEs", case))
      add_exact_se(case, devfun, as.numeric(r$value[r$section == "theta"]),
                setNames(as.numeric(est$value), est$term))
    }
  }
  new <- do.call(rbind, rows)
  old <- old[!(old$stat == "std_error_exact" & old$case %in% new$case), ]
  all <- rbind(old, new)
  all <- all[order(all$case, seq_len(nrow(all))), ]
  write.csv(all, out, row.names = FALSE, quote = TRUE)
  quit(save = "no")
}

# start = list(theta, fixef) in the model's own order (theta: one SD per random intercept)
start_for <- function(model, call_r) {
  st <- read.csv(file.path(frames, paste0(model, "_start.csv")), stringsAsFactors = FALSE)
  gf <- eval(parse(text = sub("^glmer\\(", "glFormula(", call_r)))
  theta <- st[st$section == "theta", ]
  fixef <- st[st$section == "fixef", ]
  list(theta = theta$value[match(names(gf$reTrms$cnms), theta$term)],
       fixef = setNames(fixef$value, fixef$term)[colnames(gf$X)])
}

for (model in models) {
  case <- paste0(model, "_", trial, suffix)
  data <- read.csv(file.path(frames, paste0(model, "_frame.csv")), stringsAsFactors = TRUE)
  call_r <- readLines(file.path(frames, paste0(model, "_formula_r.txt")))[[1]]
  if (start_mode) {
    start_values <- start_for(model, call_r)
    call_r <- sub("data = data,", "data = data, start = start_values,", call_r, fixed = TRUE)
    add_text(case, "call", "", "formula_r", call_r)
  }
  message(sprintf("%s: %s", case, call_r))
  default_call <- sub(", control = glmerControl\\(tolPwrss = 1e-10\\)", "", call_r)
  if (default_only) {
    timed(model, "default_control", default_call)
    next
  }
  fit <- timed(model, paste0("formula_r", suffix), call_r)
  if (timing_only) next
  # GLMM_SCALE_NO_REFIT=1: no bobyqa refit when formula_r stops short (hours at 600k)
  devfun <- if (exact_se_possible(call_r)) devfun_for(call_r)
  if (!record(case, fit, devfun) && !identical(Sys.getenv("GLMM_SCALE_NO_REFIT"), "1")) {
    tight_call <- sub("glmerControl(", paste0("glmerControl(", BOBYQA), call_r, fixed = TRUE)
    fit <- timed(model, paste0("bobyqa_refit", suffix), tight_call)
    add_text(paste0(case, "_converged"), "call", "", "formula_r", tight_call)
    record(paste0(case, "_converged"), fit, devfun)
  }
  if (identical(Sys.getenv("GLMM_SCALE_TIME_DEFAULT"), "1")) {
    timed(model, "default_control", default_call)
  }
}

# timings: replace this run's (trial, model, call) rows, keep the rest
new_t <- do.call(rbind, timings)
if (file.exists(timings_out)) {
  old_t <- read.csv(timings_out, colClasses = "character")
  for (col in setdiff(names(new_t), names(old_t))) old_t[[col]] <- NA
  old_t <- old_t[, names(new_t)]
  key <- function(d) paste(d$trial, d$model, d$call)
  old_t <- old_t[!(key(old_t) %in% key(new_t)), ]
  if (nrow(old_t)) new_t <- rbind(old_t, new_t)
}
new_t <- new_t[order(new_t$trial, new_t$model, new_t$call), ]
write.csv(new_t, timings_out, row.names = FALSE, quote = TRUE)

if (timing_only) quit(save = "no")

# keep the rows of models not refitted in this run
if (file.exists(out)) {
  old <- read.csv(out, colClasses = "character")
  done <- paste0(models, "_", trial, suffix)
  keep <- old[!(old$case %in% c(done, paste0(done, "_converged"))), ]
  if (nrow(keep)) rows <- c(list(keep), rows)
}
all <- do.call(rbind, rows)
all <- all[order(all$case, seq_len(nrow(all))), ]
write.csv(all, out, row.names = FALSE, quote = TRUE)
writeLines(c(R.version.string, paste("lme4", packageVersion("lme4")),
             paste("Matrix", packageVersion("Matrix"))), "tests/reference/glmm_scale_versions.txt")
