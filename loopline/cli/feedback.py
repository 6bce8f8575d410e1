"""`loopline feedback SPEC LABELS --label COLUMN [--by KEYS]`: keep labels that arrived after
the predictions, beside the prediction log, and say how many of them name a logged
prediction. The live metric check and `drift.evidently` (`current: log`) join them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from loopline.cli.common import (
    EXIT_BAD_SPEC,
    EXIT_OK,
    CommandError,
    Subcommands,
    load,
    spec_command,
    spec_errors,
)


def _read_labels(path: str) -> Any:
    import pandas as pd

    file = Path(path)
    if not file.is_file():
        raise CommandError(f"{path}: no such file", EXIT_BAD_SPEC)
    suffix = file.suffix.lower()
    if suffix == ".csv":
        return pd.read_csv(file)
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(file)
    raise CommandError(f"{path}: labels come as .csv or .parquet", EXIT_BAD_SPEC)


def _log_keys(folder: str, keys: list[str]) -> Any:
    """The logged predictions' key columns (only those columns are read)."""
    from loopline.integrations import prediction_log

    try:  # `read` orders by time: it needs that column too
        log = prediction_log.read(folder, columns=list(dict.fromkeys([prediction_log.TIME,
                                                                       *keys])))
        if log.empty or all(k in log.columns for k in keys):
            return log
        raise ValueError("a key column is in no log file")
    except ValueError:  # no log file has one of the columns
        import pyarrow.parquet as pq

        from loopline.integrations.filesystems import filesystem

        fs, path = filesystem(prediction_log.files(folder)[-1])
        with fs.open(path, "rb") as handle:
            logged = pq.read_schema(handle).names
        missing = [k for k in keys if k not in logged]
        raise CommandError(f"the prediction log under {folder} has no column "
                           f"{', '.join(missing or keys)} to match labels by (it logs: "
                           f"{', '.join(logged)})", EXIT_BAD_SPEC) from None


def feedback(loaded: Any, path: str, label: str, by: str) -> dict[str, Any]:
    """Keep the labels, then count what they match; errors name the missing column."""
    from loopline.integrations import prediction_labels
    from loopline.integrations.prediction_log import log_folder
    from loopline.runtime.monitoring import artifacts_root, model_name

    try:
        keys = prediction_labels.keys_for(by)
    except ValueError as exc:
        raise CommandError(str(exc), EXIT_BAD_SPEC) from None
    frame = _read_labels(path)
    absent = [c for c in [*keys, label] if c not in frame.columns]
    if absent:
        raise CommandError(f"{path} has no column {', '.join(absent)} (columns: "
                           f"{', '.join(map(str, frame.columns))})", EXIT_BAD_SPEC)
    rows = frame[[*keys, label]].rename(columns={label: prediction_labels.LABEL})
    usable = rows.dropna()
    name = model_name(loaded)
    root = artifacts_root(loaded)
    folder = log_folder(root, name)
    log = _log_keys(folder, keys)
    result: dict[str, Any] = {"model": name, "labels": len(rows), "kept": len(usable),
                              "dropped": len(rows) - len(usable), "by": keys,
                              "logged_predictions": len(log), "matched": 0, "labelled": 0}
    if usable.empty:
        result["file"] = None
        return result
    result["file"] = prediction_labels.write(prediction_labels.labels_folder(root, name),
                                             usable.reset_index(drop=True))
    if not log.empty:
        result["matched"] = prediction_labels.matched(log, usable, keys)
        result["labelled"] = int(prediction_labels.match(log, usable, keys).notna().sum())
    return result


def print_feedback(result: dict[str, Any]) -> None:
    dropped = f" ({result['dropped']:,} without a label or key skipped)" \
        if result["dropped"] else ""
    if result["file"] is None:
        print(f"no labels kept: all {result['labels']:,} rows lack a label or a key")
        return
    print(f"{result['kept']:,} labels kept{dropped}: {result['file']}")
    unmatched = result["kept"] - result["matched"]
    print(f"{result['matched']:,} matched logged predictions of {result['model']} by "
          f"{','.join(result['by'])} ({result['labelled']:,} predictions labelled); "
          f"{unmatched:,} matched none yet" + (" (kept: their predictions may still be "
                                               "buffered, they join later)" if unmatched else ""))


@spec_errors
def cmd_feedback(args: argparse.Namespace) -> int:
    loaded = load(args)
    from loopline.runtime.environment import applied, step_environment
    from loopline.runtime.monitoring import MonitoringError

    try:
        with applied(step_environment(loaded)):  # the artifact store's credentials
            result = feedback(loaded, args.labels, args.label, args.by)
    except MonitoringError as exc:
        raise CommandError(str(exc), EXIT_BAD_SPEC) from None
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_feedback(result)
    return EXIT_OK


def register(sub: Subcommands) -> None:
    command = spec_command(sub, "feedback", cmd_feedback,
                           "keep labels that arrived later beside the prediction log "
                           "(joined by request id or entity keys)")
    command.add_argument("labels", help="labels file (.csv or .parquet)")
    command.add_argument("--label", required=True, help="the column holding the label")
    command.add_argument("--by", default="request_id",
                         help="request_id (default), or entity key columns such as "
                              "carrier,flight,time_hour")
    command.add_argument("--json", action="store_true", help="print the counts as JSON")
