"""``spoc-eval compare``: runs paired with one reference run on the same episodes.

Every run is paired with the reference (by default the first run) episode by episode; an
episode is identified by its index, house, task, target and seed (:func:`episode_key`), and
runs whose episode sets differ are refused. For each run: the success rate with its 95% Wilson
interval and SPL (Anderson et al. 2018, "On Evaluation of Embodied Navigation Agents",
arXiv:1807.06757) with its 95% percentile bootstrap interval; against the reference: the
episodes only one of the two succeeds in and the exact McNemar test (McNemar 1947), and the
mean paired SPL difference with its paired bootstrap interval, the episodes it is higher or
lower in and the Wilcoxon signed-rank test (Wilcoxon 1945) (:func:`eval.metrics.paired`).
Bootstraps draw 10,000 resamples from seed 0, so the same files give the same numbers.

:func:`text_table` is the narrow table ``spoc-eval compare`` prints; :func:`write_comparison`
writes ``compare.md`` and ``compare.json``. :func:`baseline_table` is the report's table of
a run against its baselines (``spoc-eval report RUN --baselines ...``).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from common.errors import InputError
from common.files import check_out_dir, json_bytes, write_atomic
from eval.metrics import (
    BOOTSTRAP_SEED,
    RESAMPLES,
    EpisodeResult,
    outcomes,
    paired,
    summarize,
)

COMPARE_MD = "compare.md"
COMPARE_JSON = "compare.json"
METHODS = ("95% intervals: success by Wilson's score interval, SPL (Anderson et al. 2018) and "
           f"its paired differences by the percentile bootstrap ({RESAMPLES:,} resamples, "
           f"seed {BOOTSTRAP_SEED}). Paired tests on the same episodes: the exact McNemar test "
           "on success (McNemar 1947), the Wilcoxon signed-rank test on SPL (Wilcoxon 1945).")

BASELINES_TITLE = "Against the baselines (this run minus each baseline, on the same episodes)"
"""The title of :func:`baseline_table` (the report adds :data:`METHODS` under it)."""


# --------------------------------------------------------------------------- formatting


def pct(x: float) -> str:
    """A fraction as a percentage with one decimal."""
    return f"{100 * x:.1f}"


def md_table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def p_value(p: float) -> str:
    """A p-value with two significant digits (``<1e-300`` below what a float holds)."""
    return "<1e-300" if p < 1e-300 else f"{p:.2g}"


def _spl(x: float, sign: bool = False, short: bool = False) -> str:
    """SPL or an SPL difference with three decimals (``short``: without the leading zero)."""
    text = f"{x:+.3f}" if sign else f"{x:.3f}"
    return text.replace("0.", ".", 1) if short and abs(x) < 1 else text


def _interval(ci: list[float], fmt) -> str:
    return f"[{fmt(ci[0])}, {fmt(ci[1])}]"


# --------------------------------------------------------------------------- pairing


def episode_key(row: dict) -> tuple:
    """What identifies an evaluated episode: (index, house, task, target, seed)."""
    return row["episode"], row["house_id"], row["task"], row["target"], row["seed"]


def aligned(reference_name: str, reference: dict, name: str, info: dict) -> list[EpisodeResult]:
    """The rows of ``info`` in the order of the reference's episodes, or an InputError naming
    both files when the runs do not hold the same episodes."""
    for who, run in ((reference_name, reference), (name, info)):
        keys = [episode_key(r) for r in run["per_episode"]]
        if len(set(keys)) != len(keys):
            raise InputError(f"{who}: an episode appears twice in its rows; rerun "
                             "`spoc-eval run` for it")
    rows = {episode_key(r): r for r in info["per_episode"]}
    ref_keys = [episode_key(r) for r in reference["per_episode"]]
    shared = sum(k in rows for k in ref_keys)
    if shared != len(ref_keys) or shared != len(rows):
        what = "no episode in common" if shared == 0 else "different episodes"
        raise InputError(f"{name} and {reference_name}: {what} ({len(rows)} and "
                         f"{len(ref_keys)} episodes, {shared} shared); pair runs made with the "
                         "same --houses, --episodes, --seed and --tasks")
    return [EpisodeResult(**rows[k]) for k in ref_keys]


def acting(run: dict) -> str:
    """How a run's policy chose its actions: argmax, sampled or with a stopping rule (over an
    ensemble's mean probabilities), the detector that gave it the target's box (none: the
    simulator's, when the policy takes one), the RoomNav goals' anchor types and the memory
    probe; and the looks of the appearance probe, for any policy."""
    looks = (run.get("probe") or {}).get("appearance")
    if run.get("checkpoint") is None:  # a baseline acts by its own rule
        return f"looks shifted at {looks:g} of their bounds" if looks else "-"
    how = "sampled" if run.get("sample") else "argmax"
    if run.get("ensemble"):
        how += f" of the mean of {1 + len(run['ensemble'])} policies"
    if run.get("end_threshold") is not None:
        how += f", end >= {run['end_threshold']:g}"
    for task, value in (run.get("end_threshold_by_task") or {}).items():
        how += f", {task} end >= {value:g}"
    probe = run.get("probe") or {}
    if run.get("blocked_input") is False or probe.get("blocked_input") is False:
        how += ", no blocked input"
    if run.get("detector"):
        how += f", detector {Path(run['detector']).name}"
    if run.get("room_anchors"):
        how += ", rooms by " + "/".join(run["room_anchors"].values())
    memory = probe.get("memory_steps", run.get("memory_steps"))
    if memory is not None:
        how += f", memory cleared every {memory} steps"
    if looks:
        how += f", looks shifted at {looks:g} of their bounds"
    return how


def short_names(names: list[str]) -> list[str]:
    """The shortest distinct endings of run paths (``results/eval1k/oracle.json.gz`` ->
    ``oracle``, ``runs/eval/oracle/eval_info.json`` -> ``oracle``), one per name."""
    parts = []
    for name in names:
        p = list(Path(name).parts) or [name]
        if p[-1].startswith("eval_info.json") and len(p) > 1:
            p.pop()
        p[-1] = p[-1].removesuffix(".gz").removesuffix(".json")
        parts.append(p)
    for k in range(1, max(len(p) for p in parts) + 1):
        labels = ["/".join(p[-k:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    return list(names)


def run_entry(name: str, label: str, info: dict, rows: list[EpisodeResult]) -> dict:
    """What the comparison says of one run on its own (``vs_reference`` is added by the
    caller)."""
    run = info.get("run", {})
    s = summarize(rows)
    o = outcomes(rows, int(run["max_steps"]))
    return {"run": name, "label": label, "policy": run.get("policy"), "acting": acting(run),
            "trained_steps": run.get("trained_steps"), "episodes": s["num_episodes"],
            "successes": s["successes"], "success_rate": s["success_rate"],
            "success_ci95": s["success_ci95"], "spl": s["spl"], "spl_ci95": s["spl_ci95"],
            "reached_goal_rate": s["reached_goal_rate"], "ended_away": o["ended_away"],
            "timed_out": o["timed_out"], "collisions": s["collisions"], "steps": s["steps"]}


def comparison(runs: dict[str, dict], reference: str, resamples: int = RESAMPLES,
               seed: int = BOOTSTRAP_SEED) -> dict:
    """Every run (path -> eval_info dict, in table order) paired with ``reference`` (one of
    them): the JSON-ready content of ``compare.json``. Each entry of ``runs`` holds the run's
    own numbers (:func:`run_entry`) and ``vs_reference`` (None for the reference; else
    :func:`eval.metrics.paired`, differences being the run minus the reference)."""
    ref = runs[reference]
    ref_rows = aligned(reference, ref, reference, ref)
    entries = []
    for (name, info), label in zip(runs.items(), short_names(list(runs))):
        rows = aligned(reference, ref, name, info)
        entry = run_entry(name, label, info, rows)
        entry["vs_reference"] = None if name == reference else paired(ref_rows, rows,
                                                                      resamples, seed)
        entries.append(entry)
    return {"reference": reference, "episodes": len(ref_rows), "confidence": 0.95,
            "resamples": resamples, "seed": seed, "runs": entries}


def with_reference(runs: list[str], reference: str | None) -> tuple[list[str], str]:
    """(the runs to read, the reference among them): the first run by default; a reference
    that is not among the runs (by its path) is read first."""
    if reference is None:
        return list(runs), runs[0]
    for run in runs:
        if run == reference or Path(run).resolve() == Path(reference).resolve():
            return list(runs), run
    return [reference, *runs], reference


# --------------------------------------------------------------------------- tables


WIDTH = 100
"""Columns the printed table aims to fit; run names longer than what is left are cut."""
MIN_NAME = 24
"""A run name is never cut shorter than this."""


def _elide(name: str, width: int) -> str:
    """``name`` cut in the middle to ``width`` characters (``...`` marks the cut)."""
    if len(name) <= width:
        return name
    head = (width - 3) // 2
    return name[:head] + "..." + name[len(name) - (width - 3 - head):]


def text_table(result: dict) -> str:
    """The narrow table ``spoc-eval compare`` prints (about 100 columns with short run
    names): one row per run, its success and SPL with their intervals, and against the
    reference (``*``) the episodes only it / only the reference succeeds in, the McNemar p,
    the SPL difference with its interval and the Wilcoxon p; then each run's full name, path
    and how it acted (names too long for :data:`WIDTH` columns are cut in the table)."""
    header = [["", "success %", "SPL", "won/", "McNemar", "SPL diff", "Wilcoxon"],
              ["run", "[95% CI]", "[95% CI]", "lost", "p", "[95% CI]", "p"]]
    rows = []
    for e in result["runs"]:
        vs = e["vs_reference"]
        cells = [e["label"] + ("*" if vs is None else ""),
                 f"{pct(e['success_rate'])} {_interval(e['success_ci95'], pct)}",
                 f"{_spl(e['spl'], short=True)} "
                 + _interval(e["spl_ci95"], lambda x: _spl(x, short=True))]
        if vs is None:
            cells += ["-"] * 4
        else:
            s, d = vs["success"], vs["spl"]
            cells += [f"{s['only_run']}/{s['only_reference']}", p_value(s["mcnemar_p"]),
                      f"{_spl(d['difference'], True, True)} "
                      + _interval(d["ci95"], lambda x: _spl(x, True, True)),
                      p_value(d["wilcoxon_p"])]
        rows.append(cells)
    widths = [max(len(r[c]) for r in [*header, *rows]) for c in range(len(header[0]))]
    room = max(MIN_NAME, WIDTH - sum(widths[1:]) - 2 * (len(widths) - 1))
    names = [_elide(r[0], room) for r in rows]
    if len(set(names)) == len(names):  # names too long for the width, cut in the middle
        for r, name in zip(rows, names):
            r[0] = name
        widths[0] = max(len(r[0]) for r in [*header, *rows])
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip()
             for r in [*header, *rows]]
    lines.insert(2, "  ".join("-" * w for w in widths))
    ref = next(e for e in result["runs"] if e["vs_reference"] is None)
    intro = textwrap.fill(
        f"Each run paired with the reference {ref['label']}* on {result['episodes']} episodes. "
        "won/lost: the episodes only the run / only the reference succeeds in; diff: the run "
        "minus the reference.", 100)
    legend = [f"{e['label']}: {e['run']} ({e['policy']}"
              + ("" if e["acting"] == "-" else f"; {e['acting']}") + ")" for e in result["runs"]]
    return "\n".join([intro, "", *lines, "", *legend])


PAIRED_HEADER = ["success %", "95% CI", "SPL", "95% CI", "success diff (points)",
                 "only it / only reference", "McNemar p", "SPL diff", "SPL diff 95% CI",
                 "SPL higher / lower / equal", "Wilcoxon p"]


def _own_cells(e: dict) -> list[str]:
    return [pct(e["success_rate"]), _interval(e["success_ci95"], pct), _spl(e["spl"]),
            _interval(e["spl_ci95"], _spl)]


def _paired_cells(vs: dict | None) -> list[str]:
    if vs is None:
        return ["-"] * 7
    s, d = vs["success"], vs["spl"]
    return [f"{100 * s['difference']:+.1f}", f"{s['only_run']} / {s['only_reference']}",
            p_value(s["mcnemar_p"]), _spl(d["difference"], sign=True),
            _interval(d["ci95"], lambda x: _spl(x, sign=True)),
            f"{d['better']} / {d['worse']} / {d['ties']}", p_value(d["wilcoxon_p"])]


def markdown(result: dict) -> str:
    """``compare.md``: the paired table, then each run's path, policy, acting and outcomes."""
    ref = next(e for e in result["runs"] if e["vs_reference"] is None)
    paired_rows = [[e["label"] + (" (reference)" if e["vs_reference"] is None else ""),
                    *_own_cells(e), *_paired_cells(e["vs_reference"])] for e in result["runs"]]
    runs_header = ["run", "path", "policy", "acting", "batches", "episodes", "reached goal %",
                   "ended away %", "timed out %", "collisions", "steps"]
    run_rows = [[e["label"], f"`{e['run']}`", str(e["policy"]), e["acting"],
                 "-" if e["trained_steps"] is None else str(e["trained_steps"]),
                 str(e["episodes"]), pct(e["reached_goal_rate"]), pct(e["ended_away"]),
                 pct(e["timed_out"]), f"{e['collisions']:.1f}", f"{e['steps']:.1f}"]
                for e in result["runs"]]
    return "\n".join([
        "# Comparison", "",
        f"Each run paired with the reference `{ref['label']}` on its {result['episodes']} "
        "episodes; differences are the run minus the reference. " + METHODS, "",
        md_table(["run", *PAIRED_HEADER], paired_rows), "", "## Runs", "",
        md_table(runs_header, run_rows), ""])


def write_comparison(out: str | Path, result: dict) -> list[Path]:
    """``compare.md`` and ``compare.json`` in ``out``, each written atomically (both are
    rendered before either is written)."""
    out = check_out_dir(out)
    files = {out / COMPARE_MD: markdown(result).encode(), out / COMPARE_JSON: json_bytes(result)}
    out.mkdir(parents=True, exist_ok=True)
    for path, data in files.items():
        write_atomic(path, data)
    return list(files)


def compare_runs(runs: dict[str, dict], reference: str, out: str | Path | None = None) -> str:
    """``spoc-eval compare``'s output: the narrow table, after writing ``compare.md`` and
    ``compare.json`` to ``out`` when given."""
    result = comparison(runs, reference)
    text = text_table(result)
    if out is not None:
        text += "\n\nwrote " + ", ".join(str(p) for p in write_comparison(out, result))
    return text


def baseline_table(name: str, info: dict, baselines: dict[str, dict]
                   ) -> tuple[str, list[str], list[list[str]]]:
    """(title, header, rows) of a run against its baselines: the run's own row, then one per
    baseline with the baseline's numbers and this run paired with it (this run minus the
    baseline)."""
    rows_of_run = aligned(name, info, name, info)
    own = run_entry(name, "this run", info, rows_of_run)
    rows = [[own["label"], *_own_cells(own), *_paired_cells(None)]]
    for (path, base), label in zip(baselines.items(), short_names(list(baselines))):
        base_rows = aligned(path, base, path, base)
        run_rows = aligned(path, base, name, info)
        rows.append([label, *_own_cells(run_entry(path, label, base, base_rows)),
                     *_paired_cells(paired(base_rows, run_rows))])
    header = ["run", *PAIRED_HEADER[:4], "this run minus it: success (points)",
              "only this run / only it", "McNemar p", "SPL diff", "SPL diff 95% CI",
              "this run's SPL higher / lower / equal", "Wilcoxon p"]
    return BASELINES_TITLE, header, rows
