"""Everything an evaluation writes: ``eval_info.json``, ``report.md``, ``report.html``, the
plots and the episode videos, and the side-by-side table of ``spoc-eval compare``.

The report's tables are computed from ``eval_info.json``'s episode rows alone, so
``spoc-eval report RUN`` rebuilds them for a finished run (one written before a table existed
included).
"""

from __future__ import annotations

import gzip
import html
import json
from pathlib import Path

import numpy as np

from eval.metrics import NOTHING, EpisodeResult, aggregate, mcnemar_p

EVAL_INFO = "eval_info.json"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
PLOT_BY_TARGET = "success_by_target.png"
PLOT_BY_ROOMS = "success_by_rooms.png"
VIDEO_DIR = "videos"
VIDEO_FPS = 8
MIN_VIDEO_HEIGHT = 192


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


# --------------------------------------------------------------------------- videos


def video_frame(ego: np.ndarray, topdown: np.ndarray, min_height: int = MIN_VIDEO_HEIGHT
                ) -> np.ndarray:
    """The egocentric frame (H, W, 3), enlarged by an integer factor to at least
    ``min_height`` rows, beside the top-down map scaled to the same height, padded to even
    sides for H.264's 4:2:0 chroma: (H', W', 3) uint8."""
    k = max(1, -(-min_height // ego.shape[0]))
    ego = np.repeat(np.repeat(ego, k, axis=0), k, axis=1)  # (kH, kW, 3)
    h = ego.shape[0]
    th, tw = topdown.shape[:2]
    new_w = max(1, round(tw * h / th))
    rows = np.minimum((np.arange(h) * th / h).astype(int), th - 1)
    cols = np.minimum((np.arange(new_w) * tw / new_w).astype(int), tw - 1)
    side = topdown[rows][:, cols]  # nearest-neighbour resize to (h, new_w, 3)
    frame = np.concatenate([ego, np.full((h, 2, 3), 255, np.uint8), side], axis=1)
    pad_h, pad_w = frame.shape[0] % 2, frame.shape[1] % 2
    return np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)))


