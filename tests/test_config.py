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
    assert cfg["crf"]["alpha_low"] == 16 and cfg["crf"]["alpha_high"] == 48
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
    assert cfg["random_walk"] == {"beta": 16, "logt": 8, "bg_power": 4, "precision": "float64",
                                  "ceiling_bg_powers": [4, 8, 16, 32, 64]}
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


# The study's constants (SPEC 5-6, the study's code) that the real run must carry with dataset.root set.
STUDY = {
    "dataset.train_split": "train_aug", "dataset.label_source": "annotations", "dataset.eval_split": "val",
    "dataset.train_score_split": "train", "dataset.mask_dir": "SegmentationClass",
    "classifier.model": "vit_base_r50_s16_384", "classifier.img_size": 448, "classifier.epochs": 20,
    "classifier.batch_size": 8, "classifier.optimizer": "sgd", "classifier.lr": 0.005,
    "classifier.weight_decay": 0.0001,
    "seeds.method": "transformer_attribution", "seeds.start_layer": 0, "seeds.cube_root": True, "seeds.flip": True,
    "crf.alpha_low": 4, "crf.alpha_high": 32,
    "affinity.radius": 5, "affinity.input": "resize", "affinity.crop_size": 448, "affinity.lr": 0.1,
    "affinity.backbone_lr_mult": 1.0, "affinity.epochs": 7, "affinity.batch_size": 8,
    "affinity.weight_decay": 0.0001,
    "random_walk.beta": 16, "random_walk.logt": 8, "random_walk.bg_power": 4, "random_walk.precision": "float64",
    "explain.start_layer": 1,
}
PSA = {
    "dataset.train_split": "train_aug", "dataset.label_source": "annotations",
    "seeds.cube_root": False, "seeds.bg_threshold": 0.2, "seeds.scales": [1.0, 0.5, 1.5, 2.0], "crf.alpha_low": 4, "crf.alpha_high": 32,
    "affinity.input": "crop", "affinity.crop_size": 448, "affinity.epochs": 8, "affinity.lr": 1.0,
    "affinity.backbone_lr_mult": 0.1, "affinity.weight_decay": 0.0005,
    "random_walk.beta": 8, "random_walk.logt": 8, "random_walk.bg_power": 16, "random_walk.precision": "float32",
}


def _get(cfg, dotted):
    for part in dotted.split("."):
        cfg = cfg[part]
    return cfg


@pytest.mark.parametrize("overlays", [(), ("presets/study.yaml",)])
def test_real_run_carries_the_studys_constants(overlays):
    cfg = load_config(REPO / "config.yaml", {"dataset.root": "/data/VOCdevkit/VOC2012"},
                      overlays=[REPO / o for o in overlays])
    assert {k: _get(cfg, k) for k in STUDY} == STUDY


def test_schema_defaults_are_the_studys_too():
    """A config file that sets only dataset.root gets the same constants from the schema."""
    cfg = effective_config({"dataset": {"root": "/x"}})
    assert {k: _get(cfg, k) for k in STUDY} == STUDY


def test_psa_preset_carries_psas_constants():
    cfg = load_config(REPO / "config.yaml", {"dataset.root": "/data/VOCdevkit/VOC2012"},
                      overlays=[REPO / "presets/psa.yaml"])
    assert {k: _get(cfg, k) for k in PSA} == PSA


def test_study_preset_changes_nothing_on_the_real_run():
    real = {"dataset.root": "/data/VOCdevkit/VOC2012"}
    assert load_config(REPO / "config.yaml", real) == load_config(
        REPO / "config.yaml", real, overlays=[REPO / "presets/study.yaml"])


def test_embedded_run_keeps_its_own_dataset_split():
    cfg = load_config(REPO / "config.yaml")
    assert cfg["dataset"]["train_split"] == "train" and cfg["dataset"]["label_source"] == "segmentation"
