"""Errors a new user meets before any job runs and per-job threads: config
messages that name the key and the closest valid one, model names checked at workflow start,
nested --config values, the stages' thread count, and the profiles' CPU settings. The end-to-end
halves (a failed rule's message on the terminal, the unmarked-store fix) are in
test_errors_pipeline.py."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline_helpers import ROOT, pipeline_env, snakemake_cmd, write_tiny_config
from vitaff.config import ConfigError, load_config, validate
from vitaff.model_names import MODEL_NAMES, unknown_model_message

CONFIG = ROOT / "config.yaml"


# --- config messages ------------------------------------------------------------------------------

def test_unknown_key_suggests_the_closest_and_dumps_nothing():
    with pytest.raises(ConfigError) as err:
        load_config(CONFIG, {"crf.alpha_hgh": 3})
    text = str(err.value)
    assert "config key crf.alpha_hgh: unknown key; did you mean alpha_high?" in text
    assert len(text.splitlines()) == 3  # heading, the one problem, the pointer to the schema
    assert "bilateral" not in text  # no dump of the section


def test_unknown_key_without_a_close_one_lists_the_section_keys():
    with pytest.raises(ConfigError, match=r"config key random_walk\.zzz: unknown key; valid keys of "
                                          r"random_walk: beta, logt, bg_power"):
        load_config(CONFIG, {"random_walk.zzz": 1})


def test_bad_value_names_key_and_value():
    with pytest.raises(ConfigError, match=r"config key crf\.alpha_low: -1 is less than or equal to the minimum of 0"):
        load_config(CONFIG, {"crf.alpha_low": -1})


def test_bad_choice_lists_the_choices_and_the_closest():
    with pytest.raises(ConfigError, match=r"config key seeds\.method: 'transformer_atribution' is not one of "
                                          r"transformer_attribution, rollout, .* \(did you mean transformer_attribution\?\)"):
        load_config(CONFIG, {"seeds.method": "transformer_atribution"})


def test_embedded_override_is_named_as_written():
    with pytest.raises(ConfigError) as err:
        load_config(CONFIG, {"embedded.classifier.epohcs": 3})
    assert "config key embedded.classifier.epohcs: unknown key; did you mean epochs?" in str(err.value)


@pytest.mark.parametrize("key", ["classifier.model", "explain.model", "embedded.classifier.model"])
def test_unknown_model_name_is_named_with_the_valid_ones(key):
    with pytest.raises(ConfigError) as err:
        load_config(CONFIG, {key: "vit_nonexistent"})
    text = str(err.value)
    assert f"config key {key}: unknown model 'vit_nonexistent'" in text
    assert "vit_base_r50_s16_384" in text and "vit_hybrid_synth" in text


def test_model_names_with_timm_tags_are_accepted():
    cfg = load_config(CONFIG, {"explain.model": "vit_base_patch16_224.augreg_in21k_ft_in1k",
                               "classifier.model": "vit_base_r50_s16_384"})
    assert cfg["explain"]["model"] == "vit_base_patch16_224.augreg_in21k_ft_in1k"
    assert unknown_model_message("vit_hybrid_synt") and "did you mean vit_hybrid_synth?" in unknown_model_message("vit_hybrid_synt")


def test_torch_free_model_names_equal_the_registry():
    from vitaff.models import list_models

    assert sorted(MODEL_NAMES) == list_models()


def test_config_check_imports_no_torch():
    code = ("import sys; from vitaff.config import load_config; load_config('config.yaml'); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, env=pipeline_env())


# --- nested --config values -----------------------------------------------------------------------

def test_nested_command_line_strings_are_read_as_yaml_values():
    # what Snakemake makes of --config crf='{"alpha_low": 8}' classifier='{"color_jitter": [...], ...}'
    raw = yaml.safe_load(CONFIG.read_text())
    raw["crf"].update(alpha_low="8", alpha_high="1e2")
    raw["classifier"].update(color_jitter=["0.1", "0", "0", "0"], pretrained="false", checkpoint="null")
    raw["explain"].update(limit="null", model="vit_tiny_patch16_224")
    cfg = validate(raw)
    assert cfg["crf"]["alpha_low"] == 8 and cfg["crf"]["alpha_high"] == 100.0
    assert cfg["classifier"]["color_jitter"] == [0.1, 0, 0, 0]
    assert cfg["classifier"]["pretrained"] is False and cfg["classifier"]["checkpoint"] is None
    assert cfg["explain"]["limit"] is None and cfg["explain"]["model"] == "vit_tiny_patch16_224"


def test_nested_text_that_is_no_number_says_how_to_override():
    raw = yaml.safe_load(CONFIG.read_text())
    raw["crf"]["alpha_low"] = "eight"
    with pytest.raises(ConfigError, match=r"config key crf\.alpha_low: 'eight' is not of type 'number' "
                                          r"\(given as text.*--configfile my\.yaml -- <target>"):
        validate(raw)


def _snakemake(workdir: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(snakemake_cmd(workdir, *args, cores=None, target=None), cwd=workdir,
                          env=pipeline_env(), capture_output=True, text=True, timeout=timeout)


def _stage_command(stdout: str, stage: str) -> str:
    return next(line for line in stdout.splitlines() if f"vitaff.stages.{stage} " in line)


def test_nested_config_override_reaches_the_rule(tmp_path):
    """--config random_walk='{"ceiling_bg_powers": [8, 12]}' (README, "Configuration") changes that key,
    as numbers, and keeps the section's other keys (the tiny config's logt: 3). (beta, bg_power and
    precision are set by the embedded block, which wins over the top-level section on this data.)"""
    write_tiny_config(tmp_path)
    proc = _snakemake(tmp_path, "-n", "-p", "--config", 'random_walk={"ceiling_bg_powers": [8, 12]}', "--",
                      "results/random_walk/val/shard_0.zarr")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cmd = _stage_command(proc.stdout, "random_walk")
    assert '"ceiling_bg_powers":[8,12]' in cmd and '"logt":3' in cmd


def test_configfile_overlay_pattern(tmp_path):
    """The README's overlay: --configfile with only the changed keys over config.yaml, `--` before the
    target (without it the target would be read as a second config file)."""
    write_tiny_config(tmp_path)
    # (a key the embedded block does not set: on the embedded data that block wins over the top level)
    (tmp_path / "mine.yaml").write_text("random_walk:\n  logt: 5\n")
    proc = _snakemake(tmp_path, "-n", "-p", "--configfile", "mine.yaml", "--", "results/random_walk/val/shard_0.zarr")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cmd = _stage_command(proc.stdout, "random_walk")
    assert '"logt":5' in cmd and '"beta":16,' in cmd


# --- checks when the workflow starts --------------------------------------------------------------

def test_dry_run_stops_on_unknown_model_name(tmp_path):
    write_tiny_config(tmp_path)
    proc = _snakemake(tmp_path, "-n", "--config", 'classifier={"model": "vit_nonexistent"}', "--", "results/voc_miou.csv")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "config key classifier.model: unknown model 'vit_nonexistent'" in out
    assert "vit_base_r50_s16_384" in out


def test_dry_run_refuses_mask_pretrained_segmentation_weights(tmp_path):
    """Weights trained on segmentation masks stop the run before any job, naming the key that allows them."""
    write_tiny_config(tmp_path)
    proc = _snakemake(tmp_path, "-n", "--config", 'segmentation={"init": "mask_pretrained"}', "--",
                      "results/segmentation_miou.csv")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "config key segmentation.init: mask_pretrained starts from weights trained on segmentation masks" in out
    assert "segmentation.allow_mask_pretrained: true" in out
    allowed = _snakemake(tmp_path, "-n", "--config",
                         'segmentation={"init": "mask_pretrained", "allow_mask_pretrained": true}', "--",
                         "results/voc_miou.csv")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr


def test_dry_run_suggests_the_key_meant(tmp_path):
    cfg = write_tiny_config(tmp_path)
    raw = yaml.safe_load(cfg.read_text())
    raw["crf"]["alpha_hgh"] = 3
    cfg.write_text(yaml.safe_dump(raw))
    proc = _snakemake(tmp_path, "-n", "--", "results/voc_miou.csv")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "config key crf.alpha_hgh: unknown key; did you mean alpha_high?" in out
    assert "'additionalProperties'" not in out and "bilateral_srgb" not in out  # no schema dump


# --- threads --------------------------------------------------------------------------------------

def test_every_rule_declares_threads_and_passes_them():
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        for rule in re.split(r"(?m)^(?=rule \w+:)", smk.read_text())[1:]:
            name = rule.split(":", 1)[0]
            assert re.search(r"(?m)^    threads: ", rule), f"{smk.name}: {name} declares no threads"
            assert "--threads {threads}" in rule, f"{smk.name}: {name} does not pass --threads"


def test_cores_are_shared_between_shards(tmp_path):
    """--cores 8 with 2 shards per split: 4 threads per shard job, all 8 for a training job, 1 for the
    single-threaded CRF (never more than the CPUs of the machine: 2 shards x 1 and 2 on 2 CPUs)."""
    from snakemake.utils import available_cpu_count

    cores = min(8, available_cpu_count())
    write_tiny_config(tmp_path)
    proc = _snakemake(tmp_path, "-n", "-p", "--cores", "8", "--", "results/voc_miou.csv")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    threads = {}
    for m in re.finditer(r"python -m vitaff\.stages\.(\w+) .*?--threads (\d+)", proc.stdout):
        threads.setdefault(m.group(1), set()).add(int(m.group(2)))
    assert threads["seeds"] == threads["random_walk"] == {max(1, cores // 2)}
    assert threads["train_classifier"] == threads["train_affinitynet"] == {cores}
    assert threads["crf"] == threads["affinity_labels"] == threads["dataset_index"] == {1}


def test_more_cores_than_cpus_are_capped_at_the_cpus(tmp_path):
    """--cores above this machine's CPUs: the scheduler's budget is the CPUs (Snakemake runs jobs while
    their threads sum to the budget, so --cores 8 on 2 CPUs ran 4 threads on 2 cores); --cores all
    and a cluster executor are left alone."""
    from snakemake.utils import available_cpu_count

    cpus = available_cpu_count()
    write_tiny_config(tmp_path)
    proc = _snakemake(tmp_path, "-n", "--cores", str(cpus + 6), "--", "results/voc_miou.csv")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"--cores {cpus + 6} capped at this machine's {cpus} CPUs" in proc.stdout + proc.stderr
    proc = _snakemake(tmp_path, "-n", "--cores", "all", "--", "results/voc_miou.csv")
    assert proc.returncode == 0 and "capped" not in proc.stdout + proc.stderr


def test_main_target_does_not_wait_for_the_walk_ceiling(tmp_path):
    """The walk ceiling (a diagnostic as long as AffinityNet's training) is built by `all` only."""
    write_tiny_config(tmp_path)
    main = _snakemake(tmp_path, "-n", "--cores", "2", "--", "results/voc_miou.csv")
    everything = _snakemake(tmp_path, "-n", "--cores", "2", "--", "all")
    assert main.returncode == everything.returncode == 0, main.stdout + main.stderr
    assert "rule walk_ceiling:" not in main.stdout and "rule score:" in main.stdout
    assert "rule walk_ceiling:" in everything.stdout


@pytest.mark.parametrize("torch_first, n", [(True, 3), (False, 3), (False, 1)])
def test_cli_gives_torch_the_threads(torch_first, n):
    """--threads N: torch's intra-op threads are N, whether the stage imported torch before run() or
    imports it inside main, and the log says so."""
    code = f"""
import sys
{'import torch' if torch_first else ''}
from vitaff.stages import _cli
def main(args, params):
    import torch
    print("torch threads", torch.get_num_threads())
_cli.run(main, _cli.parser("t"), ["--params", "{{}}", "--threads", "{n}"])
"""
    env = pipeline_env()
    env["OMP_NUM_THREADS"] = "2"  # not what Snakemake exports (that is n): --threads wins
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"torch threads {n}" in proc.stdout
    assert f"using {n} threads" in proc.stderr


def test_slurm_profile_requests_the_cpus_its_jobs_use():
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    threads = profile["set-threads"]
    for rule, res in profile["set-resources"].items():
        if "cpus_per_gpu" in res:
            assert threads.get(rule) == res["cpus_per_gpu"], f"{rule}: cpus_per_gpu {res['cpus_per_gpu']} != threads"
        assert "cpus_per_task" not in res
    assert profile["show-failed-logs"] is True


def test_default_profile_is_local_and_harmless():
    profile = yaml.safe_load((ROOT / "profiles" / "default" / "config.yaml").read_text())
    assert profile == {"show-failed-logs": True}


# --- what a failed job leaves ------------------------------------------------------------------------

def run_stage_main(body: str) -> subprocess.CompletedProcess:
    """A stage entry point whose main runs ``body``; returns its exit status and stderr (the job's log)."""
    code = f"""
from vitaff.stages import _cli
def main(args, params):
{body}
_cli.run(main, _cli.parser("t"), ["--params", "{{}}"])
"""
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=pipeline_env(), capture_output=True,
                          text=True, timeout=120)


