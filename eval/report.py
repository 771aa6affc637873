"""What an evaluation writes: ``eval_info.json``, ``report.md``, ``report.html`` and the plots
(the episode videos: :mod:`eval.video`).

The report's tables are computed from ``eval_info.json``'s episode rows alone, so
``spoc-eval report RUN`` rebuilds them for a finished run (one written before a table existed
included). Given baselines (``spoc-eval report RUN --baselines BASELINE...``), it also pairs
the run with each of them on the same episodes (:func:`eval.compare.baseline_table`).
"""

from __future__ import annotations

import gzip
import html
import json
from pathlib import Path

import numpy as np

from common.files import write_atomic
from eval.compare import BASELINES_TITLE, METHODS, baseline_table, md_table, pct
from eval.metrics import NOTHING, EpisodeResult, analysis, how_ended
from eval.video import video_episode

EVAL_INFO = "eval_info.json"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
PLOT_BY_TARGET = "success_by_target.png"
PLOT_BY_ROOMS = "success_by_rooms.png"


# --------------------------------------------------------------------------- eval_info.json


def write_eval_info(out_dir: Path, info: dict) -> Path:
    """Write ``eval_info.json`` atomically (a temporary name, then a rename)."""
    path = Path(out_dir) / EVAL_INFO
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(info, indent=2) + "\n")
    tmp.replace(path)
    return path


def read_eval_info(run_dir: Path) -> dict:
    """The ``eval_info.json`` of a run directory, or the file itself (gzipped if it ends in
    ``.gz``, as the published runs under ``results/`` are)."""
    path = Path(run_dir)
    path = path / EVAL_INFO if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no {EVAL_INFO}; give a directory written by "
                                "`spoc-eval run`")
    if path.suffix == ".gz":
        with gzip.open(path, "rt") as f:
            return json.load(f)
    return json.loads(path.read_text())


def _video_caption(info: dict, name: str) -> str:
    """What a filmed episode was and how it ended."""
    rows = {r["episode"]: r for r in info["per_episode"]}
    row = rows.get(video_episode(name))
    if row is None:
        return name
    r = EpisodeResult(**row)
    ended = how_ended(r, int(info["run"]["max_steps"]))
    if not r.success:
        ended = f"failure, {ended} {r.final_distance:.2f} m from the goal"
        ended += " (it had reached a goal state)" if r.reached_goal else ""
    return (f"episode {r.episode}: {r.task}/{r.target} in {r.house_id}, {ended}, after "
            f"{r.steps} steps (SPL {r.spl:.2f})")


# --------------------------------------------------------------------------- plots


