"""Instrument definitions (items, range, subscales, reverse keys) and item keying.

Shared by the clean stage (symptom totals) and the score stage (alliance scales).
"""
