"""The GitHub Actions workflows parse and do what the README says (no runner is reachable
here, so this is the check): ``test.yml`` runs ``.ci/run`` on pushes and pull requests,
``book.yml`` deploys ``_build/html`` with the official Pages actions, and ``reproduce.yml``
runs ``make reproduce`` weekly and on demand and uploads the table.

PyYAML follows YAML 1.1, where the key ``on`` parses as ``True``; :func:`_triggers` reads both.
"""

from __future__ import annotations

import pytest
import yaml

from minir1.publish.chapters import source_notebooks
from minir1.utils import repo_root

WORKFLOWS = repo_root() / ".github" / "workflows"


def _load(name: str) -> dict:
    path = WORKFLOWS / name
    assert path.exists(), f"missing workflow {path}"
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict), f"{name} is not a YAML mapping"
    return doc


def _triggers(doc: dict) -> dict:
    on = doc.get("on", doc.get(True))
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return {k: None for k in on}
    assert isinstance(on, dict), f"no `on:` triggers in {doc.get('name')}"
    return on


def _steps(doc: dict) -> list[dict]:
    return [s for job in doc["jobs"].values() for s in job.get("steps", [])]


def _uses(doc: dict) -> list[str]:
    return [s["uses"] for s in _steps(doc) if "uses" in s]


def _runs(doc: dict) -> str:
    return "\n".join(s.get("run", "") for s in _steps(doc))


@pytest.mark.parametrize("name", ["test.yml", "book.yml", "reproduce.yml"])
def test_workflow_is_well_formed(name):
    doc = _load(name)
    assert doc.get("name"), f"{name}: no name"
    assert doc.get("jobs"), f"{name}: no jobs"
    for job_id, job in doc["jobs"].items():
        assert "runs-on" in job, f"{name}: job {job_id} has no runs-on"
        assert job.get("steps"), f"{name}: job {job_id} has no steps"
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), f"{name}: {job_id} step needs uses or run: {step}"
        needs = job.get("needs", [])
        for dep in [needs] if isinstance(needs, str) else needs:
            assert dep in doc["jobs"], f"{name}: {job_id} needs unknown job {dep!r}"
    for use in _uses(doc):
        assert "@" in use, f"{name}: action {use!r} is not pinned to a version"


def _setup_python(doc: dict) -> dict:
    steps = [s for s in _steps(doc) if s.get("uses", "").startswith("actions/setup-python@")]
    assert steps, "no actions/setup-python step"
    return steps[0].get("with", {})


def test_test_workflow_runs_ci_on_push_and_pull_request():
    doc = _load("test.yml")
    assert {"push", "pull_request"} <= set(_triggers(doc))
    setup = _setup_python(doc)
    assert str(setup.get("python-version")) == "3.11"
    assert setup.get("cache") == "pip"
    runs = _runs(doc)
    assert ".ci/run" in runs.split(), "test.yml must call .ci/run"
    assert "apt-get install" in runs and "chromium" in runs, "Chromium must come from apt"
    assert "playwright install" not in runs, "never download a browser"


def test_ci_entry_point_exists_and_is_executable():
    run = repo_root() / ".ci" / "run"
    assert run.exists() and run.stat().st_mode & 0o111


def test_book_workflow_deploys_to_pages_from_main():
    doc = _load("book.yml")
    push = _triggers(doc)["push"]
    assert push and "main" in push.get("branches", []), "book.yml must build on pushes to main"
    uses = _uses(doc)
    assert any(u.startswith("actions/upload-pages-artifact@") for u in uses)
    assert any(u.startswith("actions/deploy-pages@") for u in uses)
    upload = next(s for s in _steps(doc) if s.get("uses", "").startswith("actions/upload-pages-artifact@"))
    assert upload["with"]["path"] == "_build/html"
    perms = doc.get("permissions", {})
    assert perms.get("pages") == "write" and perms.get("id-token") == "write"
    assert "make book" in _runs(doc)
    deploy = [
        j
        for j in doc["jobs"].values()
        if any(s.get("uses", "").startswith("actions/deploy-pages@") for s in j["steps"])
    ][0]
    assert deploy.get("environment", {}).get("name") == "github-pages"


def test_reproduce_workflow_weekly_and_on_demand():
    doc = _load("reproduce.yml")
    on = _triggers(doc)
    assert on.get("schedule") and all("cron" in s for s in on["schedule"])
    chapter = on["workflow_dispatch"]["inputs"]["chapter"]
    assert chapter["default"] == "all"
    assert set(chapter["options"]) == {"all", *source_notebooks()}, (
        "the chapter choices must be 'all' plus every chapter in notebooks/"
    )
    assert "make reproduce" in _runs(doc)
    cache = [s for s in _steps(doc) if s.get("uses", "").startswith("actions/cache@")]
    assert cache and ".artifacts" in cache[0]["with"]["path"]
    key = cache[0]["with"]["key"]
    assert "hashFiles(" in key and "src/" in key and "notebooks/" in key
    uploads = [s for s in _steps(doc) if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert uploads and "table" in uploads[0]["with"]["path"]


def test_readme_names_the_placeholder_repository():
    cfg = yaml.safe_load((repo_root() / "_config.yml").read_text())
    url = cfg["repository"]["url"]
    assert url in (repo_root() / "README.md").read_text(), (
        "README must name the repository URL placeholder used in _config.yml"
    )
