"""A first manager without a volume, replaced (issue 20, item 3): its handover runs at the
reserved IP (item 6: never at a droplet's own address) and names the old node, and it runs before any retirement of the run. Two `pulumi up`s
on one state with the lifecycle engine (tests/lifecycle); the sandbox scenario is in
tests/sandbox/lifecycle.py ("three managers, a control pool first without a volume")."""

from __future__ import annotations

import copy
import itertools
import json
import threading
import time

from swarm import node_scripts
from tests.lifecycle.engine import Engine, Provider
from tests.pulumi_program import cluster_config, run_program, unwrap
from tests.sandbox.lifecycle_cloud import FakeOutputs

DROPLET = "digitalocean:index/droplet:Droplet"
COMMAND = "command:remote:Command"


class Droplets(FakeOutputs):
    """Each droplet, a replacement too, gets a new ID and a new address, as on DigitalOcean."""

    def create(self, step):
        _, outputs = super().create(step)
        number = next(self._ids)
        return str(number), {**outputs, "ipv4Address": f"203.0.113.{number % 250 + 1}"}


class Commands(Provider):
    """Every init prints a new node ID (a new droplet is a new node); deletes are recorded with
    the connection and script they ran with."""

    def __init__(self):
        self.nodes = itertools.count(1)
        self.deleted: list[tuple[str, str, str]] = []  # (command, connection host, delete script)
        self.events: list[tuple[str, str]] = []  # ("start" | "end", command)
        self.lock = threading.Lock()

    def create(self, step):
        inputs = unwrap(step.inputs)
        stdout = ""
        if step.name.endswith(("-init", "-join")):
            stdout = f"node{next(self.nodes)}\n"
        elif step.name.endswith("-join-tokens"):
            stdout = json.dumps({"worker": "SWMTKN-1-w", "manager": "SWMTKN-1-m"})
        return f"{step.name}-{next(self._ids)}", {**step.inputs, "stdout": stdout, "stderr": "", "connection": inputs["connection"]}

    def update(self, step):
        return {**step.old.outputs, **step.inputs}

    def delete(self, step):
        inputs = unwrap(step.inputs)
        with self.lock:
            self.events.append(("start", step.name))
        time.sleep(0.05)  # long enough for a delete running side by side to start meanwhile
        with self.lock:
            self.deleted.append((step.name, inputs["connection"]["host"], inputs.get("delete") or ""))
            self.events.append(("end", step.name))


def test_the_old_first_managers_handover_runs_at_the_reserved_ip_for_its_own_node_before_it_retires():
    commands = Commands()
    engine = Engine({DROPLET: Droplets(), COMMAND: commands}, default=FakeOutputs())
    config = copy.deepcopy(cluster_config("prod"))
    control = {"role": "manager", "count": 2, "size": "s-1vcpu-2gb", "labels": {"type": "control"}}
    config["nodePools"] = {"control": control, **config["nodePools"]}
    first = engine.up(lambda monitor: run_program("prod", config, monitor=monitor))
    assert first.error is None, first.error
    reserved_ip = next(r for r in engine.state.values() if r.type.endswith("reservedIp:ReservedIp")).outputs["ipAddress"]
    old_node = next(r for r in engine.state.values() if r.name == "prod-init").outputs["stdout"].strip()

    config["nodePools"]["control"]["image"] = "ubuntu-22-04-x64"
    second = engine.up(lambda monitor: run_program("prod", config, monitor=monitor))
    assert second.error is None, second.error
    new_node = next(r for r in engine.state.values() if r.name == "prod-init").outputs["stdout"].strip()
    assert new_node != old_node

    (handover,) = [(host, script) for name, host, script in commands.deleted if name == "prod-control-1-swarm-state"]
    # the reserved IP, which the successor holds by then: the script demotes the old node from
    # there (tests/unit/node_scripts), and a lost droplet's address is never dialled
    assert handover[0] == reserved_ip
    assert node_scripts.inputs_of(handover[1])["NODE"] == old_node
    # demoted by its handover (leadership moves if it led) before any retirement of the run (on
    # the successor) starts, its own and the other old control node's, not side by side
    events = commands.events
    for retired in ("prod-control-1-settings", "prod-control-2-settings"):
        assert events.index(("end", "prod-control-1-swarm-state")) < events.index(("start", retired)), retired
