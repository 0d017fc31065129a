"""The package layout's dependency contract, checked on the code itself.

Direction: ros -> core (runtime, io, sim, dosemap) <- training <- data; networks is a leaf; the core
imports without rclpy, training without onnxruntime, and an ONNX-only robot needs no torch.
"""
import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "matseg_ros"
SHARED = {"materials", "paths", "fileio", "confusion"}
CORE = {"runtime", "io", "sim", "dosemap"}

# part of the package -> the parts it may import (besides itself and the package __init__)
ALLOWED = {
    "shared": set(),
    "networks": set(),
    "runtime": {"shared", "networks"},
    "io": {"shared", "runtime"},
    "sim": {"shared", "runtime", "io"},
    "dosemap": {"shared", "runtime", "io"},
    "training": {"shared", "runtime", "io", "networks"},
    "data": {"shared", "runtime", "io", "networks", "training"},
    "ros": {"shared"} | CORE,
}


def modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


def part_of(module: str) -> str:
    """'matseg_ros.runtime.engine' -> 'runtime'; top-level shared modules -> 'shared'."""
    parts = module.split(".")
    if len(parts) == 1:
        return "package"
    if (PACKAGE / parts[1]).is_dir():
        return parts[1]
    return "shared" if parts[1] in SHARED else parts[1]


def imported_modules(module: str) -> set[str]:
    """Every matseg_ros module a module imports, at any depth of its code (lazy imports too)."""
    path = ROOT / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = ROOT / module.replace(".", "/") / "__init__.py"
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("matseg_ros"):
                found.add(target)
                found.update(f"{target}.{a.name}" for a in node.names
                             if (ROOT / f"{target}.{a.name}".replace(".", "/")).with_suffix(".py").exists()
                             or (ROOT / f"{target}.{a.name}".replace(".", "/")).is_dir())
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("matseg_ros"))
    return found


def test_every_part_imports_only_what_the_direction_allows():
    wrong = []
    for module in modules():
        part = part_of(module)
        if part not in ALLOWED:  # the package itself, cli, demo: the top of the graph
            continue
        for target in imported_modules(module):
            other = part_of(target)
            if other not in ("package", part) and other not in ALLOWED[part]:
                wrong.append(f"{module} ({part}) imports {target} ({other})")
    assert not wrong, "\n".join(wrong)


def test_the_direction_check_sees_lazy_and_relative_imports():
    """The checker itself, on modules whose imports are known: a lazy relative import inside
    a function (torch_engine -> checkpoint) and a relative import of a sibling package."""
    assert "matseg_ros.runtime.checkpoint" in imported_modules("matseg_ros.runtime.torch_engine")
    assert "matseg_ros.io.masks" in imported_modules("matseg_ros.sim.recording")
    assert part_of("matseg_ros.fileio") == "shared" and part_of("matseg_ros.io.bag") == "io"


BLOCKED_IMPORT = """
import importlib, json, sys
blocked = set(sys.argv[1].split(","))
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ImportError(f"{name} is blocked for this check")
sys.meta_path.insert(0, Block())
failures = {}
for name in sys.argv[2:]:
    try:
        importlib.import_module(name)
    except Exception as exc:
        failures[name] = f"{type(exc).__name__}: {exc}"
print(json.dumps(failures))
"""

NEEDS_TORCH = {"matseg_ros.runtime.torch_engine", "matseg_ros.runtime.checkpoint"}


def import_without(blocked: list[str], names: list[str]) -> dict[str, str]:
    proc = subprocess.run([sys.executable, "-c", BLOCKED_IMPORT, ",".join(blocked), *names],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("blocked, parts, exempt", [
    (["rclpy"], {"package", "shared", "runtime", "io", "sim", "dosemap", "networks", "training", "data", "cli", "demo"},
     set()),
    (["onnxruntime"], {"networks", "training", "data"}, set()),
    (["torch"], {"package", "shared", "runtime", "io", "sim", "dosemap"}, NEEDS_TORCH),
], ids=["core-and-training-without-rclpy", "training-without-onnxruntime", "onnx-robot-without-torch"])
def test_modules_import_in_a_fresh_interpreter_without(blocked, parts, exempt):
    names = [m for m in modules() if part_of(m) in parts and m not in exempt]
    assert len(names) > 20
    failures = import_without(blocked, names)
    assert not failures, json.dumps(failures, indent=1)


def test_the_import_blocker_really_blocks():
    """Without this the three checks above could pass on a machine that lacks nothing."""
    failures = import_without(["torch"], ["matseg_ros.runtime.torch_engine", "matseg_ros.training.losses"])
    assert "matseg_ros.training.losses" in failures and "blocked" in failures["matseg_ros.training.losses"]


def test_every_module_says_its_concern_in_a_short_opening_docstring():
    """A newcomer reads one or two lines at the top of a file to know what it is for."""
    missing, long = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text()), clean=False)
        if not doc or not doc.strip():
            missing.append(str(path.relative_to(ROOT)))
        elif doc.strip().split("\n\n")[0].count("\n") > 1:
            long.append(str(path.relative_to(ROOT)))
    assert not missing, f"no module docstring: {missing}"
    assert not long, f"first paragraph of the docstring longer than two lines: {long}"
