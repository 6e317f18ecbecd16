"""lrdoctor/readers/__init__.py: folder walks, run names by path, the summary table."""
import numpy as np

from lrdoctor.cli import main


def test_folder_walk_names_runs_by_path_and_ends_with_a_table(tmp_path, capsys):
    for v in range(3):
        d = tmp_path / "lightning_logs" / f"version_{v}"
        d.mkdir(parents=True)
        rows = "".join(f"{s},{2.3 * np.exp(-s / (10 + 30 * v)) + 0.1},0.001\n"
                       for s in range(100))
        (d / "metrics.csv").write_text("step,train_loss,lr-Adam\n" + rows)
    (tmp_path / "notes.log").write_text("nothing to see here\n")
    code = main(["analyze", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0 and "notes.log: skipped, not a loss log" in err
    for v in range(3):
        assert f"lightning_logs/version_{v} " in out  # the summary table's run column
    assert out.index("run ") > out.index("LR LOOKS FINE")  # table after the reports


def test_empty_folder_says_what_it_looked_for(tmp_path, capsys):
    (tmp_path / "README.md").write_text("hi")
    assert main(["analyze", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "TensorBoard event files" in err and "MLflow" in err


def test_the_names_a_walk_gives_are_name_by_paths(tmp_path):
    """The walk names plain log files from its own listing: the same names as
    name_by_path, for every kind of place and file name."""
    from pathlib import Path

    from lrdoctor.readers import name_by_path, walk

    for rel in ("a.csv", "metrics.csv", "x/y/seed1.csv.gz", "x/log.txt", "x/train.log",
                "x/y/history.jsonl", "offline-run-1-abc/run-abc.wandb", "b/c/trainer_state.json",
                "results.csv", "z/.hidden.csv", "z/a-b.tsv", "z/a b/metrics.json"):
        f = tmp_path / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("step,loss\n0,1.0\n")
    for root in (tmp_path, tmp_path / "x"):
        named: dict = {}
        found = walk(root, None, named)
        assert sorted(named) == sorted(found) and len(found) >= 3
        assert named == {f: name_by_path(Path(f), root) for f in found}


def test_a_run_that_has_just_started_is_skipped_in_a_walk_not_an_error(tmp_path, capsys):
    """A CI gate over runs/ while one run has written only its header (or nothing yet):
    a note, exit 0, --fail-on judges the others; named on its own, it is an error."""
    (tmp_path / "done.csv").write_text("step,loss,lr\n" + "".join(
        f"{s},{2.3 * np.exp(-s / 200) + 0.1},0.001\n" for s in range(1000)))
    (tmp_path / "started.csv").write_text("step,loss,lr\n")
    (tmp_path / "new.jsonl").write_text("")
    code = main(["analyze", str(tmp_path), "--fail-on", "too_high"])
    err = capsys.readouterr().err
    assert code == 0
    for name in ("started.csv", "new.jsonl"):
        assert f"{name}: skipped, no rows yet" in err
    assert main(["analyze", str(tmp_path / "started.csv")]) == 2
    assert "header only, no rows of losses yet" in capsys.readouterr().err


def test_logs_given_by_path_whose_names_clash_are_named_as_a_walk_names_them(tmp_path,
                                                                              capsys):
    """``lrdoctor analyze lightning_logs/version_*/metrics.csv``: every run was 'metrics'
    and only the JSON's source told them apart. A name that clashes with none is kept."""
    from lrdoctor.readers import names_apart

    rows = "".join(f"{s},{2.3 * np.exp(-s / 30) + 0.1},0.001\n" for s in range(100))
    paths = []
    for parent in ("lightning_logs/version_0", "lightning_logs/version_1", "hf/checkpoint-96",
                   "hf/checkpoint-192", "a", "b"):
        d = tmp_path / parent
        d.mkdir(parents=True)
        name = {"l": "metrics.csv", "h": "trainer.csv"}.get(parent[0], "run.csv")
        (d / name).write_text("step,loss,lr\n" + rows)
        paths.append(str(d / name))
    (tmp_path / "solo.csv").write_text("step,loss,lr\n" + rows)
    paths.append(str(tmp_path / "solo.csv"))
    assert names_apart(paths) == {
        paths[0]: "version_0", paths[1]: "version_1", paths[2]: "checkpoint-96/trainer",
        paths[3]: "checkpoint-192/trainer", paths[4]: "a/run", paths[5]: "b/run"}
    assert main(["analyze", *paths, "--format", "json", "--no-sweep"]) == 0
    import json

    runs = [r["run"] for r in json.loads(capsys.readouterr().out)["runs"]]
    assert runs == ["version_0", "version_1", "checkpoint-96/trainer",
                    "checkpoint-192/trainer", "a/run", "b/run", "solo"]
