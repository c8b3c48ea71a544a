"""One dependency source: ``pyproject.toml``; the other files are kept in agreement here.

``pyproject.toml`` declares the core (``make bench``) and the extras; ``requirements.txt``
(core), ``requirements-full.txt`` (what ``make test`` needs), ``requirements-gpu.txt`` and
``environment.yml`` / ``environment-gpu.yml`` (conda) must say the same, and
``requirements-lock.txt`` must pin a version inside every declared range (``make`` installs
with it as constraints; ``make lock`` refreshes it).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
OPTIONAL = PYPROJECT["project"]["optional-dependencies"]
LOCK = ROOT / "requirements-lock.txt"

#: The extras ``make test`` installs (requirements-full.txt); ``gpu`` is for GPU machines only.
FULL_EXTRAS = ("test", "notebooks", "docs", "ml", "serving", "engines", "peers")
#: The extras the conda environment carries beside the core (the rest: ``pip install -e .[...]``).
CONDA_EXTRAS = ("test", "notebooks", "docs")
#: pip name -> conda-forge name, where they differ.
CONDA_NAME = {
    "ta-lib": "ta-lib",
    "matplotlib": "matplotlib-base",
    "redis": "redis-py",
    "duckdb": "python-duckdb",
}


def _key(req: Requirement) -> tuple[str, str, str, tuple[str, ...]]:
    """A comparable form: canonical name, specifier, marker, extras."""
    return (
        canonicalize_name(req.name),
        str(req.specifier),
        str(req.marker or ""),
        tuple(sorted(req.extras)),
    )


def _pip_file(name: str) -> tuple[set[tuple[str, str, str]], list[str]]:
    """The requirements of a pip file (comments and blank lines skipped) and its ``-r`` lines."""
    reqs, includes = set(), []
    for raw in (ROOT / name).read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-r "):
            includes.append(line[3:].strip())
            continue
        reqs.add(_key(Requirement(line)))
    return reqs, includes


def _declared(*extras: str) -> set[tuple]:
    items = list(PYPROJECT["project"]["dependencies"])
    for extra in extras:
        items += OPTIONAL[extra]
    return {_key(Requirement(s)) for s in items}


def test_extras_exist() -> None:
    missing = [e for e in (*FULL_EXTRAS, "gpu") if e not in OPTIONAL]
    assert not missing, f"pyproject.toml lacks the extras {missing}"


def test_requirements_txt_is_the_core() -> None:
    reqs, includes = _pip_file("requirements.txt")
    assert not includes
    assert reqs == _declared(), (
        f"only in requirements.txt: {sorted(reqs - _declared())}; "
        f"only in pyproject.toml: {sorted(_declared() - reqs)}"
    )


@pytest.mark.parametrize(
    ("name", "extras"), [("requirements-full.txt", FULL_EXTRAS), ("requirements-gpu.txt", ("gpu",))]
)
def test_requirements_files_match_the_extras(name: str, extras: tuple[str, ...]) -> None:
    reqs, includes = _pip_file(name)
    assert includes == ["requirements.txt"], f"{name} starts from -r requirements.txt"
    want = _declared(*extras) - _declared()
    assert reqs == want, (
        f"only in {name}: {sorted(reqs - want)}; only in pyproject.toml: {sorted(want - reqs)}"
    )


def _conda(name: str) -> tuple[set[tuple[str, str]], list]:
    env = yaml.safe_load((ROOT / name).read_text(encoding="utf-8"))
    deps, pip = set(), []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip += dep.get("pip", [])
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(.*)", dep.strip())
        assert m, f"{name}: cannot read dependency {dep!r}"
        spec = m.group(2).replace(" ", "")
        try:
            spec = str(SpecifierSet(spec))
        except InvalidSpecifier:  # conda's own forms, e.g. python=3.11
            pass
        deps.add((canonicalize_name(m.group(1)), spec))
    return deps, pip


def _conda_declared(*extras: str) -> set[tuple[str, str]]:
    out = set()
    for name, spec, _marker, _extras in _declared(*extras):
        out.add((CONDA_NAME.get(name, name), spec))
    return out


def test_environment_yml_matches_the_core_and_conda_extras() -> None:
    deps, pip = _conda("environment.yml")
    want = _conda_declared(*CONDA_EXTRAS)
    assert want <= deps, f"environment.yml lacks {sorted(want - deps)}"
    python_and_services = {d for d in deps - want if d[0] in {"python", "pip", "redis-server"}}
    assert deps - want == python_and_services, f"only in environment.yml: {sorted(deps - want)}"
    assert "-e ." in pip


def test_environment_gpu_yml_extends_environment_yml() -> None:
    base, _ = _conda("environment.yml")
    gpu, _ = _conda("environment-gpu.yml")
    assert base - {("python", "=3.11")} <= gpu, f"environment-gpu.yml lacks {sorted(base - gpu)}"


def _lock() -> dict[str, str]:
    pins = {}
    for raw in LOCK.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        assert not line.startswith("-"), f"{LOCK.name}: unexpected option line {raw!r}"
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;+]+)", line)
        assert m, f"{LOCK.name}: not an exact pin without a local label: {raw!r}"
        pins[canonicalize_name(m.group(1))] = m.group(2)
    return pins


def test_lock_pins_every_declared_package_inside_its_range() -> None:
    pins = _lock()
    problems = []
    for spec in PYPROJECT["project"]["dependencies"] + [
        s for extra in FULL_EXTRAS for s in OPTIONAL[extra]
    ]:
        req = Requirement(spec)
        if req.marker is not None and not req.marker.evaluate():
            continue
        name = canonicalize_name(req.name)
        if name not in pins:
            problems.append(f"{req.name}: not in {LOCK.name}")
        elif not req.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{req.name}: locked {pins[name]} outside {req.specifier}")
    assert not problems, "\n".join(problems)
    assert pins["torch"] == "2.13.0", "torch stays at the CPU build 2.13.0 (see README)"


def test_makefile_installs_from_pyproject_with_the_lock() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    pip_install = re.search(r"^PIP_INSTALL := (.*)$", makefile, re.MULTILINE)
    assert pip_install and "-c $(LOCK)" in pip_install.group(1)
    assert re.search(r"^LOCK := requirements-lock.txt$", makefile, re.MULTILINE)
    extras = re.search(r"^EXTRAS := (.*)$", makefile, re.MULTILINE)
    assert extras and tuple(extras.group(1).split(",")) == FULL_EXTRAS
    recipes = [line.strip() for line in makefile.splitlines() if line.startswith("\t")]
    installs = [line for line in recipes if " -e " in line or "-r requirements" in line]
    assert installs == ["$(PIP_INSTALL) -e .", '$(PIP_INSTALL) -e ".[$(EXTRAS)]"'], installs
    assert re.search(r"^lock:", makefile, re.MULTILINE), "make lock refreshes the lock"
