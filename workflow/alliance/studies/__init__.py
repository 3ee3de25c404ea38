"""Replicated studies over the stages: recovery, sensitivity grid, model bootstrap, bench."""
