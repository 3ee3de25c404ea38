"""Write tests/reference/bootstrap_uniforms.csv: the uniforms relapse_cox's bootstrap bias
correction draws its replicate data sets from on sim_relapse_small.csv (73 rows), with config
seed 1 (the tests' context) and model id relapse_cox, so that make_bootstrap_bias_reference.R
rebuilds the same data sets with its own code and refits them.

Run from the repository root: PYTHONPATH=workflow .venv/bin/python
tests/reference/make_bootstrap_uniforms.py. Two rows per replicate (`draw`: event, censoring),
columns u1..u73 in the data file's row order, 17 significant digits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from alliance.engine.bootstrap import derive_seed
from alliance.engine.survival_bias import replicate_uniforms

HERE = Path(__file__).parent
CONFIG_SEED = 1
MODEL_ID = "relapse_cox"
N_BOOT = 30


def main() -> None:
    """Draw the uniforms and write them."""
    n_rows = len(pd.read_csv(HERE / "sim_relapse_small.csv"))
    seed = derive_seed(CONFIG_SEED, MODEL_ID)
    u = np.concatenate([replicate_uniforms(seed, b, n_rows) for b in range(N_BOOT)])
    table = pd.DataFrame(u, columns=[f"u{i + 1}" for i in range(n_rows)])
    table.insert(0, "draw", ["event", "censoring"] * N_BOOT)
    table.insert(0, "replicate", np.repeat(np.arange(1, N_BOOT + 1), 2))
    table.to_csv(HERE / "bootstrap_uniforms.csv", index=False, float_format="%.17g")


if __name__ == "__main__":
    main()
