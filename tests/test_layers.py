"""The layers of advnets and the stage dependencies built on them: the numerics never import the
bookkeeping, no import cycles, and every stage depends on the code that makes its outputs (its
script, layer folders, single modules) and on nothing neutral (advnets.provenance.layers)."""

import ast
import shutil
from pathlib import Path

import pytest
import yaml

from advnets.provenance import layers
from advnets.toy import params_read
from conftest import REPO, imported_modules

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


def dvc_stages() -> list[tuple[str, str, dict]]:
    """(dvc.yaml, stage, its entry) for every stage of every pipeline (a foreach stage's body)."""
    found = []
    for dvc_yaml in [REPO / "dvc.yaml", *sorted((REPO / "pipelines").glob("*/dvc.yaml"))]:
        for name, stage in yaml.safe_load(dvc_yaml.read_text())["stages"].items():
            found.append((str(dvc_yaml.relative_to(REPO)), name, stage.get("do", stage)))
    return found


def test_every_stage_depends_on_the_code_it_runs_and_on_nothing_neutral(tmp_path):
    """Each stage script is run as DVC runs it (its argument too), up to its main(): every module
    of this checkout it loads is under one of its deps or neutral, no dep is neutral, and every
    code dep is one it loads. `dvc queue` runs stages in copies of the repository: a stage must
    load its own copy's code, not an installed advnets."""
    copy = tmp_path.resolve()
    for folder in ("stages", "src"):
        shutil.copytree(REPO / folder, copy / folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for dvc_yaml, name, stage in dvc_stages():
        cmd = stage["cmd"].split()
        args = [arg.replace("${item}", "fc") for arg in cmd[2:]]
        loaded = imported_modules(copy / cmd[1], args)
        elsewhere = [str(path) for path in loaded if copy not in path.parents]
        assert not elsewhere, f"{dvc_yaml} {name} runs code from outside its checkout: {elsewhere}"
        deps = stage["deps"]
        paths = [path.relative_to(copy).as_posix() for path in loaded]
        undeclared = [p for p in paths if not layers.covered(p, deps) and not layers.is_neutral(p)]
        assert not undeclared, f"{dvc_yaml} {name} loads {undeclared}: neither under a dep nor neutral"
        assert not [d for d in deps if layers.is_neutral(d)], f"{dvc_yaml} {name} depends on neutral code"
        unused = [d for d in deps if layers.is_code(d) and d != cmd[1] and not any(layers.covered(p, [d]) for p in paths)]
        assert not unused, f"{dvc_yaml} {name} depends on code it does not load: {unused}"
        assert cmd[1] in deps, f"{dvc_yaml} {name}"


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


def git(root: Path, *args: str) -> None:
    import subprocess

    from conftest import GIT_USER

    subprocess.run(["git", *GIT_USER, *args], cwd=root, check=True, capture_output=True)


def test_published_code_is_compared_with_heads_file_by_file_following_moves(tmp_path):
    from advnets.provenance.lineage import code_changes

    root = tmp_path
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "stages").mkdir()
    step = "from pkg.nets import G\n\n\ndef step(x):\n" + "".join(f"    x = x * {i} + 1\n" for i in range(12)) + "    return x\n"
    (root / "src" / "pkg" / "step.py").write_text(step)
    (root / "src" / "pkg" / "log.py").write_text("".join(f"def log{i}():\n    return {i}\n\n\n" for i in range(8)))
    (root / "stages" / "train.py").write_text("print('train')\n")
    (root / "dvc.yaml").write_text("stages:\n  train:\n    cmd: python stages/train.py\n"
                                   "    deps: [stages/train.py, src/pkg, data/mnist]\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "first")
    first = subprocess_out(root, "rev-parse", "HEAD")
    assert code_changes(root, first) == []  # HEAD trains with the same code

    # the step moves into a layer with new imports; logging moves to neutral code
    (root / "src" / "pkg" / "gan").mkdir()
    (root / "src" / "pkg" / "gan" / "step.py").write_text(step.replace("from pkg.nets", "from pkg.gan.nets"))
    (root / "src" / "pkg" / "step.py").unlink()
    (root / "src" / "advnets" / "provenance").mkdir(parents=True)
    (root / "src" / "pkg" / "log.py").rename(root / "src" / "advnets" / "provenance" / "log.py")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "layers")
    changes = code_changes(root, first)  # log.py moved to neutral code: not the training's any more
    assert len(changes) == 1 and changes[0].startswith("src/pkg/gan/step.py: was src/pkg/step.py, changed (")
    assert changes[0].endswith("imports only)")

    (root / "src" / "pkg" / "gan" / "step.py").write_text(step.replace("x * 3", "x * 4"))
    git(root, "commit", "-q", "-am", "maths")
    (change,) = code_changes(root, first)
    assert "imports only" not in change and ", changed (" in change


def subprocess_out(root: Path, *args: str) -> str:
    import subprocess

    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout.strip()
