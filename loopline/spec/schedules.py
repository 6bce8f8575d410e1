"""A spec's `schedule:`, checked the way the schedulers read it (Airflow: presets and 5-field
cron through croniter; KFP: the same, with a seconds field added)."""

from __future__ import annotations

# Presets every backend understands, as the 5-field cron they stand for (Airflow's own list).
SCHEDULE_PRESETS: dict[str, str] = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@quarterly": "0 0 1 */3 *",
    "@yearly": "0 0 1 1 *",
}


def cron_fields(schedule: str) -> str:
    """The 5-field cron a schedule stands for."""
    return SCHEDULE_PRESETS.get(schedule.strip(), schedule.strip())


def check_schedule(schedule: str) -> None:
    """ValueError naming what is wrong: not a preset, not 5 fields, or a field out of range."""
    if schedule.strip().startswith("@") and schedule.strip() not in SCHEDULE_PRESETS:
        raise ValueError(f"{schedule!r} is not a preset; use one of "
                         f"{', '.join(SCHEDULE_PRESETS)} or a 5-field cron expression")
    fields = cron_fields(schedule).split()
    if len(fields) != 5:
        raise ValueError(f"{schedule!r} is not a cron expression: expected 5 fields "
                         "(minute hour day month weekday, e.g. '0 3 * * 1'), got "
                         f"{len(fields)}")
    from croniter import croniter

    if not croniter.is_valid(" ".join(fields)):
        raise ValueError(f"{schedule!r} is not a valid cron expression "
                         "(minute hour day month weekday, e.g. '0 3 * * 1')")