def _bar_plot(path: Path, labels: list[str], rates: list[float], cis: list[list[float]],
              title: str, xlabel: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * len(labels) + 2), 3.2), dpi=100)
    x = np.arange(len(labels))
    rates_a = np.asarray(rates, dtype=float)
    lo = rates_a - np.asarray([c[0] for c in cis], dtype=float)
    hi = np.asarray([c[1] for c in cis], dtype=float) - rates_a
    yerr = np.clip(np.stack([lo, hi]), 0.0, None)  # (2, N); rounding can leave -1e-16
    ax.bar(x, rates_a, color="#4c72b0", yerr=yerr, capsize=3)
    ax.set_xticks(x, labels, rotation=45 if len(labels) > 4 else 0, ha="right"
                  if len(labels) > 4 else "center", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("success rate (95% CI)")
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_plots(out_dir: Path, aggregated: dict) -> list[str]:
    """Success by target and by house size as PNGs; returns their names."""
    names = []
    for name, key, title, xlabel in (
            (PLOT_BY_TARGET, "per_target", "Success by target", "task/target"),
            (PLOT_BY_ROOMS, "by_num_rooms", "Success by house size", "rooms")):
        groups = aggregated.get(key, {})
        if not groups:
            continue
        labels = list(groups)
        _bar_plot(Path(out_dir) / name, labels, [groups[k]["success_rate"] for k in labels],
                  [groups[k]["success_ci95"] for k in labels], title, xlabel)
        names.append(name)
    return names


# --------------------------------------------------------------------------- tables


def _summary_cells(s: dict) -> list[str]:
    lo, hi = s["success_ci95"]
    spl_lo, spl_hi = s["spl_ci95"]
    return [str(s["num_episodes"]), pct(s["success_rate"]), f"[{pct(lo)}, {pct(hi)}]",
            pct(s["reached_goal_rate"]), f"{s['spl']:.3f}", f"[{spl_lo:.3f}, {spl_hi:.3f}]",
            f"{s['steps']:.1f}", f"{s['path_length']:.2f}", f"{s['final_distance']:.2f}",
            f"{s['collisions']:.2f}"]


SUMMARY_HEADER = ["episodes", "success %", "95% CI", "reached goal %", "SPL", "SPL 95% CI",
                  "steps", "path m", "final dist m", "collisions"]
"""Columns of the summary tables: success with its Wilson interval, SPL with its bootstrap
interval (:func:`eval.metrics.summarize`)."""


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


OUTCOME_HEADER = ["success %", "ended away %", "timed out %", "left a goal %",
                  "ended away: median m to go", "ended away: median path / shortest",
                  "ended away: target in view %", "ended away in view: median m to it"]


def _outcome_cells(agg: dict) -> list[str]:
    o = agg["outcomes"]
    in_view, metres = o["ended_away_target_in_view"], o["ended_away_view_distance_median"]
    return [pct(agg["success_rate"]), pct(o["ended_away"]), pct(o["timed_out"]),
            pct(o["left_goal"]), f"{o['ended_away_final_distance_median']:.2f}",
            f"{o['ended_away_path_ratio_median']:.2f}",
            "-" if in_view is None else pct(in_view), "-" if metres is None else f"{metres:.2f}"]


STOPPED_HEADER = ["target", "ended away", "target in view %", "stopped in front of (episodes)"]


def _stopped_rows(by_target: dict[str, dict], top: int = 4) -> list[list[str]]:
    """One row per target, the ``top`` most frequent object types it stopped at, then the rest."""
    rows = []
    for target, v in by_target.items():
        items = list(v["stopped_at"].items())
        cells = [f"{name} {count}" for name, count in items[:top]]
        rest = sum(count for _, count in items[top:])
        rows.append([target, str(v["ended_away"]), pct(v["target_in_view"]),
                     ", ".join(cells + ([f"other {rest}"] if rest else []))])
    return rows


def report_tables(info: dict, baselines: dict[str, dict] | None = None, name: str = "this run"
                  ) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of every table in the report, the episodes last; with
    ``baselines`` (path -> eval_info dict), the run (``name``, for errors) paired with each of
    them after the overall numbers (an InputError if their episodes differ)."""
    agg = analysis(info)
    tables = [("Overall", SUMMARY_HEADER, [_summary_cells(agg)])]
    if baselines:
        tables.append(baseline_table(name, info, baselines))
    tables.append(("How episodes ended", OUTCOME_HEADER, [_outcome_cells(agg)]))
    if agg.get("stopped_at"):
        tables.append(("ObjectNav episodes that ended away from the goal: what the agent "
                       f"stopped in front of (within the success radius; {NOTHING}: no object)",
                       STOPPED_HEADER, _stopped_rows(agg["stopped_at"])))
    for key, title, label in (("per_task", "By task", "task"),
                              ("per_target", "By target", "task/target"),
                              ("by_num_rooms", "By house size", "rooms"),
                              ("by_distance", "By shortest-path distance", "distance")):
        rows = [[k, *_summary_cells(v)] for k, v in agg.get(key, {}).items()]
        tables.append((title, [label, *SUMMARY_HEADER], rows))
    ep_header = ["episode", "house", "task", "target", "success", "SPL", "steps", "path m",
                 "shortest m", "final dist m", "collisions", "rooms"]
    ep_rows = [[str(r["episode"]), r["house_id"], r["task"], r["target"],
                "yes" if r["success"] else "no", f"{r['spl']:.3f}", str(r["steps"]),
                f"{r['path_length']:.2f}", f"{r['shortest_length']:.2f}",
                f"{r['final_distance']:.2f}", str(r["collisions"]), str(r["num_rooms"])]
               for r in info["per_episode"]]
    tables.append(("Episodes", ep_header, ep_rows))
    return tables


def _run_lines(info: dict) -> list[str]:
    run = info.get("run", {})
    lines = [f"{k}: {v}" for k, v in run.items() if not isinstance(v, dict | list)]
    if run.get("end_threshold_by_task"):
        lines.append("end_threshold_by_task: " + ", ".join(
            f"{k} {v:g}" for k, v in run["end_threshold_by_task"].items()))
    if run.get("ensemble"):
        lines.append("ensemble: " + ", ".join(run["ensemble"]))
    if run.get("room_anchors"):
        lines.append("room_anchors: " + ", ".join(
            f"{k} {v}" for k, v in run["room_anchors"].items()))
    if run.get("mapper"):
        lines.append("mapper: " + ", ".join(f"{k} {v}" for k, v in run["mapper"].items()))
    if run.get("probe"):
        lines.append("probes (a measurement, not a deployable result): " + ", ".join(
            f"{k} {v}" for k, v in run["probe"].items()))
    skipped = info.get("skipped", {})
    if skipped:
        lines.append(f"skipped episode slots: {sum(skipped.values())} ("
                     + ", ".join(f"{k}: {v}" for k, v in skipped.items()) + ")")
    return lines


Table = tuple[str, list[str], list[list[str]]]
"""(title, header, rows) of one table of the report."""
_NOTES = {BASELINES_TITLE: METHODS}
"""Text under a table, by its title."""


def write_markdown(out_dir: Path, info: dict, plots: list[str], tables: list[Table]) -> Path:
    parts = [f"# Evaluation: {info.get('run', {}).get('policy', '?')}", "",
             *[f"- {line}" for line in _run_lines(info)], ""]
    for title, header, rows in tables:
        parts += [f"## {title}", "", md_table(header, rows), ""]
        parts += [_NOTES[title], ""] if title in _NOTES else []
    parts += [f"![{p}]({p})" for p in plots] + [""]
    if info.get("videos"):
        parts += [f"## {VIDEOS_TITLE}", ""]
        parts += [f"- [{_video_caption(info, v)}]({v})" for v in info["videos"]] + [""]
    path = Path(out_dir) / REPORT_MD
    write_atomic(path, "\n".join(parts).encode())
    return path


_CSS = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1em}"
        "td,th{border:1px solid #ccc;padding:2px 8px;font-size:13px}th{background:#eee}")
VIDEOS_TITLE = ("Filmed episodes, successes and failures (egocentric view | top-down map: the "
                "path in red, the goal in magenta; under each frame the action taken from it)")


def write_html(out_dir: Path, info: dict, plots: list[str], tables: list[Table]) -> Path:
    title = html.escape(f"Evaluation: {info.get('run', {}).get('policy', '?')}")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>",
             f"<style>{_CSS}</style></head><body><h1>{title}</h1><ul>",
             *[f"<li>{html.escape(line)}</li>" for line in _run_lines(info)], "</ul>"]
    *summaries, episodes = tables
    for t, header, rows in summaries:
        parts += [f"<h2>{html.escape(t)}</h2>", _html_table(header, rows)]
        parts += [f"<p>{html.escape(_NOTES[t])}</p>"] if t in _NOTES else []
    parts += [f"<img src='{html.escape(p)}' alt='{html.escape(p)}'>" for p in plots]
    if info.get("videos"):
        parts.append(f"<h2>{html.escape(VIDEOS_TITLE)}</h2>")
        parts += [f"<figure><video controls muted src='{html.escape(v)}'></video>"
                  f"<figcaption>{html.escape(_video_caption(info, v))}</figcaption></figure>"
                  for v in info["videos"]]
    t, header, rows = episodes
    parts += [f"<h2>{t}</h2>", _html_table(header, rows), "</body></html>"]
    path = Path(out_dir) / REPORT_HTML
    write_atomic(path, "\n".join(parts).encode())
    return path


def write_report(out_dir: Path, info: dict, baselines: dict[str, dict] | None = None,
                 tables: list[Table] | None = None) -> list[Path]:
    """Plots, ``report.md`` and ``report.html`` from an ``eval_info`` dict, with the run paired
    with ``baselines`` (path -> eval_info dict) when given; ``tables``: the report's tables
    when already built (:func:`report_tables`)."""
    if tables is None:
        tables = report_tables(info, baselines, str(out_dir))
    plots = write_plots(out_dir, info["aggregated"])
    return [write_markdown(out_dir, info, plots, tables), write_html(out_dir, info, plots, tables),
            *(Path(out_dir) / p for p in plots)]


def write_reports(runs: dict[str, dict], baselines: dict[str, dict] | None = None
                  ) -> list[Path]:
    """Rebuild the reports of finished runs (run directory -> eval_info dict), each paired
    with ``baselines`` when given; every report's tables are built before any file is written,
    so a baseline on other episodes is refused with nothing written. Returns the report.md
    paths."""
    tables = {name: report_tables(info, baselines, name) for name, info in runs.items()}
    return [write_report(Path(name), info, tables=tables[name])[0]
            for name, info in runs.items()]
