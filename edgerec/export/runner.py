"""`runner.pyz`: the torch-free runtime as one file a bundle can carry to its device.

A zip application (the format `python -m zipapp` writes: a zip whose root holds `__main__.py`,
behind a `#!/usr/bin/env python3` line) of the `edgerec.runtime` package and the modules of
edgerec it imports, found by reading their import statements. On the device:

    pip install numpy onnxruntime
    python runner.pyz recommend . --user 42

Building refuses a runtime module that imports anything but the standard library, numpy,
onnxruntime and edgerec itself, so a heavy import that slips into the runtime fails the export
instead of the device. The archive is deterministic (sorted entries, fixed timestamps): the
same sources give the same bytes and the same sha256 in the manifest.
"""

from __future__ import annotations

import ast
import hashlib
import logging
import sys
import zipfile
from pathlib import Path

from edgerec.errors import ExportError

log = logging.getLogger(__name__)

RUNNER = "runner.pyz"
PACKAGE = "edgerec"
RUNTIME = "edgerec.runtime"
# What the runtime may import besides the standard library and edgerec.
ALLOWED = frozenset({"numpy", "onnxruntime"})
_SHEBANG = b"#!/usr/bin/env python3\n"
# zip cannot store times before 1980; a fixed time makes the bytes depend on the sources only.
_EPOCH = (1980, 1, 1, 0, 0, 0)
_ENTRY = """\
# The entry point of an edgerec bundle's runner: the torch-free runtime's command line.
import sys

from edgerec.runtime.cli import main

sys.exit(main(prog="python runner.pyz"))
"""


def source_root() -> Path:
    """The folder that holds the `edgerec` package being run (a checkout or site-packages)."""
    return Path(__file__).resolve().parents[2]


def runner_modules(root: Path | None = None) -> list[str]:
    """Paths, relative to `root`, of every file the runtime needs: edgerec.runtime and what it
    imports from edgerec, with their packages' `__init__.py`; sorted."""
    root = Path(root or source_root())
    pending = sorted(_module_names_in(root, RUNTIME))
    found: dict[str, Path] = {}
    while pending:
        name = pending.pop()
        if name in found:
            continue
        file = _file_of(root, name)
        if file is None:
            raise ExportError(f"the runtime imports {name}, which has no file under {root}")
        found[name] = file
        pending += _edgerec_imports(root, file, name)
        pending += _parents(name)
    return sorted(str(f.relative_to(root)) for f in found.values())


def build_runner(path: Path, root: Path | None = None) -> dict:
    """Write the runner to `path`; returns its manifest record (file, sha256, bytes, modules)."""
    root = Path(root or source_root())
    modules = runner_modules(root)

    path = Path(path)
    with open(path, "wb") as f:
        f.write(_SHEBANG)  # zip readers find the archive from its end, so a prefix is allowed
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            _add(archive, "__main__.py", _ENTRY.encode())
            for module in modules:
                _add(archive, module, (root / module).read_bytes())
    path.chmod(0o755)

    data = path.read_bytes()
    log.info("wrote %s (%d modules, %d bytes)", path, len(modules), len(data))
    return {
        "file": path.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "modules": modules,
    }


def _add(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_EPOCH)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16  # rw-r--r--, whatever the checkout's modes
    archive.writestr(info, data)


def _module_names_in(root: Path, package: str) -> set[str]:
    """Every module of `package` (not its subpackages' modules: the runtime has none)."""
    folder = root.joinpath(*package.split("."))
    names = {f"{package}.{f.stem}" for f in folder.glob("*.py") if f.stem != "__init__"}
    return names | {package}


def _file_of(root: Path, name: str) -> Path | None:
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _edgerec_imports(root: Path, file: Path, name: str) -> list[str]:
    """The edgerec modules `file` imports, anywhere in it (lazy imports in functions too).

    Any other import outside the standard library and ALLOWED raises ExportError: anywhere in
    a module of the runtime, outside function bodies in the edgerec modules it uses (as
    `edgerec.atomic.torch_save` does, a function may import torch for callers that have it).
    """
    tree = ast.parse(file.read_text(), filename=str(file))
    everywhere = _imports(ast.walk(tree))
    loaded = everywhere if name.startswith(RUNTIME) else _imports(_outside_functions(tree))

    heavy = sorted(
        {m for m in loaded if m.split(".")[0] not in sys.stdlib_module_names | ALLOWED | {PACKAGE}}
    )
    if heavy:
        raise ExportError(
            f"{file.relative_to(root)} ({name}) imports {', '.join(heavy)}: the runtime may "
            f"import only the standard library, {', '.join(sorted(ALLOWED))} and edgerec"
        )
    return [m for m in everywhere if m.split(".")[0] == PACKAGE and _file_of(root, m)]


def _imports(nodes) -> list[str]:
    """Every module the import statements among `nodes` may load."""
    imported = []
    for node in nodes:
        if isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                raise ExportError("relative imports are not supported in the runtime's modules")
            # `from edgerec import atomic` names a module, `from edgerec.errors import X` not.
            imported.append(node.module)
            imported += [f"{node.module}.{alias.name}" for alias in node.names]
    return imported


def _outside_functions(tree: ast.AST):
    """The nodes of `tree` that run when the module is imported (not inside a def or lambda)."""
    pending = [tree]
    while pending:
        node = pending.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                pending.append(child)
