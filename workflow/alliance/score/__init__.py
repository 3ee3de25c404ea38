"""Score stage: alliance scales per rater, reliability, agreement, levels, ruptures."""
