"""action.yml: the composite GitHub Action, parsed and its shell steps run here as a runner
would run them (bash -eo pipefail, GITHUB_STEP_SUMMARY and GITHUB_OUTPUT files)."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, SAMPLES

yaml = pytest.importorskip("yaml", reason="PyYAML is absent: action.yml not parsed")
ACTION = yaml.safe_load((ROOT / "action.yml").read_text())


def test_action_is_composite_with_the_documented_inputs():
    assert ACTION["runs"]["using"] == "composite"
    assert set(ACTION["inputs"]) == {"paths", "fail-on", "args", "python-version"}
    assert ACTION["inputs"]["paths"]["required"] is True
    steps = ACTION["runs"]["steps"]
    assert steps[0]["uses"].startswith("actions/setup-python@")
    for s in steps:
        if "run" in s:
            assert s["shell"] == "bash"
            # inputs reach the shell through env, never pasted into the script
            assert "${{" not in s["run"]
    install = steps[1]
    assert install["env"]["LRDOCTOR_SOURCE"] == "${{ github.action_path }}"


def run_steps(tmp_path, inputs: dict) -> tuple[int, str, str]:
    """The action's shell steps after the install (lrdoctor is installed here already)."""
    summary, output = tmp_path / "summary.md", tmp_path / "output.txt"
    summary.write_text("")
    output.write_text("")
    env = {**os.environ, "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_OUTPUT": str(output),
           "RUNNER_TEMP": str(tmp_path / "runner"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    status, log = 0, ""
    for step in ACTION["runs"]["steps"]:
        if "run" not in step or "LRDOCTOR_SOURCE" in step.get("env", {}):
            continue
        for name, value in step.get("env", {}).items():
            m = re.fullmatch(r"\$\{\{ inputs\.([\w-]+) \}\}", value)
            env[name] = inputs.get(m.group(1), ACTION["inputs"][m.group(1)].get("default", ""))
        r = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c",
                            step["run"]], env=env, capture_output=True, text=True,
                           cwd=tmp_path)
        status, log = r.returncode, log + r.stdout + r.stderr
        if status:
            break
    return status, summary.read_text(), log + output.read_text()


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_the_steps_write_the_summary_and_fail_per_fail_on(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    for name in ("nan_lr5.csv", "healthy_lr1e-3.csv", "too_low_lr1e-6.csv"):
        shutil.copy(SAMPLES / name, logs / name)
    status, summary, log = run_steps(tmp_path, {"paths": "logs/*.csv"})
    assert status == 1 and "nan_lr5 (too_high)" in log
    assert summary.startswith("# lrdoctor report: 3 run(s)") and r"| nan\_lr5 |" in summary
    assert "![" not in summary  # figures are files beside the report: not in the summary
    assert "report=" in log and (tmp_path / "runner" / "lrdoctor" / "report.md").exists()
    status, summary, _ = run_steps(tmp_path, {"paths": "logs/healthy_lr1e-3.csv",
                                              "fail-on": "too_high,too_low"})
    assert status == 0 and r"| healthy\_lr1e-3 |" in summary
    assert run_steps(tmp_path, {"paths": "logs", "fail-on": ""})[0] == 0
    status, summary, _ = run_steps(tmp_path, {"paths": "logs/none*.csv"})
    assert status == 2 and "nothing could be analyzed" in summary
    # args reach lrdoctor
    status, _, log = run_steps(tmp_path, {"paths": "logs", "args": "--context finetune "
                                          "--jobs 2 --no-sweep", "fail-on": "too_low"})
    assert status == 1 and "too_low_lr1e-6 (too_low)" in log
