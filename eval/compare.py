"""``spoc-eval compare``: runs side by side, each paired with the one before it on their
shared episodes (the exact McNemar test of :func:`eval.metrics.mcnemar_p`)."""

from __future__ import annotations

from pathlib import Path

from eval.metrics import mcnemar_p
from eval.report import analysis, pct


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
                     str(agg["num_episodes"]), pct(agg["success_rate"]),
                     f"[{pct(lo)}, {pct(hi)}]", f"{agg['spl']:.3f}",
                     pct(agg["reached_goal_rate"]), pct(agg["outcomes"]["ended_away"]),
                     pct(agg["outcomes"]["timed_out"]), f"{agg['collisions']:.1f}",
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
