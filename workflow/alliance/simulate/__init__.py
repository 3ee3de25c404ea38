"""Simulated trials with known truth (the demo, recovery and power studies) and their export."""
