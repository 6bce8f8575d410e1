"""Backends translate a spec for an orchestrator, or run it; no component logic here."""
