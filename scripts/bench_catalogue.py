"""Time of the whole program, under Pulumi mocks, for 10, 100 and 1,000 catalogue models.

Usage: python scripts/bench_catalogue.py [--models 10 100 1000] [--rounds R]

Prints figures; it is not a test. Each run is `tests.pulumi_program.run_program` on the prod
stack (its stack file plus a generated catalogue; 10 ML workers so every model fits): config and
stack file read and validated, catalogue expanded, capacity checked, every resource registered.
A run with no models gives the fixed cost; the rest divided by the model count is the cost per
model. Growth is no worse than linear when that cost does not grow with the number of models.

CPython's garbage collector is timed apart: its full collections scan every live object (here
mostly Pulumi's Outputs and futures, which grow with the program) each time the heap has grown
by a quarter, so their cost per model rises until that geometric series levels off.
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

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.pulumi_program import reference_stack_text, run_program, stack_config  # noqa: E402

ML_WORKERS = 10
# Measurement noise: the cost per model may vary this much before growth counts as superlinear.
TOLERANCE = 1.5


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
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started

    def reset(self) -> None:
        self.seconds = 0.0


def seconds(values: dict, rounds: int, gc_clock: GcClock) -> tuple[float, float]:
    """Median (total, garbage collection) seconds of `rounds` runs of the program."""
    times = []
    for _ in range(rounds):
        gc.collect()  # start each run with no garbage of the previous one
        gc_clock.reset()
        started = time.perf_counter()
        run = run_program("prod", values)
        times.append((time.perf_counter() - started, gc_clock.seconds))
        if run.error is not None:
            raise SystemExit(f"the program failed: {run.error}")
    return statistics.median(t for t, _ in times), statistics.median(g for _, g in times)


def growth(per_model: list[float]) -> str:
    """How the cost per model at the largest size compares with the smallest of the others."""
    factor = per_model[-1] / min(per_model[:-1])
    verdict = "no worse than linear" if factor <= TOLERANCE else "faster than linear"
    return f"{factor:.2f} x ({verdict})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the program's warnings, once per run
    gc_clock = GcClock()

    with tempfile.TemporaryDirectory() as workdir:
        seconds(config(Path(workdir), 0), 1, gc_clock)  # warm up: imports, first-run caches
        base, base_gc = seconds(config(Path(workdir), 0), args.rounds, gc_clock)
        print(f"The program under mocks: prod stack, {ML_WORKERS} ML workers, median of {args.rounds} runs\n")
        print(f"{'models':>7} {'total s':>8} {'of it GC s':>10} {'ms per model':>13} {'without GC':>11}")
        print(f"{0:>7} {base:8.2f} {base_gc:10.2f}   (fixed cost: nodes, swarm, hand-written services)")
        with_gc, without_gc = [], []
        for models in args.models:
            total, collecting = seconds(config(Path(workdir), models), args.rounds, gc_clock)
            with_gc.append((total - base) / models * 1000)
            without_gc.append(((total - collecting) - (base - base_gc)) / models * 1000)
            print(f"{models:>7} {total:8.2f} {collecting:10.2f} {with_gc[-1]:13.2f} {without_gc[-1]:11.2f}")
    print(f"\nCost per model at {args.models[-1]} models against the lowest before: {growth(with_gc)}; "
          f"without garbage collection: {growth(without_gc)}.")


if __name__ == "__main__":
    main()
