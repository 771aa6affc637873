"""spoc-eval compare and the report's comparisons: runs paired with a reference on the same
episodes (McNemar, the SPL bootstrap, Wilcoxon), the files compare writes, the report's
baseline rows and its filmed episodes. Synthetic eval_info files with known outcomes; one
short evaluation on the fixture houses for the videos."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import av
import numpy as np
import pytest
from scipy import stats

from eval.cli import main
from eval.compare import COMPARE_JSON, COMPARE_MD, comparison, short_names, text_table
from eval.metrics import (
    EpisodeResult,
    analysis,
    bootstrap_interval,
    episode_results,
    mcnemar_p,
    wilcoxon_p,
)
from eval.video import caption_strip, choose_videos, video_name

FIXTURES = Path(__file__).parent / "fixtures"


def episode_row(k: int, success: bool, spl: float, steps: int = 10, house: str = "val-0-0",
                seed: int | None = None) -> dict:
    return EpisodeResult(
        episode=k, house_id=house, task="objectnav", target="Mug", success=success, spl=spl,
        steps=steps, path_length=2.0, shortest_length=1.5,
        final_distance=0.0 if success else 1.25, collisions=0,
        seed=1000 + k if seed is None else seed, num_rooms=2, reached_goal=success).row()


def make_info(successes: list[bool], spls: list[float] | None = None, policy: str = "p",
              steps: list[int] | None = None, max_steps: int = 100, **row) -> dict:
    spls = spls if spls is not None else [0.5 * s for s in successes]
    steps = steps or [10] * len(successes)
    rows = [episode_row(k, s, v, n, **row)
            for k, (s, v, n) in enumerate(zip(successes, spls, steps))]
    info = {"run": {"policy": policy, "checkpoint": None, "max_steps": max_steps},
            "per_episode": rows, "skipped": {}, "videos": []}
    info["aggregated"] = analysis(info)
    return info


def write_run(path: Path, info: dict) -> Path:
    """A run directory (its eval_info.json), or a .json.gz file as results/ keeps them."""
    if path.name.endswith(".json.gz"):
        path.write_bytes(gzip.compress(json.dumps(info).encode()))
    else:
        path.mkdir(parents=True, exist_ok=True)
        (path / "eval_info.json").write_text(json.dumps(info))
    return path


def bad_input(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


# 20 episodes: 8 where both succeed with known SPL differences, 7 only the run, 1 only the
# reference, 4 neither.
REF_SUCCESS = [True] * 8 + [False] * 7 + [True] + [False] * 4
RUN_SUCCESS = [True] * 8 + [True] * 7 + [False] + [False] * 4
DIFFS = [0.05, 0.1, -0.15, 0.2, 0.25, 0.3, 0.35, 0.4]
REF_SPL = [0.5] * 8 + [0.0] * 7 + [0.6] + [0.0] * 4
RUN_SPL = [0.5 + d for d in DIFFS] + [0.3] * 7 + [0.0] + [0.0] * 4


@pytest.fixture()
def runs(tmp_path) -> dict[str, Path]:
    return {"ref": write_run(tmp_path / "ref", make_info(REF_SUCCESS, REF_SPL, "ref")),
            "new": write_run(tmp_path / "new.json.gz", make_info(RUN_SUCCESS, RUN_SPL, "new"))}


# --------------------------------------------------------------------------- statistics


def test_mcnemar_p_by_hand_and_by_scipy():
    # 7 discordant episodes one way, 1 the other: 2 * (C(8,0) + C(8,1)) / 2^8
    assert mcnemar_p(1, 7) == mcnemar_p(7, 1) == 2 * (1 + 8) / 256 == 0.0703125
    for a, b in [(0, 0), (3, 3), (0, 12), (5, 40), (120, 90)]:
        expected = 1.0 if a + b == 0 else stats.binomtest(a, a + b, 0.5).pvalue
        assert math.isclose(mcnemar_p(a, b), expected, rel_tol=1e-9), (a, b)


def test_wilcoxon_on_a_known_case_and_all_zero_differences():
    # Ranks 1..8, only rank 3 negative: W- = 3; P(W <= 3) counts {}, {1}, {2}, {3}, {1, 2}.
    statistic, p = wilcoxon_p(DIFFS + [0.0, 0.0])  # zeros are dropped
    assert statistic == 3.0 and p == pytest.approx(2 * 5 / 256, abs=1e-12)
    assert wilcoxon_p([0.0] * 5) == (0.0, 1.0)


def test_bootstrap_interval_is_seeded_and_holds_the_mean():
    x = np.array(RUN_SPL)
    lo, hi = bootstrap_interval(x)
    assert lo <= x.mean() <= hi and lo < hi
    assert bootstrap_interval(x) == (lo, hi) and bootstrap_interval(list(x)) == (lo, hi)
    assert bootstrap_interval(x, seed=1) != (lo, hi)
    # The definition: 10,000 resamples of n draws from default_rng(0), the 2.5/97.5% quantiles.
    idx = np.random.default_rng(0).integers(0, len(x), size=(10_000, len(x)), dtype=np.int32)
    assert np.allclose((lo, hi), np.quantile(x[idx].mean(axis=1), [0.025, 0.975]))
    assert bootstrap_interval([0.7] * 30) == (0.7, 0.7)


# --------------------------------------------------------------------------- spoc-eval compare


def test_compare_pairs_with_the_reference_and_writes_files(runs, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", str(runs["ref"]), str(runs["new"]), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    table = [line for line in text.splitlines() if line.startswith(("ref*", "new "))]
    assert len(table) == 2 and all(len(line) <= 100 for line in text.splitlines()[:8])
    assert table[1].split()[7:9] == ["7/1", "0.07"]  # won/lost and the McNemar p
    result = json.loads((out / COMPARE_JSON).read_text())
    assert result["reference"] == str(runs["ref"]) and result["episodes"] == 20
    ref, new = result["runs"]
    assert ref["vs_reference"] is None and ref["label"] == "ref" and new["label"] == "new"
    s, d = new["vs_reference"]["success"], new["vs_reference"]["spl"]
    assert (s["only_run"], s["only_reference"], s["mcnemar_p"]) == (7, 1, 0.0703125)
    assert s["difference"] == pytest.approx(6 / 20)
    diffs = np.array(RUN_SPL) - np.array(REF_SPL)
    assert d["difference"] == pytest.approx(diffs.mean())
    assert d["ci95"] == list(bootstrap_interval(diffs)) and d["ci95"][0] < diffs.mean()
    assert (d["better"], d["worse"], d["ties"]) == (14, 2, 4)
    assert d["wilcoxon_p"] == wilcoxon_p(diffs)[1]
    assert new["spl_ci95"][0] <= new["spl"] <= new["spl_ci95"][1]
    lo, hi = new["success_ci95"]
    assert lo < 15 / 20 < hi and new["successes"] == 15
    md = (out / COMPARE_MD).read_text()
    tables = [line for line in md.splitlines() if line.startswith("|")]
    assert len(tables) == 2 * (2 + 2)  # two tables: header, rule and one row per run
    assert len({line.count("|") for line in tables[:4]}) == 1
    assert "| ref (reference) |" in md and "McNemar 1947" in md and "Anderson et al. 2018" in md
    assert sorted(p.name for p in out.iterdir()) == [COMPARE_JSON, COMPARE_MD]  # no temp files
    before = (out / COMPARE_JSON).read_bytes()  # deterministic: the same bytes again
    assert main(["compare", str(runs["ref"]), str(runs["new"]), "--out", str(out)]) == 0
    assert (out / COMPARE_JSON).read_bytes() == before


def test_reference_choice(runs, tmp_path, capsys):
    third = write_run(tmp_path / "third", make_info(REF_SUCCESS, REF_SPL, "third"))
    main(["compare", str(runs["ref"]), str(runs["new"]), "--reference", str(runs["new"]),
          "--out", str(tmp_path / "a")])
    text = capsys.readouterr().out
    assert any(line.startswith("new*") for line in text.splitlines())
    result = json.loads((tmp_path / "a" / COMPARE_JSON).read_text())
    assert [e["vs_reference"] is None for e in result["runs"]] == [False, True]
    assert result["runs"][0]["vs_reference"]["success"]["only_run"] == 1  # ref only
    # A reference that is not among the runs is read first; its path may be spelled otherwise.
    main(["compare", str(runs["new"]), "--reference", str(third), "--out", str(tmp_path / "b")])
    result = json.loads((tmp_path / "b" / COMPARE_JSON).read_text())
    assert [e["run"] for e in result["runs"]] == [str(third), str(runs["new"])]
    spelled = str(tmp_path / "ref" / ".." / "third")
    main(["compare", str(runs["new"]), spelled, "--reference", str(third),
          "--out", str(tmp_path / "c")])
    result = json.loads((tmp_path / "c" / COMPARE_JSON).read_text())
    assert result["reference"] == spelled and len(result["runs"]) == 2
    capsys.readouterr()


def test_a_run_against_itself_has_no_difference(runs, tmp_path):
    copy = write_run(tmp_path / "copy", make_info(REF_SUCCESS, REF_SPL, "ref"))
    result = comparison({str(runs["ref"]): json.loads((runs["ref"] / "eval_info.json")
                                                      .read_text()),
                         str(copy): json.loads((copy / "eval_info.json").read_text())},
                        str(runs["ref"]), resamples=500)
    vs = result["runs"][1]["vs_reference"]
    assert vs["success"]["mcnemar_p"] == 1.0 and vs["spl"]["wilcoxon_p"] == 1.0
    assert vs["spl"]["ci95"] == [0.0, 0.0] and vs["spl"]["ties"] == 20


def test_other_episodes_are_refused_in_one_line(runs, tmp_path, capsys):
    other = write_run(tmp_path / "other", make_info(REF_SUCCESS[:12], REF_SPL[:12]))
    out = tmp_path / "cmp"
    err = bad_input(capsys, ["compare", str(runs["ref"]), str(other), "--out", str(out)])
    assert f"{other} and {runs['ref']}: different episodes (12 and 20 episodes, 12 shared)" in err
    assert not out.exists()  # nothing half-written
    apart = write_run(tmp_path / "apart.json.gz", make_info(REF_SUCCESS, house="val-0-9"))
    err = bad_input(capsys, ["compare", str(runs["new"]), str(apart)])
    assert str(apart) in err and str(runs["new"]) in err and "no episode in common" in err
    reseeded = write_run(tmp_path / "reseeded", make_info(REF_SUCCESS, seed=7))
    assert "no episode in common" in bad_input(capsys, ["compare", str(runs["ref"]),
                                                        str(reseeded)])
    (tmp_path / "file").write_text("x")
    assert "--out" in bad_input(capsys, ["compare", str(runs["ref"]), "--out",
                                         str(tmp_path / "file")])


def test_long_names_are_cut_in_the_table_not_in_the_legend(tmp_path):
    long = "x" * 10 + "-a-very-long-run-name-" + "y" * 10
    infos = {str(tmp_path / "ref"): make_info(REF_SUCCESS, REF_SPL),
             str(tmp_path / long): make_info(RUN_SUCCESS, RUN_SPL)}
    text = text_table(comparison(infos, str(tmp_path / "ref"), resamples=200))
    row = next(line for line in text.splitlines() if line.startswith("xxxxxxxxxx..."))
    assert row.split()[0] == "xxxxxxxxxx...-yyyyyyyyyy" and len(row) <= 110
    assert f"{long}: {tmp_path / long} (p)" in text


def test_short_names():
    assert short_names(["results/eval1k/oracle.json.gz", "runs/q/eval/policy",
                        "runs/q/eval/x/eval_info.json"]) == ["oracle", "policy", "x"]
    assert short_names(["results/eval1k/oracle.json.gz", "runs/big/eval1k/oracle"]) == [
        "results/eval1k/oracle", "big/eval1k/oracle"]


# --------------------------------------------------------------------------- the report


def test_choose_videos_takes_successes_and_each_kind_of_failure():
    kinds = ["success", "away", "timeout"] * 3 + ["success"]  # episodes 0..9
    rows = [EpisodeResult(**episode_row(k, kind == "success", 0.5 * (kind == "success"),
                                        steps=100 if kind == "timeout" else 10))
            for k, kind in enumerate(kinds)]
    # successes 0 3 6 9, ended away 1 4 7, timed out 2 5 8
    assert choose_videos(rows, 5, 100) == [0, 9, 1, 7, 2]
    assert choose_videos(rows, 3, 100) == [0, 1, 2]
    assert choose_videos(rows[::-1], 5, 100) == [0, 9, 1, 7, 2]  # a function of the rows
    assert sorted(choose_videos(rows, 50, 100)) == list(range(10))
    assert choose_videos(rows, 0, 100) == [] and choose_videos(rows[3:4], 2, 100) == [3]


def test_report_has_spl_interval_baselines_and_video_captions(runs, tmp_path, capsys):
    info = make_info(RUN_SUCCESS, RUN_SPL, "new", steps=[10] * 19 + [100], max_steps=100)
    info["videos"] = [video_name(k) for k in choose_videos(episode_results(info), 3, 100)]
    run = write_run(tmp_path / "run", info)
    base = write_run(tmp_path / "base.json.gz", make_info(REF_SUCCESS, REF_SPL, "ref"))
    assert main(["report", str(run), "--baselines", str(runs["ref"]), str(base)]) == 0
    assert capsys.readouterr().out.strip() == str(run / "report.md")
    page, md = (run / "report.html").read_text(), (run / "report.md").read_text()
    lo, hi = analysis(info)["spl_ci95"]
    for text in (page, md):
        assert "SPL 95% CI" in text and f"[{lo:.3f}, {hi:.3f}]" in text
        assert "Against the baselines" in text and "McNemar 1947" in text
    assert "| this run |" in md and "| ref |" in md and "| base |" in md
    assert "| 7 / 1 | 0.07 |" in md  # this run against the reference run, as compare says
    assert "<td>this run</td>" in page and "<td>base</td>" in page
    assert info["videos"] == [video_name(k) for k in (0, 15, 19)]  # success, away, timed out
    for k, ended in ((0, "success, after 10"), (15, "failure, ended away 1.25 m from the goal"),
                     (19, "failure, timed out 1.25 m from the goal, after 100")):
        assert f"episode {k}: objectnav/Mug in val-0-0, {ended}" in page
    other = write_run(tmp_path / "other", make_info(REF_SUCCESS[:5]))
    (run / "report.md").unlink()
    err = bad_input(capsys, ["report", str(run), "--baselines", str(other)])
    assert "different episodes" in err and not (run / "report.md").exists()


def test_run_films_successes_and_failures_with_goal_and_actions(tmp_path, capsys):
    houses = tmp_path / "val.jsonl.gz"
    with gzip.open(houses, "wt") as f:
        for i, name in enumerate(("143.json", "house_3703.json")):
            house = json.loads((FIXTURES / name).read_text())
            house["metadata"]["houseId"] = f"val-0-{i}"
            f.write(json.dumps(house) + "\n")
    out = tmp_path / "run"
    main(["run", "--houses", str(houses), "--out", str(out), "--seed", "0", "--policy",
          "forward", "--episodes", "6", "--videos", "3", "--max-steps", "8", "--camera.height",
          "48", "--camera.width", "64", "--tasks.min_pixels", "4", "--progress", "false"])
    info = json.loads((out / "eval_info.json").read_text())
    results = episode_results(info)
    chosen = choose_videos(results, 3, 8)
    assert info["videos"] == [video_name(k) for k in chosen] and len(chosen) == 3
    rows = {r.episode: r for r in results}
    for k in chosen:
        with av.open(str(out / video_name(k))) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        ended = rows[k].steps < 8 or rows[k].success
        assert len(frames) == rows[k].steps + (0 if ended else 1)  # one frame per state
        caption = frames[0][-14:-2, :200]  # the line under the frame
        assert (caption.max(axis=-1) > 200).sum() > 50  # white text on black
        r, g, b = (frames[0][..., c].astype(int) for c in range(3))
        assert ((r > 180) & (g < 90) & (b > 180)).sum() > 10  # the goal in magenta
    md = (out / "report.md").read_text()
    assert all(video_name(k) in md for k in chosen) and "## Filmed episodes" in md
    capsys.readouterr()


def test_caption_strip_is_deterministic():
    a, b = caption_strip("objectnav: Mug | step 3: move_ahead", 240), caption_strip(
        "objectnav: Mug | step 3: move_ahead", 240)
    assert a.shape == (16, 240, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
    assert a.max() > 200 and not np.array_equal(a, caption_strip("step 4: end", 240))