class VideoWriter:
    """Streams frames into an H.264 mp4 (PyAV), so a long episode is never held in memory."""

    def __init__(self, path: Path, fps: int = VIDEO_FPS):
        import av

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(self.path.stem + ".tmp.mp4")
        self._container = av.open(str(self._tmp), mode="w")
        self._stream = self._container.add_stream("libx264", rate=fps)
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"preset": "veryfast", "crf": "23"}
        self._started = False

    def add(self, frame: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 frame with even H and W (all frames the same size)."""
        import av

        if not self._started:
            self._stream.height, self._stream.width = frame.shape[:2]
            self._started = True
        video_frame_ = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        for packet in self._stream.encode(video_frame_):
            self._container.mux(packet)

    def close(self) -> Path:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        self._tmp.replace(self.path)
        return self.path


def video_name(episode: int) -> str:
    """Path of an episode's video relative to the run directory."""
    return f"{VIDEO_DIR}/episode-{episode:05d}.mp4"


def video_episode(name: str) -> int:
    """The episode index of a :func:`video_name`."""
    return int(Path(name).stem.rsplit("-", 1)[1])


def _video_caption(info: dict, name: str) -> str:
    rows = {r["episode"]: r for r in info["per_episode"]}
    r = rows.get(video_episode(name))
    if r is None:
        return name
    outcome = "success" if r["success"] else "failure"
    return (f"episode {r['episode']}: {r['task']}/{r['target']} in {r['house_id']}, "
            f"{outcome} after {r['steps']} steps (SPL {r['spl']:.2f})")


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


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _summary_cells(s: dict) -> list[str]:
    lo, hi = s["success_ci95"]
    return [str(s["num_episodes"]), _pct(s["success_rate"]), f"[{_pct(lo)}, {_pct(hi)}]",
            _pct(s["reached_goal_rate"]), f"{s['spl']:.3f}", f"{s['steps']:.1f}",
            f"{s['path_length']:.2f}", f"{s['final_distance']:.2f}", f"{s['collisions']:.2f}"]


SUMMARY_HEADER = ["episodes", "success %", "95% CI", "reached goal %", "SPL", "steps", "path m",
                  "final dist m", "collisions"]


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def analysis(info: dict) -> dict:
    """The ``aggregated`` block recomputed from the episode rows of an ``eval_info`` dict."""
    results = [EpisodeResult(**row) for row in info["per_episode"]]
    return aggregate(results, int(info["run"]["max_steps"]))


OUTCOME_HEADER = ["success %", "ended away %", "timed out %", "left a goal %",
                  "ended away: median m to go", "ended away: median path / shortest",
                  "ended away: target in view %", "ended away in view: median m to it"]


def _outcome_cells(agg: dict) -> list[str]:
    o = agg["outcomes"]
    in_view, metres = o["ended_away_target_in_view"], o["ended_away_view_distance_median"]
    return [_pct(agg["success_rate"]), _pct(o["ended_away"]), _pct(o["timed_out"]),
            _pct(o["left_goal"]), f"{o['ended_away_final_distance_median']:.2f}",
            f"{o['ended_away_path_ratio_median']:.2f}",
            "-" if in_view is None else _pct(in_view), "-" if metres is None else f"{metres:.2f}"]


STOPPED_HEADER = ["target", "ended away", "target in view %", "stopped in front of (episodes)"]


def _stopped_rows(by_target: dict[str, dict], top: int = 4) -> list[list[str]]:
    """One row per target, the ``top`` most frequent object types it stopped at, then the rest."""
    rows = []
    for target, v in by_target.items():
        items = list(v["stopped_at"].items())
        cells = [f"{name} {count}" for name, count in items[:top]]
        rest = sum(count for _, count in items[top:])
        rows.append([target, str(v["ended_away"]), _pct(v["target_in_view"]),
                     ", ".join(cells + ([f"other {rest}"] if rest else []))])
    return rows


def report_tables(info: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of every table in the report."""
    agg = analysis(info)
    tables = [("Overall", SUMMARY_HEADER, [_summary_cells(agg)]),
              ("How episodes ended", OUTCOME_HEADER, [_outcome_cells(agg)])]
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
    skipped = info.get("skipped", {})
    if skipped:
        lines.append(f"skipped episode slots: {sum(skipped.values())} ("
                     + ", ".join(f"{k}: {v}" for k, v in skipped.items()) + ")")
    return lines


def write_markdown(out_dir: Path, info: dict, plots: list[str]) -> Path:
    parts = [f"# Evaluation: {info.get('run', {}).get('policy', '?')}", "",
             *[f"- {line}" for line in _run_lines(info)], ""]
    for title, header, rows in report_tables(info):
        parts += [f"## {title}", "", _md_table(header, rows), ""]
    parts += [f"![{p}]({p})" for p in plots] + [""]
    parts += [f"- [{_video_caption(info, v)}]({v})" for v in info.get("videos", [])] + [""]
    path = Path(out_dir) / REPORT_MD
    path.write_text("\n".join(parts))
    return path


_CSS = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1em}"
        "td,th{border:1px solid #ccc;padding:2px 8px;font-size:13px}th{background:#eee}")


def write_html(out_dir: Path, info: dict, plots: list[str]) -> Path:
    title = html.escape(f"Evaluation: {info.get('run', {}).get('policy', '?')}")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>",
             f"<style>{_CSS}</style></head><body><h1>{title}</h1><ul>",
             *[f"<li>{html.escape(line)}</li>" for line in _run_lines(info)], "</ul>"]
    *summaries, episodes = report_tables(info)
    for t, header, rows in summaries:
        parts += [f"<h2>{html.escape(t)}</h2>", _html_table(header, rows)]
    parts += [f"<img src='{html.escape(p)}' alt='{html.escape(p)}'>" for p in plots]
    if info.get("videos"):
        parts.append("<h2>Episodes (egocentric view | top-down map with path)</h2>")
        parts += [f"<figure><video controls muted src='{html.escape(v)}'></video>"
                  f"<figcaption>{html.escape(_video_caption(info, v))}</figcaption></figure>"
                  for v in info["videos"]]
    t, header, rows = episodes
    parts += [f"<h2>{t}</h2>", _html_table(header, rows), "</body></html>"]
    path = Path(out_dir) / REPORT_HTML
    path.write_text("\n".join(parts))
    return path


def write_report(out_dir: Path, info: dict) -> list[Path]:
    """Plots, ``report.md`` and ``report.html`` from an ``eval_info`` dict."""
    plots = write_plots(out_dir, info["aggregated"])
    return [write_markdown(out_dir, info, plots), write_html(out_dir, info, plots),
            *(Path(out_dir) / p for p in plots)]


# --------------------------------------------------------------------------- compare


def episode_keys(info: dict) -> list[tuple]:
    """What identifies each evaluated episode (index, house, task, target, seed)."""
    return [(r["episode"], r["house_id"], r["task"], r["target"], r["seed"])
            for r in info["per_episode"]]


def paired_line(name_a: str, a: dict, name_b: str, b: dict) -> str:
    """The exact McNemar test of ``b`` against ``a`` on their shared episodes, or why not."""
    if episode_keys(a) != episode_keys(b):
        return f"{name_b} vs {name_a}: different episodes, not paired"
    pairs = [(x["success"], y["success"]) for x, y in zip(a["per_episode"], b["per_episode"])]
    only_a = sum(x and not y for x, y in pairs)
    only_b = sum(y and not x for x, y in pairs)
    return (f"{name_b} vs {name_a}: only {name_b} succeeds in {only_b} episodes, only {name_a} "
            f"in {only_a}; exact McNemar p = {mcnemar_p(only_a, only_b):.3g}")


def acting(run: dict) -> str:
    """How a run's policy chose its actions: argmax, sampled or with a stopping rule (over an
    ensemble's mean probabilities), the detector that gave it the target's box (none: the
    simulator's, when the policy takes one), the RoomNav goals' anchor types and the memory
    probe."""
    if run.get("checkpoint") is None:
        return "-"  # a baseline acts by its own rule
    how = "sampled" if run.get("sample") else "argmax"
    if run.get("ensemble"):
        how += f" of the mean of {1 + len(run['ensemble'])} policies"
    if run.get("end_threshold") is not None:
        how += f", end >= {run['end_threshold']:g}"
    for task, value in (run.get("end_threshold_by_task") or {}).items():
        how += f", {task} end >= {value:g}"
    if run.get("blocked_input") is False:
        how += ", no blocked input"
    if run.get("detector"):
        how += f", detector {Path(run['detector']).name}"
    if run.get("room_anchors"):
        how += ", rooms by " + "/".join(run["room_anchors"].values())
    if run.get("memory_steps") is not None:
        how += f", memory cleared every {run['memory_steps']} steps"
    return how


def compare_table(runs: dict[str, dict]) -> str:
    """A plain-text side-by-side table of runs (name -> eval_info dict), each run after the
    first paired with the one before it on their shared episodes."""
    header = ["run", "policy", "acting", "batches", "episodes", "success %", "95% CI", "SPL",
              "reached goal %", "ended away %", "timed out %", "collisions", "steps"]
    rows = []
    for name, info in runs.items():
        agg, run = analysis(info), info.get("run", {})
        lo, hi = agg["success_ci95"]
        steps = run.get("trained_steps")
        rows.append([name, str(run.get("policy", "?")), acting(run),
                     "-" if steps is None else str(steps),
                     str(agg["num_episodes"]), _pct(agg["success_rate"]),
                     f"[{_pct(lo)}, {_pct(hi)}]", f"{agg['spl']:.3f}",
                     _pct(agg["reached_goal_rate"]), _pct(agg["outcomes"]["ended_away"]),
                     _pct(agg["outcomes"]["timed_out"]), f"{agg['collisions']:.1f}",
                     f"{agg['steps']:.1f}"])
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip()
             for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    names = list(runs)
    if len(names) > 1:
        lines.append("")
        lines += [paired_line(a, runs[a], b, runs[b]) for a, b in zip(names, names[1:])]
    return "\n".join(lines)
