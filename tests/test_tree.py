"""The source tree: small modules, test modules that nothing imports, and benchmarks that
import only the package (what they share with the tests lives in ``bnn_keras``)."""

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the folders whose modules the rules cover
FOLDERS = ("bnn_keras", "tests", "benchmarks")
MAX_LINES = 300


def _modules(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def imported_modules(source: str) -> set[str]:
    """Every module an ``import`` or ``from ... import`` names, anywhere in ``source``
    (``from tests import x`` names ``tests`` and ``tests.x``)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def is_test_module(module: str) -> bool:
    """``tests.test_x`` (or ``test_x``, as a script on ``sys.path`` imports it)."""
    return module.split(".")[-1].startswith("test_")


def test_no_module_imports_a_test_module():
    found = [f"{p.relative_to(ROOT)} imports {m}" for p in _modules(*FOLDERS)
             for m in sorted(imported_modules(p.read_text())) if is_test_module(m)]
    assert not found, "\n".join(found)


def test_benchmarks_import_only_the_package_not_the_tests():
    found = [f"{p.relative_to(ROOT)} imports {m}" for p in _modules("benchmarks")
             for m in sorted(imported_modules(p.read_text())) if m.split(".")[0] == "tests"]
    assert not found, "\n".join(found)


def test_no_module_over_300_lines():
    long = [f"{p.relative_to(ROOT)}: {n} lines" for p in _modules(*FOLDERS)
            if (n := len(p.read_text().splitlines())) > MAX_LINES]
    assert not long, "\n".join(long)


def test_the_checks_see_what_they_forbid():
    source = "import os\nfrom tests import test_cli\ndef f():\n    from tests.helpers import x\n"
    found = imported_modules(source)
    assert {"os", "tests", "tests.test_cli", "tests.helpers", "tests.helpers.x"} <= found
    assert is_test_module("tests.test_cli") and is_test_module("test_cli")
    assert not is_test_module("tests.helpers") and not is_test_module("bnn_keras.testing")
    assert len(_modules("bnn_keras")) > 50 and ROOT / "tests" / "test_tree.py" in _modules("tests")


def test_no_package_module_shadows_the_standard_library():
    """``bnn_keras/io.py`` beside ``import io`` reads as the one and hides the other."""
    clash = [str(p.relative_to(ROOT)) for p in _modules("bnn_keras")
             if p.stem in sys.stdlib_module_names]
    assert not clash, "\n".join(clash)
    assert "io" in sys.stdlib_module_names and "inspect" in sys.stdlib_module_names
