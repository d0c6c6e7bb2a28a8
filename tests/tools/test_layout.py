"""The house rules of medlib's layout: no import cycle (function-local imports count), no module over 450 lines,
few entries at the top, and docs/layout.md says what the code holds."""

import ast
import subprocess
import sys

from conftest import REPO

PACKAGE = REPO / "medlib"


def _modules() -> dict[str, tuple[object, bool]]:
    mods = {}
    for p in PACKAGE.rglob("*.py"):
        parts = list(p.relative_to(REPO).with_suffix("").parts)
        pkg = parts[-1] == "__init__"
        mods[".".join(parts[:-1] if pkg else parts)] = (p, pkg)
    return mods


def _edges(mods):
    """module -> the medlib modules it imports anywhere in its body (ImportFrom names count as modules too)."""
    edges = {m: set() for m in mods}
    for m, (p, pkg) in mods.items():
        for n in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            names = []
            if isinstance(n, ast.Import):
                names = [a.name for a in n.names]
            elif isinstance(n, ast.ImportFrom):
                base = m.split(".") if pkg else m.split(".")[:-1]
                if n.level > 1:
                    base = base[: len(base) - (n.level - 1)]
                mod = ".".join(base + [n.module] if n.module else base) if n.level else (n.module or "")
                names = [mod] + [f"{mod}.{a.name}" for a in n.names]
            edges[m] |= {t for t in names if t in mods and t != m and not m.startswith(t + ".")}
    return edges


def test_no_import_cycle_among_modules():
    mods = _modules()
    edges = _edges(mods)

    def reaches(a, b, seen):
        return a == b or any(x not in seen and not seen.add(x) and reaches(x, b, seen) for x in edges[a])

    cycles = sorted({" <-> ".join(sorted((a, b))) for a in edges for b in edges[a]
                     if not mods[a][1] and not mods[b][1] and reaches(b, a, set())})
    assert not cycles, cycles


def test_a_cycle_is_found_when_there_is_one(tmp_path, monkeypatch):
    """The checker above can fail: two modules importing each other inside functions form a cycle."""
    pkg = tmp_path / "medlib"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from .b import g\n")
    (pkg / "b.py").write_text("def g():\n    from . import a\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", pkg)
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    edges = _edges(_modules())
    assert "medlib.b" in edges["medlib.a"] and "medlib.a" in edges["medlib.b"]


def test_modules_are_short_and_the_top_has_few_entries():
    long = {str(p.relative_to(REPO)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 450}
    assert not long, long
    top = [x.name for x in PACKAGE.iterdir() if not x.name.startswith((".", "__"))]
    assert len(top) <= 14, top


def test_docs_layout_is_current():
    res = subprocess.run([sys.executable, str(REPO / "scripts" / "layout_doc.py"), "--check"], capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr
