"""The Markdown a reviewer reads: the verdict first, then per spec the gate beside the
champion, the metrics, the data validation, what changed against the base branch, a ROC
chart (Mermaid, which GitHub and GitLab draw in comments) and the run's lineage.

Pure formatting of a CiOutcome: no I/O, so it is tested on outcomes built by hand.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from loopline.ci.outcome import ERROR, FAILED, PASSED, CiOutcome, SpecOutcome
from loopline.ml.gate import RELATIVE_CHECKS as RELATIVE
from loopline.ml.metric_names import HIGHER_IS_BETTER
from loopline.runtime.ci_changes import MISSING

TITLES = {"pr": "pull request", "main": "merge to main"}
ICONS = {PASSED: "✅", FAILED: "❌", ERROR: "❌"}
GRID = [i / 20 for i in range(21)]  # the ROC chart's false positive rates


def render(outcome: CiOutcome, *, images: Path | None = None) -> str:
    """The whole report. `images`: the report file's folder, so evaluation.png is linked
    relative to it; None (stdout, comments) names the file instead: a comment cannot show
    an image from the CI machine."""
    lines = [_headline(outcome), "", _context(outcome), ""]
    run = [s for s in outcome.specs if s.run is not None]
    if run:
        lines += [*_summary_table(run), ""]
    if outcome.failures:
        lines += ["**What failed**", ""] + [f"* {_escape(f)}" for f in outcome.failures] + [""]
    for spec in run:
        lines += _section(spec, outcome.mode, images)
    lines += _validated(outcome.specs)
    return "\n".join(lines).rstrip() + "\n"


def _headline(outcome: CiOutcome) -> str:
    title = f"## Loopline CI · {TITLES.get(outcome.mode, outcome.mode)}"
    failed = len(outcome.failures)
    if not failed:
        return f"{title}: ✅ passed"
    checks = f"{failed} check{'s' * (failed != 1)} failed"
    if outcome.report_only:
        return f"{title}: ⚠️ {checks} (report only: the job does not fail)"
    return f"{title}: ❌ {checks}"


def _context(outcome: CiOutcome) -> str:
    head = outcome.head
    commit = f"`{head.get('short') or 'no git'}`" + (" (uncommitted changes)"
                                                     if head.get("dirty") else "")
    parts = [f"commit {commit}" + (f" on `{head['branch']}`" if head.get("branch") else "")]
    if outcome.base_ref:
        parts.append(f"base `{outcome.base_ref}`")
    samples = {s.sample for s in outcome.specs if s.sample}
    if samples:
        parts.append("trained on a sample of " + ", ".join(sorted(samples)))
    parts.append(f"{outcome.duration_s:.0f} s")
    return " · ".join(parts)


def _summary_table(specs: list[SpecOutcome]) -> list[str]:
    rows = ["| spec | model | result | primary metric | champion | train / eval rows |",
            "|---|---|---|---|---|---|"]
    for spec in specs:
        primary = this = champ = "—"
        if spec.verdict:
            primary = spec.verdict.get("primary_metric") or "—"
            this = _num(spec.verdict["metrics"].get(primary))
            champion = spec.verdict.get("champion") or {}
            if champion.get("metrics"):
                champ = f"{_num(champion['metrics'].get(primary))} (v{champion['version']})"
            else:
                champ = _escape(spec.verdict.get("champion_note") or "none")
        rows.append(f"| `{spec.display}` | {spec.model or '—'} | {ICONS.get(spec.status, '')} "
                    f"{spec.status} | {primary} {this} | {champ} | {_rows(spec.rows)} |")
    return rows


def _rows(rows: dict[str, Any]) -> str:
    if "rows_train" not in rows:
        return "—"
    return f"{rows['rows_train']:,} / {rows['rows_eval']:,}"


def _section(spec: SpecOutcome, mode: str, images: Path | None) -> list[str]:
    lines = [f"### {ICONS.get(spec.status, '')} `{spec.display}` · {spec.model or spec.name}", ""]
    lines += _data(spec)
    lines += _moved(spec) if mode == "main" else []
    if spec.verdict:
        lines += _gate(spec) + _metrics(spec)
    lines += _chart(spec)
    if "evaluation" in spec.plots:
        path = spec.plots["evaluation"]
        if images is not None:
            lines += [f"![ROC, precision-recall and confusion matrix]"
                      f"({_relative(path, images)})", ""]
        else:
            lines += [f"Plots: `{path.parent.name}/{path.name}` in the report folder (the "
                      "job's `loopline-ci` artifact).", ""]
    lines += _changes(spec.changes)
    lines += _lineage(spec)
    return lines


def _data(spec: SpecOutcome) -> list[str]:
    lines = []
    rows = spec.rows
    if "rows_train" in rows:
        source = (f"sampled {rows['rows_train'] + rows['rows_eval']:,} of "
                  f"{rows['rows_sampled_from']:,} rows (ci.sample: {spec.sample}), "
                  if "rows_sampled_from" in rows else f"{rows.get('rows_in', 0):,} rows read, ")
        lines.append(f"**Data**: {source}{rows['rows_train']:,} train, "
                     f"{rows['rows_eval']:,} eval.")
    validation = spec.validation
    if validation is not None:
        if validation.get("success"):
            count = validation.get("expectations", "all")
            splits = " and ".join(validation.get("splits", [])) or "the data"
            lines.append(f"**Data validation**: ✅ {count} expectations passed on {splits}.")
        elif validation.get("success") is False:
            lines.append(f"**Data validation**: ❌ {_escape(validation.get('error', 'failed'))}")
            lines += [f"  * {_escape(line)}" for line in validation.get("failed_lines", [])]
        else:
            lines.append(f"**Data validation**: not run ({_escape(validation.get('error'))}).")
    return [*lines, ""] if lines else []


def _moved(spec: SpecOutcome) -> list[str]:
    if spec.moved:
        lines = ["**What moved**: " + "; ".join(spec.moved) + "."]
    elif spec.run is not None:
        lines = ["**What moved**: nothing (no alias changed)."]
    else:
        lines = []
    if spec.rollout:
        if "note" in spec.rollout:
            lines.append(f"**Rollout**: {_escape(spec.rollout['note'])}")
        else:
            r = spec.rollout
            lines.append(f"**Rollout** `{r.get('id')}`: {r.get('mode')} of "
                         f"v{r.get('challenger')} against champion v{r.get('champion')}, "
                         f"{r.get('status')} at {r.get('weight')} % (`loopline rollout status "
                         f"{spec.model}`).")
    return [*lines, ""] if lines else []


def _gate(spec: SpecOutcome) -> list[str]:
    """The checks that decide: absolute ones, and the relative ones against the base branch
    on the same sample when it ran (else against the champion). Then the champion's relative
    checks, for information, when the base decided."""
    verdict = spec.verdict
    assert verdict is not None
    champion = verdict.get("champion") or {}
    rows = champion.get("compared_on", {}).get("rows", verdict.get("rows", 0))
    relative = [c for c in verdict["checks"] if c["check"] in RELATIVE]
    passed = not [f for f in spec.failures if f.startswith("gate: ")]
    if spec.base_checks:
        against = (f"quality against the base branch (`{spec.base.commit}`) trained on the "
                   f"same sample, on the same {verdict.get('rows', 0):,} eval rows; latency "
                   "against the champion, timed beside it")
        column, deciding = "base / champion", spec.kept_checks + spec.base_checks
        relative = [c for c in relative if c not in spec.kept_checks]
    else:
        against = (f"against champion v{champion['version']} on the same {rows:,} eval rows"
                   if champion.get("version") else
                   _escape(verdict.get("champion_note") or "no champion"))
        column, deciding = "champion", verdict["checks"]
    lines = [f"**Gate** ({'passed' if passed else 'failed'}; {against})", ""]
    lines += _check_table(deciding, column)
    if spec.base is not None and spec.base.note:
        lines.append(f"Base branch: {_escape(spec.base.note)}.")
        lines.append("")
    if spec.base_checks and champion.get("version") and relative:
        lines += [f"**Against the production champion v{champion['version']}** (on the same "
                  f"{rows:,} eval rows; it was trained on all rows, so here this is for "
                  "information: `loopline ci main` gates on it with the full data)", ""]
        lines += _check_table(relative, "champion", informational=True)
    return lines


def _check_table(checks: list[dict[str, Any]], column: str,
                 informational: bool = False) -> list[str]:
    lines = [f"| check | this branch | {column} | threshold | result |", "|---|---|---|---|---|"]
    for check in checks:
        mine = check.get("challenger", check.get("value"))
        theirs = _num(check.get("champion")) if check["check"] in RELATIVE else "—"
        if check["metric"] == "data_quality":
            mine = "passed" if check["passed"] else "failed"
        mark = ("✅" if check["passed"] else "ℹ️" if informational else "❌")
        who = check.get("against", "champion")
        name = " ".join(filter(None, (check["metric"], _kind(check["check"]).replace(
            "champion", who))))
        lines.append(f"| {name} | {_num(mine)} | {theirs} | {_threshold(check)} | {mark} "
                     f"{_escape(check['detail'])} |")
    return [*lines, ""]


def _kind(kind: str) -> str:
    return {"min": "(min)", "max": "(max)", "max_drop_vs_champion": "vs champion",
            "max_ratio_vs_champion": "ratio to champion", "passed": "", "present": ""}.get(
                kind, kind)


def _threshold(check: dict[str, Any]) -> str:
    value = check.get("threshold")
    return {"min": f"≥ {_num(value)}", "max": f"≤ {_num(value)}",
            "max_drop_vs_champion": f"drop ≤ {_num(value)}",
            "max_ratio_vs_champion": f"≤ {_num(value)}×"}.get(check["check"], "—")


def _metrics(spec: SpecOutcome) -> list[str]:
    verdict = spec.verdict
    assert verdict is not None
    champion = (verdict.get("champion") or {}).get("metrics") or {}
    base = (spec.base.verdict or {}).get("metrics") if spec.base_checks else None
    mine = verdict["metrics"]
    head = "| metric | this branch |" + (" base |" if base else "") + " champion | change |"
    lines = ["<details><summary>All metrics</summary>", "", head,
             "|---|---|" + ("---|" if base else "") + "---|---|"]
    for name, value in mine.items():
        reference = (base or champion).get(name)
        cells = [name, _num(value), *([_num(base.get(name))] if base else []),
                 _num(champion.get(name)), _change(name, value, reference)]
        lines.append("| " + " | ".join(cells) + " |")
    note = "change: against the base" if base else "change: against the champion"
    return [*lines, "", f"({note})", "", "</details>", ""]


def _change(name: str, value: Any, base: Any) -> str:
    if not _finite(value) or not _finite(base):
        return "—"
    delta = float(value) - float(base)
    if delta == 0:
        return "="
    better = (delta > 0) == HIGHER_IS_BETTER.get(name, True)
    return f"{delta:+.4g} {'better' if better else 'worse'}"


def _chart(spec: SpecOutcome) -> list[str]:
    """ROC at fixed false positive rates (a Mermaid line chart spaces points evenly)."""
    roc = spec.curves.get("roc")
    if not roc:
        return []
    series = [("this branch", roc)]
    champion = spec.curves.get("roc_champion")
    version = ((spec.verdict or {}).get("champion") or {}).get("version")
    if champion:
        series.append((f"champion v{version}", champion))
    names = " and ".join(f"{name} ({'first' if i == 0 else 'second'} line)"
                         for i, (name, _) in enumerate(series))
    lines = [f"ROC on the eval rows: {names}.", "", "```mermaid", "xychart-beta",
             '    title "ROC"', '    x-axis "false positive rate" 0 --> 1',
             '    y-axis "true positive rate" 0 --> 1']
    for _, curve in series:
        points = _resample([p["fpr"] for p in curve], [p["tpr"] for p in curve])
        lines.append("    line [" + ", ".join(f"{y:.3f}" for y in points) + "]")
    return [*lines, "```", ""]


def _resample(xs: list[float], ys: list[float]) -> list[float]:
    """Linear interpolation of a monotone curve at GRID (np.interp, without numpy)."""
    out = []
    j = 0
    for x in GRID:
        while j + 1 < len(xs) and xs[j + 1] < x:
            j += 1
        if j + 1 >= len(xs) or x <= xs[j]:
            out.append(ys[min(j, len(ys) - 1)] if x >= xs[0] else ys[0])
            continue
        x0, x1, y0, y1 = xs[j], xs[j + 1], ys[j], ys[j + 1]
        out.append(y1 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0))
    return out


def _changes(changes: Any) -> list[str]:
    if changes is None:
        return []
    base = f"`{changes.base_ref}`" + (f" (`{changes.base_commit}`)" if changes.base_commit
                                      else "")
    if changes.note and not (changes.params or changes.spec or changes.files):
        return [f"**Changes vs base**: {_escape(changes.note)}", ""]
    if not (changes.params or changes.spec or changes.files):
        return [f"**Changes vs base** {base}: none in the params or the spec.", ""]
    lines = [f"**Changes vs base** {base}" + (f" ({_escape(changes.note)})"
                                              if changes.note else ""), ""]
    # A changed param shows again wherever the spec substitutes it: keep the param's line.
    through_params = {(repr(c.base), repr(c.head)) for c in changes.params}
    own = [c for c in changes.spec if (repr(c.base), repr(c.head)) not in through_params]
    for title, items in (("param", changes.params), ("spec field", own)):
        if items:
            lines += [f"| {title} | base | this branch |", "|---|---|---|"]
            lines += [f"| `{c.key}` | {_value(c.base)} | {_value(c.head)} |" for c in items]
            lines.append("")
    if changes.files:
        lines += ["Files changed: " + ", ".join(f"`{f}`" for f in changes.files), ""]
    return lines


def _value(value: Any) -> str:
    if value is MISSING:
        return "*(absent)*"
    return f"`{_escape(str(value))}`"


def _lineage(spec: SpecOutcome) -> list[str]:
    facts = spec.lineage
    if not facts:
        return []
    data = facts.get("data") or {}
    lines = ["<details><summary>Lineage</summary>", ""]
    for label, key in (("run", "run_id"), ("spec hash", "spec_hash"), ("git commit", "git_commit"),
                       ("artifacts", "artifacts"), ("MLflow experiment", "experiment")):
        if facts.get(key):
            lines.append(f"* {label}: `{facts[key]}`")
    for source, digest in sorted(data.items()):
        lines.append(f"* data `{Path(source).name}`: `{digest}`")
    return [*lines, "", "</details>", ""]


def _validated(specs: list[SpecOutcome]) -> list[str]:
    lines = ["**Specs validated**: " + ", ".join(
        f"`{s.display}` {'✅' if s.status != ERROR or s.run else '❌'}"
        for s in specs), ""]
    for spec in specs:
        if spec.problems:
            lines += [f"`{spec.display}` does not validate:", "", "```text", *spec.problems,
                      "```", ""]
    return lines


def _relative(path: Path, folder: Path) -> str:
    try:
        return path.resolve().relative_to(folder.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and \
        math.isfinite(value)


def _num(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return _escape(str(value))


def _escape(text: Any) -> str:
    """Table cells: a pipe would end the cell, a newline the row."""
    return str(text).replace("|", "\\|").replace("\n", " ")
