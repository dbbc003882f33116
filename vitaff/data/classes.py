"""The class list of a dataset (paper step 0): names and label indices every stage shares.

Label index 0 is background, 1..C the foreground classes in the dataset's order, 255 void
(ignored). PASCAL VOC 2012 keeps its 20 classes in their usual order (SPEC section 7); a
VOC-layout folder with its own classes takes them from the ``dataset.classes`` config key or a
``classes.txt`` at its root (one name per line); the MS COCO view (:mod:`vitaff.data.coco`) writes
its 80 categories there in ascending category id, with their ids.

The ``dataset_classes`` rule writes the list as ``results/data/classes.csv`` (columns ``index``,
``name``, ``category_id``): the one file that tells every later stage how many classes there are
and what they are called, and the mapping between label indices and the dataset's category ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vitaff.errors import VitaffError

VOC_FG_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)
BACKGROUND = "background"
# Labels are uint8 palette PNGs with 255 = void, so at most 254 foreground classes fit; 200 is
# the supported range (the largest benchmarks of the field: COCO 80, ADE20K 150).
MAX_FG_CLASSES = 200
CLASSES_FILE = "classes.txt"
# Written by the COCO view beside classes.txt: the same list with each class's category id.
CATEGORIES_FILE = "classes.csv"


class ClassListError(VitaffError, ValueError):
    """A class list is empty, too long, has duplicates, or a label names a class it lacks."""


@dataclass(frozen=True)
class ClassList:
    """Foreground class names in label order (label index = position + 1) and, for datasets that
    number their categories themselves (COCO), each class's category id."""

    names: tuple[str, ...]
    category_ids: tuple[int, ...] | None = None
    source: str = "the class list"

    def __post_init__(self):
        names = tuple(str(n).strip() for n in self.names)
        object.__setattr__(self, "names", names)
        if not 1 <= len(names) <= MAX_FG_CLASSES:
            raise ClassListError(f"{self.source} has {len(names)} classes; 1 to {MAX_FG_CLASSES} foreground classes "
                                 "are supported (background is implicit, do not list it)")
        bad = [n for n in names if not n or n == BACKGROUND or "," in n]
        if bad:
            raise ClassListError(f"{self.source} holds invalid class name {bad[0]!r}: names must be non-empty, "
                                 f"without commas, and not {BACKGROUND!r} (label 0 is implicit)")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ClassListError(f"{self.source} lists {dupes[0]!r} twice; each class once")
        if self.category_ids is not None:
            ids = tuple(int(i) for i in self.category_ids)
            object.__setattr__(self, "category_ids", ids)
            if len(ids) != len(names) or len(set(ids)) != len(ids):
                raise ClassListError(f"{self.source}: {len(ids)} category ids for {len(names)} classes, "
                                     "or a repeated id")

    @property
    def num_fg(self) -> int:
        """Foreground classes: the classifier's outputs."""
        return len(self.names)

    @property
    def num_labels(self) -> int:
        """Label indices 0..C (background included): the confusion matrix's side."""
        return len(self.names) + 1

    @property
    def labels(self) -> tuple[str, ...]:
        """Names by label index: background first (the score tables' columns)."""
        return (BACKGROUND, *self.names)

    def index(self, name: str) -> int | None:
        """Label index of a class name (1..C), None when the list lacks it."""
        try:
            return self.names.index(name) + 1
        except ValueError:
            return None

    def to_frame(self):
        import pandas as pd

        ids = self.category_ids or [None] * self.num_fg
        return pd.DataFrame({"index": range(self.num_labels), "name": self.labels,
                             "category_id": pd.array([None, *ids], dtype="Int64")})


VOC = ClassList(VOC_FG_CLASSES, source="PASCAL VOC 2012")


def write_classes(classes: ClassList, path: str | Path) -> None:
    from vitaff.store import write_csv

    write_csv(classes.to_frame(), path)


def read_classes(path: str | Path) -> ClassList:
    """The list written by :func:`write_classes` (``results/data/classes.csv``)."""
    import pandas as pd

    from vitaff.errors import MissingFileError

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"class list {path} missing; run the dataset_classes rule first")
    frame = pd.read_csv(path, dtype={"name": str}, keep_default_na=False)
    if list(frame["index"]) != list(range(len(frame))) or not len(frame) or frame["name"][0] != BACKGROUND:
        raise ClassListError(f"{path} must list label indices 0, 1, 2, ... with {BACKGROUND!r} at 0")
    ids = frame["category_id"][1:]
    category_ids = None if (ids == "").all() else tuple(int(i) for i in ids)
    return ClassList(tuple(frame["name"][1:]), category_ids, source=str(path))


def read_names_file(path: str | Path) -> ClassList:
    """``classes.txt``: one foreground class name per line in label order; blank lines and lines
    starting with ``#`` are skipped, a first line ``background`` is dropped (both styles occur)."""
    lines = [ln.strip() for ln in Path(path).read_text().splitlines()]
    names = [ln for ln in lines if ln and not ln.startswith("#")]
    if names and names[0] == BACKGROUND:
        names = names[1:]
    return ClassList(tuple(names), source=str(path))


def dataset_classes(root: str | Path, configured: list[str] | None = None) -> ClassList:
    """The class list of a VOC-layout folder: ``dataset.classes`` when set, else ``classes.txt`` at
    the root (``classes.csv`` with category ids, as the COCO view writes, first), else PASCAL VOC's
    20 classes."""
    if configured:
        return ClassList(tuple(configured), source="config key dataset.classes")
    if (Path(root) / CATEGORIES_FILE).is_file():
        return read_classes(Path(root) / CATEGORIES_FILE)
    path = Path(root) / CLASSES_FILE
    if path.is_file():
        return read_names_file(path)
    return VOC
