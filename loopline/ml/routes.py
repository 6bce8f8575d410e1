"""The routes a served request is logged under: `champion`, a rollout's `canary`, `shadow`.

Names only (no imports): the server routes by them, the rollout controller and the live
checks read the log by them.
"""

CHAMPION, CANARY, SHADOW = "champion", "canary", "shadow"
