"""Cost of the whole program under Pulumi mocks per catalogue model, at 100, 1,000 and 2,000 models.

Usage: python scripts/bench_catalogue.py [--models 100 1000 2000] [--rounds R]

Prints figures; it is not a test. Each run is `tests.pulumi_program.run_program` on the prod
stack (its stack file plus a generated catalogue; 10 ML workers so every model fits): config and
stack file read and validated, catalogue expanded, capacity checked, every resource registered.
A run with no models gives the fixed cost; the rest divided by the model count is the cost per
model. Times are CPU seconds of the process (every thread: the mocks answer registrations from a
pool), which a busy shared machine disturbs less than the wall clock; the sizes are run in turn,
round after round, so a change of load falls on all of them, and the best round is kept (other
work on the machine only ever adds time; the medians are printed too).

The SDK's floor is a program that registers as many bare `docker.Service` resources (a name and
an image) under the same mocks, with the garbage collector set as `__main__.py` sets it: what the
Pulumi SDK alone costs per resource. CPython's garbage collector is timed apart.

Goals (issue 25): the cost per model at each larger size within 1.2 x the cost at the first size
(linear), and under 3 ms per model at 1,000 models. The last line gives the verdict.
"""

from __future__ import annotations

import argparse
import copy
import gc
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pulumi_docker as docker
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.pulumi_program import reference_stack_text, run_program, stack_config  # noqa: E402

ML_WORKERS = 10
LINEAR_GOAL = 1.2  # cost per model at a larger size / at the first size
FAST_GOAL_MS = 3.0  # ms per model at FAST_AT models
FAST_AT = 1000
# The young and middle thresholds CPython starts with, and full collections off: __main__.py's setting.
PROGRAM_GC_THRESHOLDS = (*gc.get_threshold()[:2], 1_000_000)


def catalogue(models: int) -> dict:
    return {
        "defaults": {
            "image_prefix": "registry.example.com/models/",
            "networks": ["main_network"],
            "constraints": ["node.role == worker", "node.labels.type == machine-learning"],
            "cpus": "0.01",
            "memory": "32M",
            "restart_policy": {"condition": "on-failure", "delay": "5s"},
        },
        "models": [
            {"name": f"model-{i:04d}", "image": f"model-{i:04d}:1.0", "environment": {"MODEL_ID": str(i)}}
            for i in range(models)
        ],
    }


def config(workdir: Path, models: int) -> dict:
    (workdir / f"models-{models}.yaml").write_text(yaml.safe_dump(catalogue(models)))
    stack_file = workdir / f"prod-{models}.yaml"
    # prod's own stack file, its catalogue replaced by the generated one (or by none).
    catalogue_line = f"x-model-catalogue: models-{models}.yaml\n" if models else ""
    stack_file.write_text(reference_stack_text().replace('version: "3.8"\n', f'version: "3.8"\n{catalogue_line}', 1))
    values = copy.deepcopy(stack_config("prod"))
    values["stackFile"] = str(stack_file)
    values["nodePools"]["ml"]["count"] = ML_WORKERS
    return values


class GcClock:
    """Seconds spent in garbage collections since the last `reset`."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0
        gc.callbacks.append(self._tick)

    def _tick(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.process_time()
        else:
            self.seconds += time.process_time() - self._started

    def reset(self) -> None:
        self.seconds = 0.0


def bare_services(count: int) -> None:
    """The SDK's floor: `count` docker.Service resources with a name and an image, nothing else."""
    gc.set_threshold(*PROGRAM_GC_THRESHOLDS)
    for index in range(count):
        docker.Service(f"bare-{index:04d}", name=f"bare_{index}",
                       task_spec={"container_spec": {"image": f"model-{index:04d}:1.0"}})


def one_run(values: dict | None, count: int, gc_clock: GcClock) -> tuple[float, float]:
    """(CPU seconds, of them garbage collection) of one run of the program with `values`, or of
    the floor program with `count` bare resources when `values` is None."""
    gc.collect()  # start each run with no garbage of the previous one
    gc_clock.reset()
    started = time.process_time()
    if values is None:
        run = run_program("bench", {}, program=lambda: bare_services(count))
    else:
        run = run_program("prod", values)
    elapsed = time.process_time() - started
    if run.error is not None:
        raise SystemExit(f"the program failed: {run.error}")
    return elapsed, gc_clock.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, nargs="+", default=[100, 1000, 2000])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the program's warnings, once per run
    gc_clock = GcClock()
    sizes = [0, *args.models]

    with tempfile.TemporaryDirectory() as workdir:
        values = {models: config(Path(workdir), models) for models in sizes}
        one_run(values[0], 0, gc_clock)  # warm up: imports, first-run caches
        one_run(None, 10, gc_clock)
        program: dict[int, list[tuple[float, float]]] = {models: [] for models in sizes}
        floor: dict[int, list[float]] = {models: [] for models in sizes}
        for _ in range(args.rounds):  # sizes in turn, so that a change of load falls on all of them
            for models in sizes:
                program[models].append(one_run(values[models], models, gc_clock))
                floor[models].append(one_run(None, models, gc_clock)[0])

    def best(runs: list) -> float:
        return min(runs)

    base = best([total for total, _ in program[0]])
    floor_base = best(floor[0])
    print(f"The program under mocks: prod stack, {ML_WORKERS} ML workers; CPU seconds, best of {args.rounds} rounds "
          f"(median in brackets)\n")
    print(f"{'models':>7} {'total s':>14} {'of it GC s':>10} {'ms per model':>13} {'SDK floor ms':>13}")
    print(f"{0:>7} {base:6.2f} ({statistics.median(t for t, _ in program[0]):5.2f}) "
          f"{min(g for _, g in program[0]):10.2f}   (fixed cost: nodes, swarm, hand-written services)")
    per_model, floor_per = {}, {}
    for models in args.models:
        total = best([t for t, _ in program[models]])
        per_model[models] = (total - base) / models * 1000
        floor_per[models] = (best(floor[models]) - floor_base) / models * 1000
        print(f"{models:>7} {total:6.2f} ({statistics.median(t for t, _ in program[models]):5.2f}) "
              f"{min(g for _, g in program[models]):10.2f} {per_model[models]:13.2f} {floor_per[models]:13.2f}")
    first, larger = args.models[0], args.models[1:]
    ratios = {models: per_model[models] / per_model[first] for models in larger}
    linear = all(ratio <= LINEAR_GOAL for ratio in ratios.values())
    fast_at = FAST_AT if FAST_AT in per_model else args.models[-1]
    fast = per_model[fast_at] < FAST_GOAL_MS
    ratio_text = ", ".join(f"{models} models {ratio:.2f}" for models, ratio in ratios.items())
    print(f"\ncatalogue: {fast_at} models {per_model[fast_at]:.2f} ms/model (goal < {FAST_GOAL_MS:g}; SDK floor "
          f"{floor_per[fast_at]:.2f} ms/resource), ratio to {first} models: {ratio_text} (goal <= {LINEAR_GOAL}): "
          f"{'PASS' if linear and fast else 'FAIL'}")


if __name__ == "__main__":
    main()
