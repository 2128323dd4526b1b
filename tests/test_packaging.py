"""What the built distributions carry: the licence, full metadata, and an sdist whose own
tests collect."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--sdist", "--wheel", "-o", str(out), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    return out


def test_the_wheel_carries_the_licence_and_full_metadata(dist: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA")))
    text = metadata.decode()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "License-Expression: MIT" in text
    for classifier in ("Programming Language :: Python :: 3.10", "Development Status ::",
                       "Intended Audience :: Developers", "Topic :: Software Development :: Testing"):
        assert f"Classifier: {classifier}" in text
    assert "pytest_insidellms/py.typed" in names


def test_the_sdists_tests_collect_and_it_carries_examples_and_changelog(
    dist: Path, tmp_path: Path
) -> None:
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp_path, filter="data")
    (tree,) = tmp_path.iterdir()
    for name in ("LICENSE", "CHANGELOG.md", "ARCHITECTURE.md", "tests/conftest.py",
                 "tests/local_runs.py", "examples/evals/test_qa.py"):
        assert (tree / name).is_file(), name
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                           "-p", "no:cacheprovider", "tests"],
                          cwd=tree, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "error" not in done.stdout.splitlines()[-1]


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    import re

    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_in_page_link_of_the_readme_resolves() -> None:
    import re

    readme = (ROOT / "README.md").read_text("utf-8")
    anchors = {_slug(line.lstrip("#")) for line in readme.splitlines() if line.startswith("#")}
    links = set(re.findall(r"\]\(#([^)]+)\)", readme))
    assert links and links <= anchors, sorted(links - anchors)
