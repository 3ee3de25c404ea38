"""Clean stage: read a trial export, map its columns, validate, derive outcomes, pseudonymise."""
