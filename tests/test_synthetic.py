"""Tests of the embedded synthetic VOC-layout dataset (vitaff.data.synthetic)."""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vitaff.data.synthetic import (
    CLASS_INDEX,
    VOC_CLASSES,
    SyntheticConfig,
    generate_voc,
    is_complete,
    main,
    make_id,
    render_scene,
    voc_colormap,
)

TINY = dict(n_train=4, n_val=2, size_range=(64, 80))


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, dict, SyntheticConfig]:
    cfg = SyntheticConfig(seed=3, **TINY)
    root = tmp_path_factory.mktemp("synth")
    summary = generate_voc(root, cfg)
    return root, summary, cfg


def test_colormap_matches_voc():
    cmap = voc_colormap()
    assert cmap.shape == (256, 3) and cmap.dtype == np.uint8
    assert tuple(cmap[0]) == (0, 0, 0)
    assert tuple(cmap[1]) == (128, 0, 0)
    assert tuple(cmap[15]) == (192, 128, 128)
    assert tuple(cmap[255]) == (224, 224, 192)
    assert len(VOC_CLASSES) == 21 and VOC_CLASSES[15] == "person"


def test_colormap_agrees_with_voc_reader():
    from vitaff.data import voc
    np.testing.assert_array_equal(voc.voc_colormap(256), voc_colormap(256))
    assert tuple(voc.VOC_CLASSES) == VOC_CLASSES


def test_layout(tiny):
    root, summary, cfg = tiny
    voc = root / "VOCdevkit" / "VOC2012"
    assert summary["root"] == str(voc)
    assert is_complete(root)
    assert not list(root.glob(".VOCdevkit.tmp-*"))
    sets = voc / "ImageSets" / "Segmentation"
    train = sets.joinpath("train.txt").read_text().split()
    val = sets.joinpath("val.txt").read_text().split()
    trainval = sets.joinpath("trainval.txt").read_text().split()
    assert train == summary["ids"]["train"] == [make_id("train", i) for i in range(cfg.n_train)]
    assert val == summary["ids"]["val"] == [make_id("val", i) for i in range(cfg.n_val)]
    assert trainval == sorted(train + val) and not set(train) & set(val)
    assert train[0] == "9000_000001" and val[0] == "9001_000001"
    meta = json.loads((voc / "synthetic.json").read_text())
    assert SyntheticConfig.from_dict(meta["config"]) == cfg
    cmap = voc_colormap().tobytes()
    for image_id in trainval:
        with Image.open(voc / "JPEGImages" / f"{image_id}.jpg") as im:
            assert im.format == "JPEG" and im.mode == "RGB"
            w, h = im.size
        assert 64 <= w <= 80 and 64 <= h <= 80
        for sub in ("SegmentationClass", "SegmentationObject", "SegmentationPart"):
            with Image.open(voc / sub / f"{image_id}.png") as im:
                assert im.mode == "P" and im.size == (w, h)
                assert im.getpalette()[:768] == list(cmap)
                assert "time" not in {k.lower() for k in im.info}
        mask = np.asarray(Image.open(voc / "SegmentationClass" / f"{image_id}.png"))
        inst = np.asarray(Image.open(voc / "SegmentationObject" / f"{image_id}.png"))
        values = set(np.unique(mask).tolist())
        assert values <= set(cfg.class_ids) | {0, 255}
        assert 255 in values and len(values - {0, 255}) >= 1
        assert np.array_equal(mask == 255, inst == 255)
        # The void band separates instances: no two 8-adjacent non-void pixels differ, and it
        # is thin (a few pixels wide, a small fraction of the image).
        for a, b in ((inst[1:], inst[:-1]), (inst[:, 1:], inst[:, :-1]),
                     (inst[1:, 1:], inst[:-1, :-1]), (inst[1:, :-1], inst[:-1, 1:])):
            both = (a != 255) & (b != 255)
            assert np.array_equal(a[both], b[both])
        assert 0 < (mask == 255).mean() < 0.15
        # XML: names match the mask's classes, boxes match the instance masks.
        ann = ET.parse(voc / "Annotations" / f"{image_id}.xml").getroot()
        assert ann.findtext("filename") == f"{image_id}.jpg"
        assert ann.findtext("folder") == "VOC2012" and ann.findtext("segmented") == "1"
        assert (int(ann.findtext("size/width")), int(ann.findtext("size/height")),
                int(ann.findtext("size/depth"))) == (w, h, 3)
        objects = ann.findall("object")
        names = {o.findtext("name") for o in objects}
        assert names == {VOC_CLASSES[c] for c in values - {0, 255}}
        for k, o in enumerate(objects, start=1):
            for tag in ("pose", "truncated", "difficult"):
                assert o.find(tag) is not None
            box = [int(o.findtext(f"bndbox/{t}")) for t in ("xmin", "ymin", "xmax", "ymax")]
            ys, xs = np.nonzero(inst == k)
            assert box == [xs.min() + 1, ys.min() + 1, xs.max() + 1, ys.max() + 1] or \
                (box[0] <= xs.min() + 1 and box[1] <= ys.min() + 1 and box[2] >= xs.max() + 1 and box[3] >= ys.max() + 1)
            assert 1 <= box[0] <= box[2] <= w and 1 <= box[1] <= box[3] <= h
            assert set(np.unique(mask[inst == k]).tolist()) == {CLASS_INDEX[o.findtext("name")]}


