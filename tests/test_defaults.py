"""Defaults written once: workflow/schemas/config.schema.yaml is the one source; config.yaml,
the `embedded:` overrides and the Python dataclasses that carry config keys must not say otherwise."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
import yaml

from vitaff.config import _resolve, load_schema, schema_default, validate

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = load_schema()


def schema_node(path: tuple[str, ...]) -> dict | None:
    node = SCHEMA
    for part in path:
        node = _resolve(node, SCHEMA).get("properties", {}).get(part)
        if node is None:
            return None
    return _resolve(node, SCHEMA)


def leaves(config: dict, path: tuple[str, ...] = ()):
    """(dotted key path, value, schema node) of every value of a config (sections walked)."""
    for key, value in config.items():
        p = path + (key,)
        node = schema_node(p)
        if isinstance(value, dict) and node is not None and "properties" in node:
            yield from leaves(value, p)
        else:
            yield p, value, node


def test_config_yaml_values_are_the_schema_defaults():
    """config.yaml shows the defaults a user edits: each of its values is the schema's default,
    and every key it sets is documented (with a default) in the schema."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config.pop("embedded")
    problems = []
    for path, value, node in leaves(config):
        key = ".".join(path)
        if node is None or "default" not in node:
            problems.append(f"{key}: not in the schema with a default")
        elif node["default"] != value:
            problems.append(f"{key}: config.yaml {value!r}, schema default {node['default']!r}")
    assert not problems, "\n".join(problems)


def test_embedded_overrides_change_something():
    """An `embedded:` override equal to the value it overrides is a second copy of that value."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    base = validate(copy.deepcopy(config))
    same = [f"embedded.{section}.{key}" for section, overrides in config["embedded"].items()
            for key, value in overrides.items() if base[section].get(key) == value]
    assert not same, f"overrides equal to the base value: {same}"


def dataclass_defaults(cls) -> dict:
    return {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}


def schema_section_defaults(section: str) -> dict:
    node = schema_node(tuple(section.split(".")))
    return {k: v["default"] for k, v in ((k, _resolve(v, SCHEMA)) for k, v in node["properties"].items())
            if "default" in v}


def _synthetic():
    from vitaff.data.synthetic import SyntheticConfig
    return SyntheticConfig


def _explain_sets():
    from vitaff.data.imagenet_seg import EmbeddedSets
    return EmbeddedSets


def _classifier_settings():
    from vitaff.classifier import TrainSettings
    return TrainSettings


@pytest.mark.parametrize("section, get_cls", [("synthetic", _synthetic), ("explain.embedded", _explain_sets),
                                              ("classifier", _classifier_settings)])
def test_dataclass_defaults_agree_with_the_schema(section, get_cls):
    """A dataclass field named like a key of the section has the schema's default (or none)."""
    cls = get_cls()
    schema = schema_section_defaults(section)
    ours = dataclass_defaults(cls)
    shared = sorted(set(ours) & set(schema))
    assert shared, f"{cls.__name__} shares no key with {section}"
    norm = lambda v: list(v) if isinstance(v, tuple) else v  # noqa: E731
    wrong = [f"{section}.{k}: {cls.__name__} {ours[k]!r}, schema {schema[k]!r}" for k in shared
             if norm(ours[k]) != norm(schema[k])]
    assert not wrong, "\n".join(wrong)


def test_schema_default_reads_the_schema():
    assert schema_default("synthetic.n_train") == SCHEMA["properties"]["synthetic"]["properties"]["n_train"]["default"]
    assert schema_default("classifier.lr") == SCHEMA["definitions"]["classifier"]["properties"]["lr"]["default"]
    with pytest.raises(KeyError):
        schema_default("synthetic.no_such_key")
