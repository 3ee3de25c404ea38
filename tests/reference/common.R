# Shared by the reference scripts (run from the repository root): collect one row per
# (case, section, term, stat) at full precision and write them as one CSV.
rows <- list()
add <- function(case, section, term, stat, value) {
  rows[[length(rows) + 1]] <<- data.frame(
    case = case, section = section, term = term, stat = stat,
    value = trimws(formatC(as.numeric(value), digits = 17, format = "g")),
    stringsAsFactors = FALSE
  )
}
write_rows <- function(path) {
  write.csv(do.call(rbind, rows), path, row.names = FALSE, quote = TRUE)
}

# The Hessian of a GLMM's Laplace deviance, lme4's own deviance function of c(theta, beta),
# differentiated precisely (issue #16). lme4's vcov(use.hessian = TRUE) uses deriv12 at an
# absolute step 1e-4: its truncation error reaches 4.5e-4 in the SEs of wide-ranged covariates,
# and its diagonal uses the deviance at the optimum itself, which lme4's devfun returns offset
# from its values at the points around it (the 120k hazard's SEs drift by 2.6e-4 as the step
# shrinks from 0.04 to 0.01 SE, with tolPwrss 1e-10 or 1e-13). So: steps of 0.04 and 0.02 of
# each parameter's curvature scale (about its SE), the diagonal from f(+-2d) and f(+-d) only
# ((f(2d) - f(d) - f(-d) + f(-2d)) / 3d^2), the off-diagonal as deriv12's four corners,
# Richardson-extrapolated (truncation O(d^4)); its SEs agree with the exact-gradient Hessian
# of alliance.engine.mixed to about 1e-5 on the 10k and 120k hazards.
precise_hessian <- function(devfun, par) {
  n <- length(par)
  h0 <- lme4:::deriv12(devfun, par, delta = 1e-4)$Hessian
  s <- pmin(1 / sqrt(pmax(diag(h0), 1e-8)), 1)
  f <- function(z) devfun(par + s * z)
  no_centre <- function(d) {
    h <- matrix(0, n, n)
    e <- diag(d, n)
    for (i in seq_len(n)) {
      h[i, i] <- (f(2 * e[, i]) - f(e[, i]) - f(-e[, i]) + f(-2 * e[, i])) / (3 * d^2)
      for (j in seq_len(i - 1)) {
        h[i, j] <- h[j, i] <- (f(e[, i] + e[, j]) - f(e[, i] - e[, j]) - f(e[, j] - e[, i]) +
                                 f(-e[, i] - e[, j])) / (4 * d^2)
      }
    }
    h
  }
  (4 * no_centre(0.02) - no_centre(0.04)) / 3 / outer(s, s)
}

# lme4's deviance function of c(theta, beta) for a glmer call on the frame `data` of the caller
devfun_for <- function(call_r, env = parent.frame()) {
  eval(parse(text = sub("glmer(", "glmer(devFunOnly = TRUE, ", call_r, fixed = TRUE)), env)
}

# Whether precise_hessian applies to a glmer call: not with binomial proportions and trials
# `weights`, where lme4's devFunOnly deviance does not reproduce its own fit's Hessian (demo
# adherence_alliance: its vcov() equals ours to 1e-5, its devfun's precise Hessian is 17 % off;
# on the 10k frame its vcov() is 1/59 of both), so no exact reference is written there.
exact_se_possible <- function(call_r) !grepl("weights = ", call_r, fixed = TRUE)

# rows fixef <term> std_error_exact: the SEs from precise_hessian at (theta, beta)
add_exact_se <- function(case, devfun, theta, beta) {
  v <- 2 * solve(precise_hessian(devfun, c(theta, beta)))
  se <- sqrt(diag(v))[-seq_along(theta)]
  for (i in seq_along(beta)) add(case, "fixef", names(beta)[i], "std_error_exact", se[[i]])
}
