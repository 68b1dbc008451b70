"""The lab CI templates (deploy/ci): what a lab runner relies on is really in them."""

from __future__ import annotations

from typing import Any

import yaml

from rig import paths

CI = paths.PROJECT_ROOT / "deploy" / "ci"


def load(name: str) -> Any:
    return yaml.safe_load((CI / name).read_text())


def test_github_actions_runs_nightly_per_bench_with_the_check_first_and_artifacts_always() -> None:
    workflow = load("github-actions-nightly.yml")
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads a bare `on` as true
    assert triggers["schedule"][0]["cron"].split()[2:] == ["*", "*", "*"], "every night"
    job = workflow["jobs"]["hil"]
    assert job["strategy"]["fail-fast"] is False
    for bench in job["strategy"]["matrix"]["include"]:
        assert {"self-hosted", "hil", bench["bench"]} <= set(bench["runner"]), "runners labelled per bench"
    assert job["runs-on"] == "${{ matrix.runner }}"
    assert job["concurrency"]["group"] == "hil-bench-${{ matrix.bench }}"
    assert job["concurrency"]["cancel-in-progress"] is False
    runs = [step.get("run", "") for step in job["steps"]]
    check = next(i for i, run in enumerate(runs) if "rig check --bench" in run)
    suite = next(i for i, run in enumerate(runs) if "pytest tests/hil" in run)
    assert check < suite, "the bench check runs before the suite"
    upload = next(step for step in job["steps"] if str(step.get("uses", "")).startswith("actions/upload-artifact"))
    assert upload["if"] == "always()"
    for kept in ("report.html", "junit.xml", "timeline.jsonl", "audio"):
        assert kept in upload["with"]["path"]
    assert any("rig report" in run for run in runs)


def test_gitlab_ci_runs_per_bench_in_a_resource_group_with_the_check_first_and_artifacts_always() -> None:
    pipeline = load("gitlab-ci-nightly.yml")
    template = pipeline[".hil-bench"]
    assert {"if": '$CI_PIPELINE_SOURCE == "schedule"'} in template["rules"]
    assert template["resource_group"] == "hil-bench-$BENCH"
    assert "rig check --bench" in template["before_script"][-1]
    assert "pytest tests/hil" in template["script"][0]
    assert template["artifacts"]["when"] == "always"
    assert template["artifacts"]["reports"]["junit"] == "$ARTIFACTS/junit.xml"
    assert any("timeline.jsonl" in path for path in template["artifacts"]["paths"])
    jobs = {name: job for name, job in pipeline.items() if not name.startswith(".")}
    assert jobs
    for job in jobs.values():
        assert job["extends"] == ".hil-bench"
        assert {"hil", job["variables"]["BENCH"]} <= set(job["tags"])
