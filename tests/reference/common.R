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
