"""Configuration: the JSON schema check and the effective config every stage sees.

``config.yaml`` is validated against ``workflow/schemas/config.schema.yaml`` (defaults filled in).
When ``dataset.root`` is null the pipeline runs on the embedded synthetic dataset and the
``embedded`` block is merged over the paper's defaults, then the result is validated again, so a
bad override is reported like a bad top-level key. No torch import here: the Snakefile uses it.
"""

from __future__ import annotations

import copy
import difflib
import json
from pathlib import Path

import yaml

from vitaff.errors import VitaffError

REPO_ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"
EMBEDDED_SECTIONS = ("dataset", "classifier", "cam", "seeds", "crf", "affinity", "random_walk", "segmentation")


class ConfigError(VitaffError, ValueError):
    """A config key or value is invalid; the message names the key."""


def load_schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


_SCHEMA: dict | None = None


def schema_default(dotted: str):
    """The schema's default of a config key (``synthetic.n_train``): Python code that needs the
    value takes it from here, the one place defaults are written."""
    global _SCHEMA
    if _SCHEMA is None:
        _SCHEMA = load_schema()
    node = _SCHEMA
    for part in dotted.split("."):
        node = _resolve(node, _SCHEMA).get("properties", {}).get(part)
        if node is None:
            raise KeyError(f"{dotted} is not a key of {SCHEMA_PATH}")
    node = _resolve(node, _SCHEMA)
    if "default" not in node:
        raise KeyError(f"{dotted} has no default in {SCHEMA_PATH}")
    return copy.deepcopy(node["default"])


def _resolve(node: dict, schema: dict) -> dict:
    """Follow a local ``$ref`` (``#/definitions/...``) of the schema."""
    while isinstance(node, dict) and "$ref" in node:
        target = schema
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _types(node: dict) -> set:
    t = node.get("type", [])
    return {t} if isinstance(t, str) else set(t)


_PARSED_TYPES = {"integer": int, "number": (int, float), "boolean": bool, "null": type(None)}


def _coerce(value, node: dict):
    """A string where the schema wants a number, boolean or null, parsed as YAML when it is one.

    Snakemake passes nested ``--config`` values as strings (``--config crf='{"alpha_low": 8}'``
    gives ``{"alpha_low": "8"}``); this makes them what the same text means in config.yaml.
    """
    types = _types(node)
    if not isinstance(value, str) or not types:
        return value
    if "string" in types:  # only a null may hide in a string here (checkpoint='null')
        return None if "null" in types and value in ("null", "~") else value
    for parse in (int, float, yaml.safe_load):  # int/float as Snakemake parses top-level values
        try:
            parsed = parse(value)
        except (ValueError, yaml.YAMLError):
            continue
        if isinstance(parsed, bool) and "boolean" not in types:
            continue
        if isinstance(parsed, tuple(_PARSED_TYPES[t] for t in types if t in _PARSED_TYPES)):
            return parsed
    return value


def _coerce_strings(instance, node: dict, schema: dict):
    """Apply :func:`_coerce` through dicts and lists, following the schema."""
    node = _resolve(node, schema)
    if isinstance(instance, dict):
        props = node.get("properties", {})
        for key, value in instance.items():
            if key in props:
                instance[key] = _coerce_strings(value, props[key], schema)
        return instance
    if isinstance(instance, list) and isinstance(node.get("items"), dict):
        return [_coerce_strings(v, node["items"], schema) for v in instance]
    return _coerce(instance, node)


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


#: config keys holding a model name of vitaff.models.create_model
MODEL_KEYS = ("classifier.model", "explain.model", "explain.embedded.model", "embedded.classifier.model")


def _get(config: dict, dotted: str):
    node = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _error_lines(err, names: dict) -> list[str]:
    """One line per problem: the key (as the user wrote it), the bad value and what is wrong."""
    path = ".".join(str(p) for p in err.absolute_path)
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        valid = list(err.schema.get("properties", {}))
        lines = []
        for key in sorted(k for k in err.instance if k not in valid):
            full = f"{path}.{key}" if path else key
            close = difflib.get_close_matches(key, valid, n=1)
            hint = (f"did you mean {close[0]}?" if close else
                    f"valid keys{' of ' + path if path else ''}: {', '.join(valid)}")
            lines.append(f"config key {names.get(full, full)}: unknown key; {hint}")
        return lines
    key = names.get(path, path) or "<top level>"
    message = err.message
    if err.validator == "enum":
        options = [str(o) for o in err.validator_value]
        close = difflib.get_close_matches(str(err.instance), options, n=1)
        message = (f"{_short(err.instance)} is not one of {', '.join(options)}"
                   + (f" (did you mean {close[0]}?)" if close else ""))
    elif len(message) > 160:  # jsonschema repeats the value: a whole section for a section
        message = f"{_short(err.instance)} fails {err.validator} {_short(err.validator_value)}"
    hint = ""
    if isinstance(err.instance, str) and err.validator == "type":
        hint = (" (given as text; a nested key can also be set in a YAML overlay:"
                " snakemake --configfile my.yaml -- <target>, see README 'Configuration')")
    return [f"config key {key}: {message}{hint}"]


