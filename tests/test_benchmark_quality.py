"""Advice quality on the dev LR-sweep benchmark stays at the targets of issue 2 (the naive
rules reach 0.61 balanced accuracy)."""
import subprocess
import sys

from lrdoctor.render import json_document
import lrdoctor


def test_dev_benchmark_balanced_accuracy(shared, tmp_path):
    bench = shared / "benchmarks" / "lr_sweeps"
    diags = [d for p in sorted((bench / "runs").glob("*.csv")) for d in lrdoctor.analyze(p)]
    out = tmp_path / "out.json"
    out.write_text(json_document(diags, []))
    r = subprocess.run([sys.executable, str(shared / "benchmarks" / "score.py"), str(bench),
                        "--lrdoctor-json", str(out)], capture_output=True, text=True)
    last = r.stdout.strip().splitlines()[-1]
    figures = dict(kv.split("=") for kv in last.split())
    assert float(figures["balanced_accuracy"]) >= 0.85, last
    assert float(figures["closer"]) >= 0.85, last  # suggestions move mis-set runs toward the best
    assert float(figures["coverage"]) == 1.0
