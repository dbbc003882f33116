"""Config validation: defaults, embedded overrides, and errors that name the key."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vitaff.config import ConfigError, effective_config, load_config, voc_root

REPO = Path(__file__).resolve().parents[1]


def base():
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_shipped_config_is_valid_and_embedded():
    cfg = load_config(REPO / "config.yaml")
    assert cfg["classifier"]["model"] == "vit_hybrid_synth"  # embedded override applied
    # embedded-only constants (README): neutral zone, pixel-unit CRF kernels, part hiding
    assert cfg["crf"]["alpha_low"] == 16 and cfg["crf"]["alpha_high"] == 128
    assert cfg["crf"]["gaussian_sxy"] == 1 and cfg["crf"]["bilateral_sxy"] == 20
    assert cfg["classifier"]["part_hiding"] == 0.8 and cfg["seeds"]["cube_root"] is True
    assert cfg["synthetic"]["body_textures"] == "class"
    assert cfg["affinity"]["radius"] == 5
    assert voc_root(cfg) == Path("data/synthetic/VOCdevkit/VOC2012")
    # the real run keeps the study's values for all of them
    real = load_config(REPO / "config.yaml", {"dataset.root": "/data/VOCdevkit/VOC2012"})
    assert real["crf"]["alpha_low"] == 4 and real["crf"]["alpha_high"] == 32
    assert real["crf"]["gaussian_sxy"] == 3 and real["crf"]["bilateral_sxy"] == 80
    assert real["classifier"]["part_hiding"] == 0


def test_real_root_keeps_paper_values():
    raw = base()
    raw["dataset"]["root"] = "/data/VOCdevkit/VOC2012"
    cfg = effective_config(raw)
    assert cfg["classifier"]["model"] == "vit_base_r50_s16_384"
    assert cfg["classifier"]["img_size"] == 448 and cfg["classifier"]["epochs"] == 20
    assert voc_root(cfg) == Path("/data/VOCdevkit/VOC2012")


def test_defaults_fill_missing_sections():
    cfg = effective_config({"dataset": {"root": "/x"}})
    assert cfg["random_walk"] == {"beta": 16, "logt": 8, "bg_power": 16, "ceiling_bg_powers": [4, 8, 16, 32, 64]}
    assert cfg["seeds"]["bg_threshold"] == 0.2
    assert cfg["device"] == "cpu"


@pytest.mark.parametrize("key, value, message", [
    ("crf.alpha_low", -1, "crf.alpha_low"),
    ("random_walk.logt", 1.5, "random_walk.logt"),
    ("device", "tpu", "device"),
    ("dataset.shards", 0, "dataset.shards"),
    ("seeds.method", "magic", "seeds.method"),
    ("classifier.color_jitter", [0.3, 0.3], "classifier.color_jitter"),
])
def test_bad_values_name_the_key(key, value, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_config(REPO / "config.yaml", {key: value})


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match="alpah_low"):
        load_config(REPO / "config.yaml", {"crf.alpah_low": 3})


def test_bad_embedded_override_is_named():
    with pytest.raises(ConfigError, match=r"classifier\.epochs"):
        load_config(REPO / "config.yaml", {"embedded.classifier.epochs": 0})


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_snakemake_stops_before_any_job_on_bad_config(tmp_path):
    bad = base()
    bad["crf"]["bilateral_srgb"] = "thirteen"
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    snakemake = shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")
    proc = subprocess.run([snakemake, "-n", "results/voc_miou.csv", "--configfile", str(tmp_path / "bad.yaml")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "bilateral_srgb" in proc.stdout + proc.stderr