def test_summary_counts(tiny):
    root, summary, cfg = tiny
    voc = root / "VOCdevkit" / "VOC2012"
    for split in ("train", "val"):
        counts = {c: 0 for c in cfg.classes}
        for image_id in summary["ids"][split]:
            ann = ET.parse(voc / "Annotations" / f"{image_id}.xml").getroot()
            for name in {o.findtext("name") for o in ann.findall("object")}:
                counts[name] += 1
        assert counts == summary["class_counts"][split]


def test_deterministic(tmp_path, tiny):
    root, _, cfg = tiny
    again = tmp_path / "again"
    generate_voc(again, cfg)
    assert tree_digest(again) == tree_digest(root)
    other = tmp_path / "other"
    generate_voc(other, SyntheticConfig(seed=4, **TINY))
    a, b = tree_digest(other), tree_digest(root)
    jpgs = [k for k in a if k.endswith(".jpg")]
    assert jpgs and all(a[k] != b[k] for k in jpgs)


def test_rerun_is_noop_and_conflict_refused(tiny):
    root, summary, cfg = tiny
    before = tree_digest(root)
    assert generate_voc(root, cfg) == summary
    assert tree_digest(root) == before
    with pytest.raises(FileExistsError, match="different config"):
        generate_voc(root, SyntheticConfig(seed=99, **TINY))
    assert tree_digest(root) == before


def test_foreign_voc_dir_refused(tmp_path):
    (tmp_path / "VOCdevkit" / "VOC2012").mkdir(parents=True)
    assert not is_complete(tmp_path)
    with pytest.raises(FileExistsError, match="not a complete synthetic dataset"):
        generate_voc(tmp_path, SyntheticConfig(**TINY))