def test_expected_error_is_one_line_without_traceback():
    proc = run_stage_main("    from vitaff.config import ConfigError\n"
                          "    raise ConfigError('seeds.bg_threshold: 2 is above 1; give a value in [0, 1]')")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "error: seeds.bg_threshold: 2 is above 1; give a value in [0, 1]"


def test_unexpected_error_keeps_its_traceback_in_the_log():
    """A ValueError raised inside numpy is a bug, not bad input: the log keeps where it came from."""
    proc = run_stage_main("    import numpy as np\n"
                          "    np.zeros(3).reshape(2, 2)")
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr
    assert "reshape" in proc.stderr and "<string>" in proc.stderr  # numpy's frame and the caller's line
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: unexpected ValueError: cannot reshape")
    assert "traceback" in last and "log" in last


def test_failed_weight_download_names_the_checkpoint_key(monkeypatch):
    """classifier.pretrained true, no checkpoint, offline: the error says which key avoids the download."""
    import timm.models._builder

    from vitaff.classifier import build_classifier
    from vitaff.errors import VitaffError

    def offline(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load this file")

    monkeypatch.setattr(timm.models._builder, "load_pretrained", offline)
    cls = {"model": "vit_tiny_patch16_224", "pretrained": True, "checkpoint": None, "img_size": 32}
    with pytest.raises(VitaffError) as info:
        build_classifier(cls)
    message = str(info.value)
    assert "classifier.checkpoint" in message
    assert "Reproducing Table 4 on PASCAL VOC 2012" in message
    assert "## Reproducing Table 4 on PASCAL VOC 2012" in (ROOT / "README.md").read_text()  # the section exists
    assert "couldn't connect" in message  # the hub's own reason, kept
