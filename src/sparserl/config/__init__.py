"""The run configuration: the schema in sections (sections.py, combined in schema.py), YAML
coercion (coerce.py), presets (presets.py), and the one resolution function (resolve.py).

    from sparserl.config import Config, resolve_config
    config = resolve_config(preset="rlx2-td3", env="Hopper-v5", total_steps=300_000)
"""

from sparserl.config.coerce import coerce_fields, fold_sparsity
from sparserl.config.merge import SPARSITY_KEYS, merged
from sparserl.config.presets import list_presets, load_preset, preset_envs, preset_header, read_mapping
from sparserl.config.resolve import load_yaml, resolve_config, resolve_values
from sparserl.config.schema import Config
from sparserl.config.sparsity import NetworkSparsity

__all__ = ["SPARSITY_KEYS", "Config", "NetworkSparsity", "coerce_fields", "fold_sparsity", "list_presets",
           "load_preset", "load_yaml", "merged", "preset_envs", "preset_header", "read_mapping", "resolve_config",
           "resolve_values"]
