"""Loopline components for the churn walkthrough (docs/own-data.md)."""
