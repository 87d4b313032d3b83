"""The per-class impact table and the routine success rate, printed at the end of the session."""

from __future__ import annotations

from collections import Counter


def class_table(passes: dict) -> list[str]:
    """One row per class; per pass: attacks, blocked (403/4xx), ran (executed/accepted), IMPACT."""
    from attacks import CLASSES  # noqa: PLC0415

    counts = {}
    for name, attacks in passes.items():
        c = counts[name] = {k: Counter() for k in ("total", "blocked", "ran", "impact")}
        for r in attacks:
            c["total"][r["cls"]] += 1
            c["impact"][r["cls"]] += bool(r["impacts"])
            c["blocked"][r["cls"]] += r["verdict"] in ("blocked", "refused")
            c["ran"][r["cls"]] += r["verdict"] in ("executed", "accepted")
    head = f"{'':<15}" + "".join(f" | {name + ' pass':<26}" for name in passes)
    sub = f"{'class':<15}" + " | attacks blocked  ran IMPACT" * len(passes)
    lines = [head, sub]
    for cls in [*CLASSES, None]:
        row = f"{cls or 'total':<15}"
        for name in passes:
            c = counts[name]
            pick = (lambda k: c[k][cls]) if cls else (lambda k: sum(c[k].values()))  # noqa: E731
            row += f" | {pick('total'):>7} {pick('blocked'):>7} {pick('ran'):>4} {pick('impact'):>6}"
        lines.append(row)
    return lines


def impact_details(attacks: list[dict], width: int = 400) -> list[str]:
    lines = []
    for r in attacks:
        if not r["impacts"]:
            continue
        last = r["responses"][-1] if r["responses"] else {}
        out = (last.get("stdout") or last.get("text") or "").replace("\n", "\\n")[:width]
        err = (last.get("stderr") or "").replace("\n", "\\n")[:200]
        lines.append(f"#{r['id']} [{r['cls']}] {r['verdict']}: {r['request'][:300]!r}")
        lines.append(f"    impact: {'; '.join(r['impacts'])}")
        lines.append(f"    output: {out!r}" + (f" stderr: {err!r}" if err else ""))
    return lines


def summary_lines(results: dict) -> list[str]:
    lines: list[str] = []
    passes = results.get("passes") or {}
    if passes:
        for name, attacks in passes.items():
            lines.append(f"ATTACKS ({name} pass): {len(attacks)} sent for real, "
                         f"{sum(bool(r['impacts']) for r in attacks)} with impact")
        lines += class_table(passes)
        for name, attacks in passes.items():
            if any(r["impacts"] for r in attacks):
                lines.append(f"-- attacks with impact, {name} pass:")
                lines += impact_details(attacks)
    routine = results.get("routine") or []
    if routine:
        ok = [r for r in routine if r["ok"]]
        lines.append(f"ROUTINE: {len(ok)}/{len(routine)} succeeded confined ({100 * len(ok) / len(routine):.1f} %)")
        for r in routine:
            if not r["ok"]:
                lines.append(f"  FAILED {r['command']!r}: status {r['status']} exit {r.get('exit_code')} "
                             f"{(r.get('rule') or '')} {(r.get('reason') or '')} stderr={(r.get('stderr') or '')[:300]!r}")
        for r in routine:
            if r.get("show"):
                lines.append(f"  note {r['command']!r} printed: {(r.get('stdout') or '')[:400]!r}")
    if results.get("timings"):
        lines.append("timings: " + ", ".join(f"{k}={v}" for k, v in results["timings"].items()))
    return lines
