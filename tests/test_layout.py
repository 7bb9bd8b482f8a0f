"""The package's shape: every module imports on its own, imports run one way, the pure media
code imports no Dagster, and only config.py reads the environment."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "mediaintel_dagster"

# Layers, lowest first: a module may import its own layer and the ones below it, never above.
# (cli/api -> definitions -> assets, checks, sensors, jobs -> resources -> media, lake, config)
LAYERS = [
    {"config", "lake", "media"},
    {"resources", "partitions", "monitoring", "instance", "launcher", "reports", "ui_metadata"},
    {"checks", "jobs"},
    {"assets", "sensors"},
    {"definitions", "lineage", "search"},
    {"cli", "api", "bench"},
]


def _modules() -> list[str]:
    out = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.append(".".join(parts))
    return out


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{module}: not in any layer of tests/test_layout.py: add its package to LAYERS")


def _imports(path: Path, module: str) -> set[str]:
    """Package modules imported by ``path`` (absolute and relative imports, at any depth)."""
    tree = ast.parse(path.read_text())
    pkg_parts = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg_parts[: len(pkg_parts) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("mediaintel_dagster"):
                out.add(target)
                out.update(f"{target}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("mediaintel_dagster"))
    known = set(_modules())
    return {m for m in out if m in known and m != "mediaintel_dagster"}


def test_every_module_imports_on_its_own():
    """Each module imported first, in a process where no other module of the package is
    loaded yet: an import cycle fails here whichever module a user (or Dagster) loads first."""
    code = (
        "import importlib, json, sys, traceback\n"
        f"mods = {json.dumps(_modules())}\n"
        "failed = {}\n"
        "for m in mods:\n"
        "    for k in [k for k in sys.modules if k.startswith('mediaintel_dagster')]:\n"
        "        del sys.modules[k]\n"
        "    try:\n"
        "        importlib.import_module(m)\n"
        "    except Exception:\n"
        "        failed[m] = traceback.format_exc(limit=3)\n"
        "print(json.dumps(failed))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    failed = json.loads(out.stdout.strip().splitlines()[-1])
    assert not failed, "\n".join(f"{m}:\n{tb}" for m, tb in failed.items())


def test_imports_run_one_way():
    wrong = []
    for module in _modules():
        if module == "mediaintel_dagster":
            continue
        path = PKG.parent / (module.replace(".", "/") + ("/__init__.py" if (PKG.parent / module.replace(".", "/")).is_dir() else ".py"))
        mine = _layer(module)
        for target in _imports(path, module):
            if target != "mediaintel_dagster" and _layer(target) > mine:
                wrong.append(f"{module} (layer {mine}) imports {target} (layer {_layer(target)})")
    assert not wrong, "imports against the layering:\n" + "\n".join(sorted(wrong))


def test_media_code_imports_no_dagster():
    media = [m for m in _modules() if m.startswith("mediaintel_dagster.media")]
    code = ("import importlib, sys\n"
            f"for m in {media!r}: importlib.import_module(m)\n"
            "print(sorted(k for k in sys.modules if k == 'dagster' or k.startswith('dagster.')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "[]", f"media/ pulled in Dagster: {out.stdout[:300]}"


def test_only_config_reads_the_environment():
    readers = []
    for path in sorted(PKG.rglob("*.py")):
        if path.name == "config.py" and path.parent == PKG:
            continue
        if path.parent.name == "bench":  # benchmark scripts set up the environment of the runs they time
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            # os.environ.get(...), os.environ[...] (read), os.getenv(...)
            if isinstance(node, ast.Attribute) and node.attr == "getenv":
                readers.append(f"{path.relative_to(PKG)}:{node.lineno}")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" \
                    and isinstance(node.func.value, ast.Attribute) and node.func.value.attr == "environ":
                readers.append(f"{path.relative_to(PKG)}:{node.lineno}")
            if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) \
                    and isinstance(node.value, ast.Attribute) and node.value.attr == "environ":
                readers.append(f"{path.relative_to(PKG)}:{node.lineno}")
    assert not readers, f"read the environment outside config.py (use config.get): {readers}"


def test_every_setting_is_documented():
    from mediaintel_dagster import config

    readme = (PKG.parent / "README.md").read_text()
    missing = [name for name in config.SETTINGS if f"`{name}`" not in readme]
    assert not missing, f"README's configuration table lacks {missing}"
