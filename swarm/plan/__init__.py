"""The plan: every check the program makes before it registers anything (`preflight`), what a
deployment needs around its services (`rollout`: images, folders, what `up` waits for), and the
report `python -m swarm plan` prints (`report`: text, Markdown or JSON). Offers `preflight`, and
`build_plan`/`render` for the CLI: the program and the plan cannot disagree about what `up` refuses.
"""

from swarm.plan.preflight import check, preflight
from swarm.plan.report import FORMATS, build_plan, error_plan, group_warnings, render

__all__ = [
    "FORMATS",
    "build_plan",
    "check",
    "error_plan",
    "group_warnings",
    "preflight",
    "render",
]