def test_atomic_leftover_and_interruption(tmp_path, monkeypatch):
    import vitaff.data.synthetic.files as synthetic

    # A leftover temporary directory from a killed run does not count as a dataset ...
    leftover = tmp_path / ".VOCdevkit.tmp-dead"
    (leftover / "VOC2012" / "JPEGImages").mkdir(parents=True)
    (leftover / "VOC2012" / "synthetic.json").write_text("{}")
    assert not is_complete(tmp_path)
    # ... an interrupted generation leaves nothing that looks complete ...
    calls = {"n": 0}
    real = synthetic._encode_jpeg

    def failing(img, quality):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(img, quality)

    monkeypatch.setattr(synthetic, "_encode_jpeg", failing)
    with pytest.raises(KeyboardInterrupt):
        generate_voc(tmp_path, SyntheticConfig(**TINY))
    assert not (tmp_path / "VOCdevkit").exists() and not is_complete(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [leftover.name]
    # ... and a later run completes normally.
    monkeypatch.setattr(synthetic, "_encode_jpeg", real)
    generate_voc(tmp_path, SyntheticConfig(**TINY))
    assert is_complete(tmp_path)


def test_render_scene_single_requested_class():
    cfg = SyntheticConfig()
    for cid in cfg.class_ids:
        rng = np.random.default_rng(cid)
        img, mask, objects, aux = render_scene(rng, cfg, class_ids=[cid], return_aux=True)
        h, w = mask.shape
        assert img.shape == (h, w, 3) and img.dtype == np.uint8 and mask.dtype == np.uint8
        assert [c for c, _ in objects] == [cid]
        assert set(np.unique(mask).tolist()) == {0, cid, 255}
        # The part is small, off the object's centre, inside the object.
        obj = aux["instances"] == 1
        part = aux["parts"] == 1
        assert part.any() and not (part & (aux["instances"] == 0)).any()
        frac = part.sum() / (obj.sum() + part.sum())
        assert 0.04 < frac < 0.35
        # The object is large: 30..60 % of the image side, roughly.
        x0, y0, x1, y1 = objects[0][1]
        assert max(x1 - x0, y1 - y0) + 1 >= 0.25 * min(h, w)


def test_render_scene_arguments():
    cfg = SyntheticConfig()
    img, mask, objects = render_scene(np.random.default_rng(0), cfg, n_objects=2, size=(90, 70))
    assert mask.shape == (90, 70) and 1 <= len(objects) <= 2
    with pytest.raises(ValueError):
        render_scene(np.random.default_rng(0), cfg, class_ids=[1])  # aeroplane not in cfg.classes
    with pytest.raises(ValueError):
        render_scene(np.random.default_rng(0), cfg, class_ids=[8], n_objects=2)
    with pytest.raises(ValueError):
        SyntheticConfig(classes=("cat", "unicorn"))


def test_multi_object_scenes_occur():
    cfg = SyntheticConfig()
    counts = [len(render_scene(np.random.default_rng([0, 0, i]), cfg)[2]) for i in range(12)]
    assert max(counts) >= 2 and min(counts) >= 1


def test_config_roundtrip():
    cfg = SyntheticConfig(classes=("cat", "dog"), image_size=(96, 128))
    assert SyntheticConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(TypeError):
        SyntheticConfig.from_dict({"nonsense": 1})


def test_cli(tmp_path, capsys):
    rc = main(["--root", str(tmp_path), "--n-train", "2", "--n-val", "1", "--classes", "cat,dog",
               "--image-size", "64", "72"])
    assert rc == 0 and is_complete(tmp_path)
    meta = json.loads((tmp_path / "VOCdevkit" / "VOC2012" / "synthetic.json").read_text())
    assert meta["config"]["classes"] == ["cat", "dog"] and meta["config"]["image_size"] == [64, 72]
    assert main(["--root", str(tmp_path), "--n-train", "3"]) == 1  # different config: refused


def test_class_body_textures_knob():
    """body_textures="class": each class's bodies carry their own texture (zero mean, the shared
    gratings' energy); the default "shared" keeps the pool; a bad value is refused."""
    from vitaff.data.synthetic import CLASS_BODY_TEXTURES
    from vitaff.data.synthetic.textures import _class_texture

    yy, xx = np.mgrid[0:96, 0:96].astype(np.float64)
    for name in CLASS_BODY_TEXTURES:
        f = _class_texture(np.random.default_rng(0), name, yy, xx, (48.0, 48.0))
        assert abs(f.mean()) < 1e-9 and f.std() == pytest.approx(0.5 / np.sqrt(2), rel=1e-6)
    assert SyntheticConfig().body_textures == "class"  # the schema's synthetic.body_textures
    with pytest.raises(ValueError, match="body_textures"):
        SyntheticConfig(body_textures="plaid")
    # the two modes render different bodies from the same generator state, the same layout
    shared = render_scene(np.random.default_rng(5), SyntheticConfig(body_textures="shared"), class_ids=[8],
                          return_aux=True)
    own = render_scene(np.random.default_rng(5), SyntheticConfig(body_textures="class"), class_ids=[8],
                       return_aux=True)
    body = (own[3]["instances"] == 1) & (own[3]["parts"] == 0)
    assert body.sum() > 200
    assert np.abs(shared[0][body].astype(int) - own[0][body].astype(int)).mean() > 5
    # class textures tell the classes apart: spectra of two classes' bodies differ more than two
    # renderings of one class (orientation-free: radial power profile of the body crop)
    def profile(cid, seed):
        img, _, _, aux = render_scene(np.random.default_rng(seed), SyntheticConfig(body_textures="class"),
                                      class_ids=[cid], size=(128, 128), return_aux=True)
        m = (aux["instances"] == 1) & (aux["parts"] == 0)
        g = img.mean(-1) - img.mean(-1)[m].mean()
        spec = np.abs(np.fft.fftshift(np.fft.fft2(np.where(m, g, 0.0)))) ** 2
        r = np.hypot(*np.meshgrid(np.arange(-64, 64), np.arange(-64, 64))).astype(int)
        prof = np.bincount(r.ravel(), spec.ravel())[:64]
        return prof / prof.sum()
    same = np.abs(profile(3, 1) - profile(3, 2)).sum()
    other = np.abs(profile(3, 1) - profile(7, 2)).sum()  # plaid vs stripes
    assert other > same


def test_part_hidden_images(tiny):
    """JPEGImagesPartHidden/ is the same scene with the parts painted over by their bodies: it
    differs from JPEGImages on the parts and (up to JPEG noise) nowhere else."""
    root, _, cfg = tiny
    voc = root / "VOCdevkit" / "VOC2012"
    img, _, _, aux = render_scene(np.random.default_rng([cfg.seed, 0, 0]), cfg, return_aux=True)
    assert np.array_equal(np.asarray(Image.open(voc / "JPEGImages" / "9000_000001.jpg")),
                          np.asarray(Image.open(io_bytes(img, cfg.jpeg_quality))))
    hidden = aux["part_hidden"]
    assert hidden.shape == img.shape and hidden.dtype == np.uint8
    diff = np.abs(img.astype(int) - hidden.astype(int)).max(-1)
    part = aux["parts"] > 0
    grown = part.copy()
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            grown |= np.roll(np.roll(part, dy, 0), dx, 1)
    assert (diff[~grown] == 0).all()
    assert diff[part].mean() > 20
    with Image.open(voc / "JPEGImagesPartHidden" / "9000_000001.jpg") as im:
        assert im.size == (img.shape[1], img.shape[0])


def io_bytes(img, quality):
    import io

    from vitaff.data.synthetic.files import _encode_jpeg

    return io.BytesIO(_encode_jpeg(img, quality))
