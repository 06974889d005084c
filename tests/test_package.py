"""The house: one `vidtune` namespace, Ray in one layer, imports that only go down, and no
import circle."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("data", "search_spaces", "trainable", "analysis", "scripts", "vidtune")
# Each package (or layer) and the vidtune packages it may import. Lower layers come first.
ALLOWED = {
    "data": {"data"},
    "search_spaces": {"search_spaces"},
    "trainable/core": {"data", "search_spaces", "trainable/core"},
    "trainable/tune": {"data", "search_spaces", "trainable/core", "trainable/tune"},
    "trainable/best": {"data", "search_spaces", "trainable/core", "trainable/tune", "trainable/best"},
    "analysis": {"data", "search_spaces", "trainable/core", "trainable/tune", "trainable/best",
                 "analysis"},
}


def _sources() -> list[Path]:
    return [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]


def _imports(path: Path) -> list[str]:
    """Every module name imported by a file (module level, functions and TYPE_CHECKING alike)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
    return out


def _layer(module: str) -> str | None:
    """vidtune.trainable.tune.driver -> 'trainable/tune'; vidtune.data.x -> 'data'."""
    parts = module.split(".")
    if parts[0] != "vidtune" or len(parts) < 2 or parts[1].startswith("_"):
        return None   # vidtune._lazy and the like: helpers below every layer (next test)
    if parts[1] == "trainable" and len(parts) > 2:
        return f"trainable/{parts[2]}"
    return parts[1]


def test_nothing_imports_the_bare_folder_names():
    bare = [(str(p.relative_to(ROOT)), m) for p in [*_sources(), *ROOT.glob("tests/*.py")]
            for m in _imports(p) if m.split(".")[0] in PACKAGES[:-1]]
    assert not bare, f"import these as vidtune.<package>: {bare}"


def test_ray_is_imported_only_in_the_tune_layer():
    outside = [str(p.relative_to(ROOT)) for p in _sources()
               if any(m.split(".")[0] == "ray" for m in _imports(p))
               and not p.is_relative_to(ROOT / "trainable" / "tune")]
    assert not outside, f"Ray imported outside trainable/tune: {outside}"


def test_the_package_never_imports_the_benchmarks():
    """benchmarks/ sits beside the package and is not installed: it uses vidtune, not the reverse."""
    assert (ROOT / "benchmarks" / "bench_search.py").is_file() and not (ROOT / "analysis" / "bench").exists()
    up = [f"{p.relative_to(ROOT)} imports {m}" for p in _sources() for m in _imports(p)
          if m.split(".")[0] == "benchmarks"]
    assert not up, up


def test_private_helpers_import_no_vidtune_package():
    helpers = sorted(p for p in (ROOT / "vidtune").glob("_*.py") if p.name != "__init__.py")
    assert helpers, "vidtune/_lazy.py is gone: update this test"
    up = [f"{p.relative_to(ROOT)} imports {m}" for p in helpers for m in _imports(p)
          if m.split(".")[0] == "vidtune"]
    assert not up, up


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_imports_only_go_down(layer):
    bad = []
    for path in (ROOT / layer).rglob("*.py"):
        for module in _imports(path):
            target = _layer(module)
            if target is not None and target not in ALLOWED[layer] and target != "trainable":
                bad.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not bad, bad


def _module(path: Path) -> str:
    """data/build.py -> vidtune.data.build; trainable/tune/__init__.py -> vidtune.trainable.tune."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts if parts[0] == "vidtune" else ["vidtune", *parts])


def _import_graph() -> dict[str, set[str]]:
    """Each vidtune module -> the vidtune modules it imports (anywhere in the file, as _imports).
    `from package import module` is an edge to the module; any other name from a package is
    an edge to the package's __init__."""
    modules = {_module(p): p for p in _sources()}
    graph = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                submodules = {f"{node.module}.{a.name}" for a in node.names} & modules.keys()
                targets |= submodules
                if len(submodules) < len(node.names):
                    targets.add(node.module)
        graph[name] = (targets & modules.keys()) - {name}
    return graph


def _circle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle of the graph, as [a, b, ..., a]; [] if there is none."""
    done: set[str] = set()
    for start in sorted(graph):
        path, on_path = [start], {start}
        stack = [iter(sorted(graph[start]))]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:   # every import of path[-1] explored: no circle through it
                finished = path.pop()
                on_path.discard(finished)
                done.add(finished)
                stack.pop()
                continue
            if nxt in on_path:
                return [*path[path.index(nxt):], nxt]
            if nxt not in done:
                path.append(nxt)
                on_path.add(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return []


def test_the_circle_finder_finds_a_circle_and_only_a_circle():
    assert _circle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert _circle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []
    assert _circle({"a": {"a2"}, "a2": {"b"}, "b": {"a2"}}) == ["a2", "b", "a2"]


def test_no_import_circle_among_vidtune_modules():
    graph = _import_graph()
    assert {"vidtune.data.build", "vidtune.search_spaces._registry"} <= graph.keys()
    assert "vidtune.data.chunks" in graph["vidtune.data.pool"], "the graph misses an import"
    circle = _circle(graph)
    assert not circle, f"import circle: {' -> '.join(circle)}; move what they share into a module below them"


def test_every_package_index_lists_every_module():
    """A package whose docstring indexes its modules ("- model.py  ...") lists all of them."""
    indexed = 0
    for init in (p for p in _sources() if p.name == "__init__.py"):
        listed = set(re.findall(r"^- (\w+\.py)", ast.get_docstring(ast.parse(init.read_text())) or "",
                                re.MULTILINE))
        if listed:
            indexed += 1
            modules = {p.name for p in init.parent.glob("*.py")} - {"__init__.py"}
            assert listed == modules, f"{init.relative_to(ROOT)}: missing {sorted(modules - listed)}, " \
                                      f"gone {sorted(listed - modules)}"
    assert indexed >= 3, "data/, trainable/core/ and trainable/tune/ index their modules"


def test_import_vidtune_is_light_and_the_api_resolves():
    code = ("import sys, vidtune; light = not {'torch', 'ray'} & set(sys.modules); "
            "missing = [n for n in vidtune.__all__ if getattr(vidtune, n, None) is None]; "
            "print(light, missing)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd="/")
    assert out.stdout.split() == ["True", "[]"], out.stdout + out.stderr


def test_only_vidtune_is_installed_as_a_top_level_name(tmp_path):
    """A wheel of this project holds vidtune/... and its metadata, nothing else at the top."""
    # Built from a copy of the tracked files: setuptools leaves build/ in the source folder,
    # and a stale build/ there could hide a module that no longer exists.
    source = tmp_path / "src"
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    for rel in tracked:
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, source / rel)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                            "-q", "-w", str(tmp_path), str(source)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = tmp_path.glob("vidtune-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"vidtune", next(t for t in tops if t.endswith(".dist-info"))}, tops
    assert not [n for n in names if "bench" in n], "the benchmarks are not part of the wheel"
    # Every package folder of the repository made it in, mapped under vidtune/.
    for pkg in PACKAGES[:-1]:
        for init in (source / pkg).rglob("__init__.py"):
            assert f"vidtune/{init.relative_to(source).as_posix()}" in names, init


def test_installed_distribution_maps_only_vidtune():
    from importlib.metadata import packages_distributions

    ours = sorted(name for name, dists in packages_distributions().items() if "vidtune" in dists)
    assert ours == ["vidtune"], ours
