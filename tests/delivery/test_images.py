"""The five images. No Docker here, so each Dockerfile is linted (hadolint), read for what the
contract asks of the running container, its ignore file checked against what it copies, and its
builder stage replayed: the COPYs from exactly the files the build context admits, then its uv
commands as written, then the resulting venv imports the service."""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from packaging.specifiers import SpecifierSet

from sonalyze_storage.migrate import alembic_config
from tests.delivery.chart import ROOT, SERVICES, settings_class
from tests.delivery.dockerignore import Matcher

UV_VENV = "UV_PROJECT_ENVIRONMENT"  # the runner's, which would send uv sync elsewhere
HADOLINT = Path(sys.executable).parent / "hadolint"
RUNTIME_ENV = {
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
    "SONALYZE_HOST": "0.0.0.0",
    "SONALYZE_LOG_FORMAT": "json",
}
# Paths no image's build context may hold (beside the other services' sources).
SHUT_OUT = [
    ".git/HEAD",
    ".venv/bin/python",
    "tests/delivery/test_images.py",
    "benchmarks/stack.py",
    "charts/sonalyze/Chart.yaml",
    "storage/alembic.ini",
    "common/src/sonalyze/__pycache__/cli.cpython-311.pyc",
]


@dataclass(frozen=True)
class Instruction:
    keyword: str
    value: str
    flags: dict[str, str] = field(default_factory=dict)

    def pairs(self) -> dict[str, str]:
        """``KEY=value ...`` of ENV and LABEL, unquoted."""
        return dict(word.split("=", 1) for word in shlex.split(self.value))


@functools.cache
def stages(service: str) -> list[list[Instruction]]:
    """The Dockerfile's instructions, one list per FROM (continuations joined, comments out)."""
    lines, current = [], ""
    for line in (ROOT / service / "Dockerfile").read_text().splitlines():
        if line.lstrip().startswith("#") or not (current or line.strip()):
            continue
        current += line.rstrip()
        if current.endswith("\\"):
            current = current[:-1]
            continue
        lines.append(current)
        current = ""
    result: list[list[Instruction]] = []
    for line in lines:
        keyword, rest = line.split(None, 1)
        flags = {}
        while rest.startswith("--"):
            flag, rest = rest.split(None, 1)
            name, _, value = flag[2:].partition("=")
            flags[name] = value
        if keyword.upper() == "FROM":
            result.append([])
        result[-1].append(Instruction(keyword.upper(), rest.strip(), flags))
    return result


def last(stage: list[Instruction], keyword: str) -> Instruction:
    return [i for i in stage if i.keyword == keyword][-1]


@functools.cache
def context_files(service: str) -> list[str]:
    """The files of the working tree (tracked or not ignored) the build context admits."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    matcher = Matcher.from_text((ROOT / service / "Dockerfile.dockerignore").read_text())
    return matcher.admitted(path for path in listed if path and (ROOT / path).is_file())


def copy_sources(service: str) -> list[str]:
    """What the Dockerfile copies from the build context (not from an image or a stage)."""
    return [
        source
        for stage in stages(service)
        for i in stage
        if i.keyword == "COPY" and "from" not in i.flags
        for source in shlex.split(i.value)[:-1]
    ]


def under(path: str, source: str) -> bool:
    return source in (".", "./", path) or path.startswith(source.rstrip("/") + "/")


def default_port(service: str) -> int:
    """The port the service listens on unless told otherwise (its settings' default)."""
    port: int = settings_class(service).model_fields["port"].default
    return port


@pytest.mark.parametrize("service", SERVICES)
def test_hadolint_finds_nothing(service: str) -> None:
    lint = subprocess.run(
        [HADOLINT, "--no-color", f"{service}/Dockerfile"], cwd=ROOT, capture_output=True, text=True
    )
    assert (lint.returncode, lint.stdout + lint.stderr) == (0, "")


@pytest.mark.parametrize("service", SERVICES)
def test_the_builder_installs_the_service_from_the_lock(service: str) -> None:
    builder, final = stages(service)
    uv_image = next(i.flags["from"] for i in builder if "astral-sh/uv" in i.flags.get("from", ""))
    required = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]
    assert uv_image.rsplit(":", 1)[1] in SpecifierSet(required["required-version"])
    runs = [i.value for i in builder if i.keyword == "RUN"]
    assert runs and all(
        {"--frozen", "--no-dev", "--no-editable", f"sonalyze-{service}"} <= set(run.split())
        for run in runs
    )
    assert builder[0].value.split()[0] == final[0].value, "the venv's Python in both stages"
    source, dest = shlex.split(next(i.value for i in final if i.flags.get("from") == "builder"))
    assert source == dest, "a venv works only where it was made"


@pytest.mark.parametrize("service", SERVICES)
def test_the_image_runs_the_service_as_the_contract_says(service: str) -> None:
    final = stages(service)[-1]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", final[0].value), "pinned slim 3.11"
    venv = shlex.split(next(i.value for i in final if i.flags.get("from") == "builder"))[-1]
    env = {k: v for i in final if i.keyword == "ENV" for k, v in i.pairs().items()}
    assert env["PATH"].startswith(f"{venv}/bin:")
    assert env.items() >= RUNTIME_ENV.items()
    uid, gid = last(final, "USER").value.split(":")
    assert uid.isdigit() and gid.isdigit() and int(uid) != 0 and int(gid) != 0
    for run in (i.value for i in final if i.keyword == "RUN"):
        assert not re.search(r"\b(apt-get|apt|apk|pip|uv|gcc|make|build-essential)\b", run)
    assert json.loads(last(final, "ENTRYPOINT").value) == ["python", "-m", f"sonalyze_{service}"]
    assert last(final, "EXPOSE").value == str(default_port(service))
    labels = {k: v for i in final if i.keyword == "LABEL" for k, v in i.pairs().items()}
    assert labels["org.opencontainers.image.title"] == f"sonalyze-{service}"
    assert labels["org.opencontainers.image.description"]
    assert labels["org.opencontainers.image.source"].startswith("https://")


