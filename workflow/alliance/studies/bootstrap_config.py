"""The check of config `bootstrap:` that the Snakefile runs while it is parsed.

Apart from alliance.studies.bootstrap so that parsing the workflow does not import what the
bootstrap jobs fit with (pandas, the model kinds).
"""

from __future__ import annotations

from collections.abc import Sequence

from alliance.errors import ConfigError
from alliance.settings import BootstrapSettings


def check_models(bootstrap: BootstrapSettings, model_ids: Sequence[str]) -> BootstrapSettings:
    """`bootstrap` itself when every model it lists is one of `model_ids` (none given: nothing
    to check); else a ConfigError. (The schema already holds `n_boot` and `shards` >= 1.)
    """
    unknown = [m for m in bootstrap.models if m not in model_ids] if model_ids else []
    if unknown:
        raise ConfigError(
            f"config key bootstrap.models: unknown model id(s) {unknown}; models are "
            f"{', '.join(model_ids)}"
        )
    return bootstrap
