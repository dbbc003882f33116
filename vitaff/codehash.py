"""Code hashes of the workflow's jobs, derived from imports (no paper step: the pipeline's bookkeeping).

A rule passes ``stage_code("vitaff.stages.<rule>")`` as a param, so Snakemake reruns its jobs when
the code they run changes. That code is the stage module's import closure inside ``vitaff``: every
``import`` / ``from ... import`` statement (anywhere in the module, also inside functions, relative
ones included) that names a ``vitaff`` module, followed transitively, plus the ``__init__.py`` of
every package on the way (importing ``vitaff.data.voc`` runs ``vitaff/__init__.py`` and
``vitaff/data/__init__.py``). The hash covers each file's path and bytes. Read from the source with
:mod:`ast`, without importing anything, so the workflow parses without torch.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

PACKAGE = "vitaff"
# The directory holding the ``vitaff`` package (the repository root).
DEFAULT_ROOT = Path(__file__).resolve().parents[1]


def module_path(root: Path, module: str) -> Path | None:
    """The source file of a dotted module name under ``root``, or None if it is not a vitaff module."""
    if module != PACKAGE and not module.startswith(PACKAGE + "."):
        return None
    base = root.joinpath(*module.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _parents(module: str) -> list[str]:
    """``a.b.c`` -> ``[a, a.b]``: the packages whose ``__init__`` runs before ``a.b.c``."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def imported_modules(root: Path, module: str) -> set[str]:
    """The vitaff modules one module imports directly (dotted names, existing files only)."""
    path = module_path(root, module)
    stat = path.stat()
    key = (path, stat.st_mtime_ns, stat.st_size)  # every rule of a workflow asks for the same files
    if key not in _IMPORTS:
        _IMPORTS[key] = _parse_imports(root, module, path)
    return set(_IMPORTS[key])


_IMPORTS: dict[tuple, frozenset[str]] = {}


def _parse_imports(root: Path, module: str, path: Path) -> frozenset[str]:
    tree = ast.parse(path.read_bytes(), filename=str(path))
    # the package relative imports resolve against: the module itself if it is a package
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            # ``from pkg import name``: name may be a submodule of pkg
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    found = {name for name in names if module_path(root, name) is not None}
    return frozenset(found | {parent for name in found for parent in _parents(name)})


def _closure(root: Path, module: str) -> set[str]:
    if module_path(root, module) is None:
        raise ValueError(f"{module} is not a module of {root / PACKAGE}")
    seen, todo = set(), [module, *_parents(module)]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(imported_modules(root, name) - seen)
    return seen


def import_closure(module: str, root: Path | str = DEFAULT_ROOT) -> list[Path]:
    """Source files (relative to ``root``) that importing ``module`` can run, sorted."""
    root = Path(root).resolve()
    return sorted(module_path(root, name).relative_to(root) for name in _closure(root, module))


def stage_code(module: str, root: Path | str = DEFAULT_ROOT) -> str:
    """16 hex digits over the paths and bytes of ``module``'s import closure inside vitaff."""
    root = Path(root).resolve()
    digest = hashlib.sha256()
    for rel in import_closure(module, root):
        digest.update(rel.as_posix().encode())
        digest.update((root / rel).read_bytes())
    return digest.hexdigest()[:16]
