"""The layers of advnets: the numerics never import the bookkeeping, no import cycles, each stage
lists the params it reads, and a run records the code it loaded file by file."""

import ast
import shutil
from pathlib import Path

import pytest

from advnets.provenance import layers
from advnets.toy import params_read
from conftest import REPO, dvc_stages

SRC = REPO / "src" / "advnets"
NUMERICS = ("gan", "eval", "data", "parzen", "toy")  # the paper's maths: sub-packages and modules
BOOKKEEPING = ("provenance", "report", "pipeline")
THIRD_PARTY_BOOKKEEPING = ("mlflow", "dvc", "matplotlib")
MAY_IMPORT_PROVENANCE = ("pipeline", "cli")


def module_name(path: Path, src: Path) -> str:
    parts = path.relative_to(src.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, src: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function (`from a import b` names a.b
    when a.b is a module of advnets, else a)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                where = src.parent / Path(*candidate.split("."))
                if where.with_suffix(".py").is_file() or where.is_dir():
                    found.add(candidate)
    return found


def layer_of(module: str) -> str:
    """advnets.gan.trainer -> gan; advnets.params -> params."""
    return module.split(".")[1] if module.count(".") >= 1 else module


def violations(src: Path) -> list[str]:
    """The import rules, broken: one line per forbidden import."""
    found = []
    for path in sorted(src.rglob("*.py")):
        name = module_name(path, src)
        if name == "advnets":
            continue
        layer = layer_of(name)
        for imported in sorted(imports(path, src)):
            top = imported.split(".")[0]
            target = layer_of(imported) if top == "advnets" and "." in imported else None
            if layer in NUMERICS and (target in BOOKKEEPING or top in THIRD_PARTY_BOOKKEEPING):
                found.append(f"{name} (numerics) imports {imported}")
            if layer == "report" and (target == "provenance" or top == "mlflow"):
                found.append(f"{name} (report) imports {imported}")
            if target == "provenance" and layer not in (*MAY_IMPORT_PROVENANCE, "provenance"):
                found.append(f"{name} imports {imported}: only pipeline/, cli, stages/ and benchmarks/ may")
    return found


def cycles(src: Path) -> list[list[str]]:
    """Import cycles between advnets' modules (any import, lazy ones included)."""
    graph = {}
    for path in src.rglob("*.py"):
        name = module_name(path, src)
        graph[name] = {m for m in imports(path, src) if m.startswith("advnets.") and m != name}
    modules = set(graph)
    graph = {name: {m for m in targets if m in modules and not name.startswith(m + ".")} for name, targets in graph.items()}
    found, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_the_layers_keep_their_import_rules_and_have_no_cycles():
    assert violations(SRC) == []
    assert cycles(SRC) == []


@pytest.mark.parametrize(
    ("where", "line", "broken"),
    [
        ("gan/trainer.py", "import mlflow", "advnets.gan.trainer (numerics) imports mlflow"),
        ("eval/selection.py", "from advnets.provenance import tracking", "advnets.eval.selection (numerics) imports advnets.provenance.tracking"),
        ("report/results.py", "from advnets.provenance.runs import scored_runs", "advnets.report.results (report) imports advnets.provenance.runs"),
        ("toy.py", "from advnets.report import figures", "advnets.toy (numerics) imports advnets.report.figures"),
    ],
)
def test_a_forbidden_import_is_caught(tmp_path, where, line, broken):
    copy = tmp_path / "advnets"
    shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / where
    target.write_text(target.read_text() + f"\n\ndef _added():\n    {line}\n")
    assert broken in "\n".join(violations(copy))


def test_a_cycle_is_caught(tmp_path):
    copy = tmp_path / "advnets"
    shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns("__pycache__"))
    nets = copy / "gan" / "nets.py"
    nets.write_text(nets.read_text() + "\n\ndef _added():\n    from advnets.gan.build import build_nets\n")
    assert any({"advnets.gan.build", "advnets.gan.nets"} <= set(cycle) for cycle in cycles(copy))


def test_the_toy_stage_lists_exactly_the_params_it_reads(raw_params):
    from advnets.params import validate

    params = validate(raw_params)
    listed = next(stage for _, name, stage in dvc_stages() if name == "toy")["params"]
    read = {key.split(".")[0] if key.startswith("toy.") else key for key in params_read(params)}
    assert set(listed) == read | {"tracking.experiment"}


def test_a_run_records_every_module_it_loaded_file_by_file_and_no_folder_hash():
    """A folder of code is one dependency; a run's tags name each of its files that the run
    loaded, with the md5 it had (dvc.lock's folder hash is of the last run, not this one)."""
    import advnets.gan.trainer  # noqa: F401  loaded, as the train stage loads it
    from advnets.atomic import md5_of
    from advnets.provenance import tracking

    tags = tracking.file_tags(REPO, "train", files=("deps",))
    assert tags["dvc.md5.src/advnets/gan/trainer.py"] == md5_of(SRC / "gan" / "trainer.py")
    assert tags["dvc.md5.src/advnets/provenance/tracking.py"] == md5_of(SRC / "provenance" / "tracking.py")  # what ran
    assert tags["dvc.md5.stages/train.py"] == md5_of(REPO / "stages" / "train.py")  # a file dependency
    assert not any(key in tags for key in ("dvc.md5.src/advnets/gan", "dvc.md5.src/advnets/eval"))


@pytest.mark.parametrize(
    ("path", "neutral"),
    [("src/advnets/provenance", True), ("src/advnets/provenance/", True), ("src/advnets/provenance/lineage.py", True),
     ("src/advnets/params.py", True), ("src/advnets/gan", False), ("src/advnets/provenance_extra.py", False),
     ("src/advnets/params.py.orig", False)],
)
def test_neutral_code_is_named_by_file_or_folder(path, neutral):
    assert layers.is_neutral(path) is neutral
