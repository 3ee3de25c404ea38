"""Render stage: publication tables (APA), the shared figure style, and the HTML report."""