def validate(config: dict, schema: dict | None = None, names: dict | None = None) -> dict:
    """Validate in place, filling defaults and parsing numeric strings; check model names.

    Raises ConfigError with one line per problem naming the key (``names`` maps a key to how the
    user wrote it, e.g. an ``embedded`` override), the bad value, and for an unknown key the
    closest valid one.
    """
    import jsonschema

    from vitaff.model_names import unknown_model_message

    schema = schema or load_schema()
    names = names or {}
    validator_cls = jsonschema.validators.validator_for(schema)

    def set_defaults(validator, properties, instance, schema_):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if isinstance(sub, dict) and "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validator_cls.VALIDATORS["properties"](validator, properties, instance, schema_)

    _coerce_strings(config, schema, schema)
    filling = jsonschema.validators.extend(validator_cls, {"properties": set_defaults})
    errors = sorted(filling(schema).iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    lines = [line for e in errors for line in _error_lines(e, names)]
    for key in MODEL_KEYS:
        name = _get(config, key)
        problem = unknown_model_message(name) if isinstance(name, str) else None
        if problem and not any(line.startswith(f"config key {names.get(key, key)}:") for line in lines):
            lines.append(f"config key {names.get(key, key)}: {problem}")
    if not lines and isinstance(config.get("segmentation"), dict):
        lines += [f"config key {names.get(key, key)}: {text}"
                  for key, text in _segmentation_key_problems(config["segmentation"])]
    if lines:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(dict.fromkeys(lines)) +
                          "\nSee workflow/schemas/config.schema.yaml for every key's type and range.")
    return config


SEGMENTATION_STEM = "deeplabv3_classifier_stem"
SEGMENTATION_INITS = {  # network -> the inits it accepts (vitaff.segmentation.build_network)
    "deeplabv3_resnet101": ("imagenet", "scratch", "mask_pretrained"),
    "deeplabv3_resnet50": ("imagenet", "scratch", "mask_pretrained"),
    SEGMENTATION_STEM: ("classifier", "scratch"),
}


def _segmentation_key_problems(seg: dict) -> list[tuple[str, str]]:
    """(key, problem) pairs of a filled-in ``segmentation`` section that the schema cannot express."""
    out = []
    network, init = seg.get("network"), seg.get("init")
    if init == "mask_pretrained" and not seg.get("allow_mask_pretrained"):
        out.append(("segmentation.init", "mask_pretrained starts from weights trained on segmentation masks (pixel "
                    "supervision the weakly-supervised protocol excludes); set segmentation.allow_mask_pretrained: "
                    "true to allow it (every row of results/segmentation_miou.csv then says init=mask_pretrained)"))
    if network in SEGMENTATION_INITS and init not in SEGMENTATION_INITS[network]:
        out.append(("segmentation.init", f"{init!r} does not apply to segmentation.network {network}; "
                    f"use one of {', '.join(SEGMENTATION_INITS[network])}"))
    batch, steps = seg.get("batch_size"), seg.get("accumulation_steps")
    if isinstance(batch, int) and isinstance(steps, int):
        if batch % steps:
            out.append(("segmentation.batch_size", f"{batch} is not a multiple of segmentation.accumulation_steps {steps}"))
        elif batch // steps < 2:
            out.append(("segmentation.batch_size", f"{batch} / accumulation_steps {steps} = {batch // steps} image per "
                        "micro-batch; the ASPP's image-pooling branch normalises over the micro-batch and needs at "
                        "least 2"))
    return out


def segmentation_problems(seg: dict) -> list[str]:
    """One line per problem of a ``segmentation`` section (also checked at validation)."""
    return [f"config key {key}: {text}" for key, text in _segmentation_key_problems(seg)]


def uses_embedded_dataset(config: dict) -> bool:
    return config.get("dataset", {}).get("root") in (None, "")


def effective_config(config: dict) -> dict:
    """Validated config with the ``embedded`` overrides applied when the embedded dataset is used."""
    config = validate(copy.deepcopy(config))
    if uses_embedded_dataset(config) and config["dataset"]["format"] != "voc":
        raise ConfigError(f"config key dataset.format: {config['dataset']['format']} needs dataset.root (the "
                          "dataset's directory); the embedded synthetic dataset is VOC-layout (format voc)")
    if uses_embedded_dataset(config):
        names = {}
        for section in EMBEDDED_SECTIONS:
            override = copy.deepcopy(config["embedded"].get(section, {}))
            deep_update(config[section], override)  # nested sections (segmentation.crf) key by key
            names.update({f"{section}.{k}": f"embedded.{section}.{k}" for k in override})
        config = validate(config, names=names)
    return config


def voc_root(config: dict) -> Path:
    """The VOC-layout directory the pipeline reads: the generated one for the embedded dataset, the
    view of a COCO root (vitaff.data.coco) for ``dataset.format: coco``, else ``dataset.root``."""
    if uses_embedded_dataset(config):
        return Path(config["synthetic"]["dir"]) / "VOCdevkit" / "VOC2012"
    if config["dataset"].get("format") == "coco":
        return coco_view_dir(config) / "VOC"
    return Path(config["dataset"]["root"])


def coco_view_dir(config: dict) -> Path:
    """Where a COCO root's annotation indexes and VOC-layout view live (``dataset.view_dir``)."""
    return Path(config["dataset"]["view_dir"])


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
