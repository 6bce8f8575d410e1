"""Running steps: artifacts, caching, tracking, lineage. Knows specs and components."""