@pytest.mark.parametrize("service", SERVICES)
def test_the_ignore_file_admits_what_the_image_copies_and_nothing_else(service: str) -> None:
    files, sources = context_files(service), copy_sources(service)
    for source in sources:
        assert any(under(path, source) for path in files), f"COPY {source}: not in the context"
    assert [path for path in files if not any(under(path, s) for s in sources)] == []
    others = [f"{s}/src/sonalyze_{s}/__init__.py" for s in SERVICES if s != service]
    matcher = Matcher.from_text((ROOT / service / "Dockerfile.dockerignore").read_text())
    assert [path for path in SHUT_OUT + others if not matcher.excludes(path)] == []


def replay_builder(service: str, uv: str, tmp: Path) -> Path:
    """Run the builder stage outside Docker: its COPYs from a copy of the files the build context
    admits, its ENV, WORKDIR and uv commands as written, ``/`` being ``tmp/rootfs``, the uv
    image's binary the local uv, and the uv cache the machine's (RUN flags such as the cache
    mount do not apply). Returns the python of the venv the final stage takes."""
    context, rootfs, bin_dir = tmp / "context", tmp / "rootfs", tmp / "bin"
    for path in context_files(service):
        (context / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / path, context / path)
    bin_dir.mkdir()
    (bin_dir / "uv").symlink_to(uv)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", UV_VENV)}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    workdir = rootfs
    builder, final = stages(service)
    for i in builder[1:]:
        if i.keyword == "WORKDIR":
            workdir = rootfs / i.value.lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
        elif i.keyword == "ENV":
            env.update(i.pairs())
        elif i.keyword == "COPY" and "from" not in i.flags:
            *sources, dest = shlex.split(i.value)
            target = rootfs / dest.lstrip("/") if dest.startswith("/") else workdir / dest
            for source in sources:
                if (context / source).is_dir():
                    shutil.copytree(context / source, target, dirs_exist_ok=True)
                else:
                    into = target / Path(source).name if dest.endswith("/") else target
                    into.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(context / source, into)
        elif i.keyword == "RUN":
            assert i.value.startswith("uv "), f"the builder runs only uv, not {i.value!r}"
            run = subprocess.run(i.value, shell=True, cwd=workdir, env=env, capture_output=True)
            assert run.returncode == 0, run.stderr.decode()
        else:
            assert (i.keyword, i.value.split()[0]) == ("COPY", "/uv"), f"unexpected {i}"
    venv = next(i for i in final if i.flags.get("from") == "builder").value.split()[0]
    return rootfs / venv.lstrip("/") / "bin" / "python"


# Run by the image's venv: every module of the service's package (alembic loads the migrations)
# imports, from the venv (not from the repo), and the dev tools are not there.
IMPORTS = """
import importlib, importlib.util, pathlib, pkgutil, sys
package = importlib.import_module(sys.argv[1])
names = [package.__name__]
names += [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
for name in names:
    if ".migrations" not in name:
        path = pathlib.Path(importlib.import_module(name).__file__)
        assert path.is_relative_to(sys.prefix), f"{name} from {path}, not from the venv"
assert {f"{package.__name__}.app", f"{package.__name__}.__main__"} <= set(names), names
assert importlib.util.find_spec("pytest") is None, "dev dependencies in the image"
"""
# Run by storage's venv: the migrations ship inside the installed package; prints their head.
MIGRATIONS = """
import os, sys
from alembic.script import ScriptDirectory
from sonalyze_storage.migrate import alembic_config
scripts = ScriptDirectory.from_config(alembic_config("postgresql://unused"))
assert scripts.dir.startswith(sys.prefix) and os.path.isfile(scripts.env_py_location)
print(scripts.get_current_head())
"""


@pytest.mark.parametrize("service", SERVICES)
def test_the_builder_stage_installs_the_service_from_its_context_alone(
    service: str, tmp_path: Path
) -> None:
    uv = os.environ.get("UV") or shutil.which("uv")
    if not uv:
        pytest.skip("needs uv: python3.11 -m pip install uv")
    python = replay_builder(service, uv, tmp_path)
    run_in(python, IMPORTS, f"sonalyze_{service}")
    if service == "storage":
        head = ScriptDirectory.from_config(alembic_config("postgresql://unused")).get_current_head()
        assert run_in(python, MIGRATIONS) == f"{head}\n"


def run_in(python: Path, script: str, *args: str) -> str:
    """``script`` run by ``python`` in isolated mode (no PYTHONPATH, no cwd); its output."""
    run = subprocess.run([python, "-I", "-c", script, *args], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return run.stdout


@pytest.mark.parametrize("service", [s for s in SERVICES if s != "gateway"])
def test_the_five_images_are_built_alike(service: str) -> None:
    """Each service keeps its own Dockerfile and ignore file (its folder, its image), but they are
    one text with the service's name and port: a change to one is made to all."""
    port = {s: str(default_port(s)) for s in ("gateway", service)}
    for name in ("Dockerfile", "Dockerfile.dockerignore"):
        text = (ROOT / service / name).read_text()
        expected = (ROOT / "gateway" / name).read_text()
        expected = expected.replace("gateway", service).replace(port["gateway"], port[service])
        assert text == expected, f"{service}/{name} differs from gateway/{name} beyond its name"
