"""Configuration: the JSON schema check and the effective config every stage sees.

``config.yaml`` is validated against ``workflow/schemas/config.schema.yaml`` (defaults filled in).
When ``dataset.root`` is null the pipeline runs on the embedded synthetic dataset and the
``embedded`` block is merged over the paper's defaults, then the result is validated again, so a
bad override is reported like a bad top-level key. No torch import here: the Snakefile uses it.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"
EMBEDDED_SECTIONS = ("dataset", "classifier", "seeds", "crf", "affinity", "random_walk")


class ConfigError(ValueError):
    """A config key or value is invalid; the message names the key."""


def load_schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _error_key(err) -> str:
    path = ".".join(str(p) for p in err.absolute_path)
    if err.validator == "additionalProperties":
        return f"{path + '.' if path else ''}<unknown key>"
    return path or "<top level>"


def validate(config: dict, schema: dict | None = None) -> dict:
    """Validate in place, filling defaults; raises ConfigError naming the offending key."""
    import jsonschema

    schema = schema or load_schema()
    validator_cls = jsonschema.validators.validator_for(schema)

    def set_defaults(validator, properties, instance, schema_):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if isinstance(sub, dict) and "$ref" in sub and "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
                elif isinstance(sub, dict) and "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validator_cls.VALIDATORS["properties"](validator, properties, instance, schema_)

    filling = jsonschema.validators.extend(validator_cls, {"properties": set_defaults})
    errors = sorted(filling(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"config key {_error_key(e)}: {e.message}" for e in errors]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines) +
                          "\nSee workflow/schemas/config.schema.yaml for every key's type and range.")
    return config


def uses_embedded_dataset(config: dict) -> bool:
    return config.get("dataset", {}).get("root") in (None, "")


def effective_config(config: dict) -> dict:
    """Validated config with the ``embedded`` overrides applied when the embedded dataset is used."""
    config = validate(copy.deepcopy(config))
    if uses_embedded_dataset(config):
        for section in EMBEDDED_SECTIONS:
            config[section].update(copy.deepcopy(config["embedded"].get(section, {})))
        config = validate(config)
    return config


def voc_root(config: dict) -> Path:
    """The VOC2012 directory the pipeline reads (the generated one for the embedded dataset)."""
    if uses_embedded_dataset(config):
        return Path(config["synthetic"]["dir"]) / "VOCdevkit" / "VOC2012"
    return Path(config["dataset"]["root"])


def deep_update(base: dict, overlay: dict) -> dict:
    """Merge ``overlay`` into ``base`` section by section (what Snakemake does with --configfile)."""
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def load_config(path: str | Path = "config.yaml", overrides: dict | None = None,
                overlays: tuple[str | Path, ...] = ()) -> dict:
    """Read a YAML config file, merge overlay files (e.g. ``presets/psa.yaml``) over it, apply
    dotted-key overrides, return the effective config."""
    config = {}
    for file in (path, *overlays):
        file = Path(file)
        if not file.is_file():
            raise ConfigError(f"config file {file} not found")
        deep_update(config, yaml.safe_load(file.read_text()) or {})
    for key, value in (overrides or {}).items():
        node = config
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return effective_config(config)


def to_json(obj) -> str:
    """Compact, key-sorted JSON: rule params (so Snakemake reruns a rule when its params change)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def resolve_device(name: str):
    """torch.device for a config value; a clear error when CUDA is requested but absent."""
    import torch

    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"config key device: {name!r} requested but no CUDA device is available here; "
            "set device: cpu in config.yaml (or --config device=cpu)."
        )
    return torch.device(name)
