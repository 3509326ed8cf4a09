"""The layering of chalicelib, checked from the source: arrows point down, and the package ships nothing test-only.

    api ──► services ──► storage | keys | pki ──► domain (and errors, ids, clock, settings)

Every `import` in a module counts, including those inside functions (lazy imports still bind layers).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "chalicelib"

# (importer prefix, forbidden import prefixes)
RULES: list[tuple[str, tuple[str, ...]]] = [
    ("chalicelib.domain", ("chalicelib.api", "chalicelib.services", "chalicelib.storage", "chalicelib.keys",
                           "chalicelib.pki", "pynamodb", "boto3", "botocore", "cryptography", "pkcs11")),
    ("chalicelib.storage", ("chalicelib.api", "chalicelib.services", "chalicelib.keys", "chalicelib.pki")),
    ("chalicelib.keys", ("chalicelib.api", "chalicelib.services", "chalicelib.storage", "pynamodb")),
    ("chalicelib.pki", ("chalicelib.api", "chalicelib.services", "chalicelib.storage", "pynamodb")),
    ("chalicelib.services", ("chalicelib.api",)),
    ("chalicelib", ("app", "localdev", "tests", "bench", "rotasign_cli", "moto")),
]
# Only the storage layer speaks DynamoDB.
DYNAMODB = ("pynamodb",)


def module_name(path: Path) -> str:
    """`chalicelib/storage/keypairs.py` → `chalicelib.storage.keypairs`."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(source: str, name: str) -> set[str]:
    """Every module a source imports (relative imports resolved against `name`)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(name.split(".")[: -node.level] + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


def violations(modules: dict[str, str]) -> list[str]:
    """`importer → imported` pairs that break RULES (or speak DynamoDB outside storage)."""
    found = []
    for name, source in sorted(modules.items()):
        for imported in sorted(imports(source, name)):
            for importer, forbidden in RULES:
                if (name == importer or name.startswith(importer + ".")) and any(
                        imported == f or imported.startswith(f + ".") for f in forbidden):
                    found.append(f"{name} → {imported}")
            if not name.startswith("chalicelib.storage") and imported.startswith(DYNAMODB):
                found.append(f"{name} → {imported} (only chalicelib.storage speaks DynamoDB)")
    return sorted(set(found))


def package_sources() -> dict[str, str]:
    return {module_name(p): p.read_text() for p in PACKAGE.rglob("*.py")}


def test_the_layers_hold() -> None:
    assert violations(package_sources()) == []


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("chalicelib.storage.keypairs", "from chalicelib.services.keypairs import KeypairService"),
        ("chalicelib.keys.disk", "def f():\n    from chalicelib.storage.tables import KeypairModel"),
        ("chalicelib.pki.tsa", "import chalicelib.storage.connection"),
        ("chalicelib.services.signing", "from chalicelib.api import render"),
        ("chalicelib.services.keypairs", "from pynamodb.models import Model"),
        ("chalicelib.domain.keypairs", "from cryptography import x509"),
        ("chalicelib.api.http", "from localdev.softhsm import ensure_token"),
        ("chalicelib.storage.store", "from tests.support.api import add_user"),
    ],
)
def test_the_checker_finds_each_kind_of_violation(module: str, source: str) -> None:
    assert violations({module: source}) != []


def reachable_from_app() -> set[str]:
    """Modules of chalicelib that app.py reaches through imports (top level or inside functions)."""
    sources = package_sources()
    seen: set[str] = set()
    todo = [m for m in imports((ROOT / "app.py").read_text(), "app") if m.startswith("chalicelib")]
    while todo:
        name = todo.pop()
        # `from chalicelib.x import y` also names `chalicelib.x.y`, which may be a module or a name.
        candidates = [name] if name in sources else []
        if not candidates:
            continue
        for candidate in candidates:
            if candidate in seen:
                continue
            seen.add(candidate)
            parts = candidate.split(".")
            seen |= {".".join(parts[:i]) for i in range(1, len(parts)) if ".".join(parts[:i]) in sources}
            todo += [m for m in imports(sources[candidate], candidate) if m.startswith("chalicelib")]
    return seen


def test_the_package_holds_only_what_requests_use() -> None:
    """Chalice packages all of chalicelib/: every module in it must be reachable from app.py."""
    unused = set(package_sources()) - reachable_from_app()
    assert unused == set(), f"modules no request path uses (test-only or local-only code belongs elsewhere): {unused}"
