"""The lifecycle engine against Pulumi's documented behaviour, with small fake programs.

Each test runs a program, changes it, and runs it again on the same state, as two `pulumi up`s
would; a recording provider shows which steps ran, in which order, with which inputs.
"""

from __future__ import annotations

import threading
import time

import pulumi
import pytest

from tests.lifecycle.engine import Engine, Provider, StepContext, parse_timeout
from tests.lifecycle.rules import RULES, Rule, rule_for
from tests.pulumi_program import run_program

THING = "test:index:Thing"
# A Thing is replaced when its `size` changes, as a droplet is by its `image`.
RULE = {THING: Rule(frozenset({"size"}), "the test's own")}


class Thing(pulumi.CustomResource):
    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None, **props):
        super().__init__(THING, name, {**props, "out": None}, opts)

    @property
    def out(self) -> pulumi.Output[str]:
        return pulumi.Output.from_input(self.__dict__["out"]) if "out" in self.__dict__ else None


class Recorder(Provider):
    """Records every step as (op, name, the inputs it ran with); `out` is the name and a
    generation number, so a replaced Thing gives its dependents a new value."""

    def __init__(self, fail: set[tuple[str, str]] | None = None, delay: float = 0.0):
        self.log: list[tuple[str, str, dict]] = []
        self.fail = fail or set()
        self.delay = delay
        self.timeouts: dict[tuple[str, str], float | None] = {}
        self._generation = 0
        self._lock = threading.Lock()

    def _do(self, op: str, step: StepContext) -> None:
        time.sleep(self.delay)
        with self._lock:
            self.log.append((op, step.name, dict(step.inputs)))
            self.timeouts[(op, step.name)] = step.timeout
        if (op, step.name) in self.fail:
            raise RuntimeError(f"{op} of {step.name} refused by the test")

    def create(self, step):
        self._do("create", step)
        with self._lock:
            self._generation += 1
            generation = self._generation
        return f"{step.name}-id{generation}", {**step.inputs, "out": f"{step.name}#{generation}"}

    def update(self, step):
        self._do("update", step)
        return {**step.old.outputs, **step.inputs, "out": step.old.outputs["out"]}

    def delete(self, step):
        self._do("delete", step)

    def ops(self) -> list[tuple[str, str]]:
        return [(op, name) for op, name, _ in self.log]


def up(engine: Engine, program, **options):
    return engine.up(lambda monitor: run_program("dev", {}, monitor=monitor, program=program), **options)


def a_chain(size: int = 1, *, dbr: bool = False, note: str = "", **a_options):
    """a <- b (b's `source` is a's output) <- c (c's `source` is b's)."""
    def program():
        a = Thing("a", size=size, opts=pulumi.ResourceOptions(delete_before_replace=dbr, **a_options))
        b = Thing("b", size=1, source=a.out, note=note)
        Thing("c", size=1, source=b.out)
    return program


@pytest.fixture
def recorder():
    return Recorder()


@pytest.fixture
def engine(recorder):
    return Engine({THING: recorder}, rules=RULE)


def test_a_second_run_without_changes_runs_no_step(engine, recorder):
    first = up(engine, a_chain())
    assert first.error is None and recorder.ops() == [("create", "a"), ("create", "b"), ("create", "c")]
    second = up(engine, a_chain())
    assert second.error is None
    assert recorder.ops() == [("create", "a"), ("create", "b"), ("create", "c")]
    assert {s.op for s in second.steps} == {"same"}


def test_an_unchanged_resource_keeps_its_outputs_from_the_state(engine, recorder):
    up(engine, a_chain())
    up(engine, a_chain())
    assert engine.state[engine.urn("b")].inputs["source"] == "a#1"


def test_a_change_to_an_updatable_property_updates_in_place(engine, recorder):
    up(engine, a_chain())
    result = up(engine, a_chain(note="new"))
    assert recorder.ops()[3:] == [("update", "b")]
    assert result.summary() == {"create": 0, "update": 1, "replace": 0, "delete": 0}
    assert engine.state[engine.urn("b")].id == "b-id2"


def test_a_replacement_creates_first_updates_dependents_and_deletes_the_old_one_last(engine, recorder):
    up(engine, a_chain())
    result = up(engine, a_chain(size=2))
    # b's source changed (a's new output): b is updated, not replaced; c sees no change.
    assert recorder.ops()[3:] == [("create", "a"), ("update", "b"), ("delete", "a")]
    deleted = recorder.log[-1][2]
    assert deleted["size"] == 1, "the old resource is deleted with its old inputs"
    assert result.summary() == {"create": 0, "update": 1, "replace": 1, "delete": 0}


def test_delete_before_replace_deletes_dependents_that_must_be_replaced_first():
    recorder = Recorder()
    # b is replaced when its `source` changes: it must go before a does.
    engine = Engine({THING: recorder}, rules={THING: Rule(frozenset({"size", "source"}), "test")})
    up(engine, a_chain(dbr=True))
    result = up(engine, a_chain(size=2, dbr=True))
    assert result.error is None
    assert recorder.ops()[3:] == [
        ("delete", "c"), ("delete", "b"), ("delete", "a"),  # dependents first, then a itself
        ("create", "a"), ("create", "b"), ("create", "c"),
    ]


def test_delete_before_replace_leaves_dependents_that_are_only_updated(engine, recorder):
    up(engine, a_chain(dbr=True))
    up(engine, a_chain(size=2, dbr=True))
    assert recorder.ops()[3:] == [("delete", "a"), ("create", "a"), ("update", "b")]


def test_a_resource_no_longer_registered_is_deleted_after_the_program_dependents_first(engine, recorder):
    up(engine, a_chain())
    result = up(engine, lambda: None)
    assert result.error is None
    assert recorder.ops()[3:] == [("delete", "c"), ("delete", "b"), ("delete", "a")]
    assert engine.state == {}


def test_independent_deletes_run_in_parallel():
    recorder = Recorder(delay=0.5)
    engine = Engine({THING: recorder}, rules=RULE)
    up(engine, lambda: [Thing(f"t{i}", size=1) for i in range(4)])
    started = time.monotonic()
    up(engine, lambda: None)
    assert time.monotonic() - started < 1.5, "four independent 0.5 s deletes took as long as sequential ones"


def test_ignore_changes_keeps_the_state_value(engine, recorder):
    up(engine, a_chain())
    program = a_chain(size=2, ignore_changes=["size"])
    result = up(engine, program)
    assert result.error is None and recorder.ops()[3:] == []
    assert engine.state[engine.urn("a")].inputs["size"] == 1


def test_replace_on_changes_replaces_for_an_otherwise_updatable_property(engine, recorder):
    def program(note):
        return lambda: Thing("a", size=1, note=note, opts=pulumi.ResourceOptions(replace_on_changes=["note"]))
    up(engine, program("x"))
    up(engine, program("y"))
    assert recorder.ops()[1:] == [("create", "a"), ("delete", "a")]


def test_a_protected_resource_cannot_be_replaced_or_deleted(engine, recorder):
    up(engine, a_chain(protect=True))
    replaced = up(engine, a_chain(size=2, protect=True))
    assert replaced.error is not None and "protected" in str(replaced.error)
    deleted = up(engine, lambda: None)
    assert deleted.error is not None and "protected" in str(deleted.error)
    assert ("delete", "a") not in recorder.ops()
    assert engine.urn("a")


def test_retain_on_delete_drops_the_resource_from_the_state_without_deleting_it(engine, recorder):
    up(engine, lambda: Thing("kept", size=1, opts=pulumi.ResourceOptions(retain_on_delete=True)))
    result = up(engine, lambda: None)
    assert result.error is None and ("delete", "kept") not in recorder.ops()
    assert engine.state == {}


def test_a_failed_step_fails_the_run_keeps_what_succeeded_and_the_next_run_resumes():
    recorder = Recorder(fail={("create", "b")})
    engine = Engine({THING: recorder}, rules=RULE)
    failed = up(engine, a_chain())
    assert failed.error is not None and "create of" in str(failed.error)
    assert [r.name for r in engine.state.values()] == ["a"]
    assert ("create", "c") not in recorder.ops(), "nothing that waits for the failed step runs"
    recorder.fail.clear()
    resumed = up(engine, a_chain())
    assert resumed.error is None
    assert recorder.ops() == [("create", "a"), ("create", "b"), ("create", "b"), ("create", "c")]


def test_a_failed_run_deletes_nothing_and_the_old_half_of_a_replacement_waits_for_the_next_run():
    recorder = Recorder()
    engine = Engine({THING: recorder}, rules=RULE)
    up(engine, a_chain())
    recorder.fail = {("update", "b")}
    failed = up(engine, a_chain(size=2))
    assert failed.error is not None
    assert ("delete", "a") not in recorder.ops()
    assert len(engine.pending) == 1 and engine.pending[0].inputs["size"] == 1
    recorder.fail.clear()
    assert up(engine, a_chain(size=2)).error is None
    assert recorder.ops()[-1] == ("delete", "a") and recorder.log[-1][2]["size"] == 1
    assert engine.pending == []


def test_replace_option_replaces_a_resource_without_a_diff(engine, recorder):
    up(engine, a_chain())
    up(engine, a_chain(), replace=[engine.urn("c")])
    assert recorder.ops()[3:] == [("create", "c"), ("delete", "c")]


def test_target_runs_only_the_targeted_resources(engine, recorder):
    up(engine, a_chain())
    result = up(engine, lambda: Thing("a", size=1, note="changed"), target=[engine.urn("a")])
    assert result.error is None
    assert recorder.ops()[3:] == [("update", "a")], "b and c are untargeted: kept, not deleted"
    assert {r.name for r in engine.state.values()} == {"a", "b", "c"}


def test_custom_timeouts_reach_the_provider(engine, recorder):
    timeouts = pulumi.CustomTimeouts(create="20m", delete="90s")
    up(engine, lambda: Thing("slow", size=1, opts=pulumi.ResourceOptions(custom_timeouts=timeouts)))
    up(engine, lambda: None)
    assert recorder.timeouts[("create", "slow")] == 1200
    assert recorder.timeouts[("delete", "slow")] == 90


def test_an_alias_moves_the_state_to_the_new_name_without_a_replacement(engine, recorder):
    up(engine, lambda: Thing("old-name", size=1))
    result = up(engine, lambda: Thing("new-name", size=1, opts=pulumi.ResourceOptions(aliases=[pulumi.Alias(name="old-name")])))
    assert result.error is None and recorder.ops() == [("create", "old-name")]
    assert [r.name for r in engine.state.values()] == ["new-name"]


def test_creates_of_independent_resources_run_concurrently():
    recorder = Recorder(delay=0.5)
    engine = Engine({THING: recorder}, rules=RULE)
    started = time.monotonic()
    assert up(engine, lambda: [Thing(f"t{i}", size=1) for i in range(4)]).error is None
    assert time.monotonic() - started < 1.5


def test_durations_are_read_as_pulumi_writes_them():
    assert parse_timeout("20m") == 1200 and parse_timeout("1h30m") == 5400 and parse_timeout("") is None
    with pytest.raises(ValueError):
        parse_timeout("ten minutes")


def test_every_type_the_program_registers_has_a_replace_rule_with_a_source():
    from tests.pulumi_program import stack_config

    for stack in ("prod", "staging"):
        run = run_program(stack, stack_config(stack))
        assert run.error is None
        for registration in run.registrations:
            if registration.type.startswith("swarm:index:"):
                continue  # components
            assert rule_for(registration.type).source, registration.type


def test_droplet_rules_follow_the_provider_schema():
    droplet = RULES["digitalocean:index/droplet:Droplet"]
    assert droplet.replace_keys({"size", "tags", "name", "volumeIds"}) == set()
    assert droplet.replace_keys({"image", "userData", "sshKeys", "vpcUuid", "region"}) == {
        "image", "userData", "sshKeys", "vpcUuid", "region"}
    assert RULES["command:remote:Command"].replace_keys({"create", "connection", "stdin"}) == set()
    assert RULES["command:remote:Command"].replace_keys({"triggers"}) == {"triggers"}
    assert RULES["docker:index/secret:Secret"].replace_keys({"labels"}) == {"labels"}


def test_service_rules_replace_on_new_registry_credentials_and_a_mode_switch_only():
    service = RULES["docker:index/service:Service"]
    old = {"name": "prod_api", "mode": {"replicated": {"replicas": 3}}, "taskSpec": {"containerSpec": {"image": "a"}}}
    scaled = {**old, "mode": {"replicated": {"replicas": 4}}}
    released = {**old, "taskSpec": {"containerSpec": {"image": "b"}}}
    assert service.replace_keys({"mode"}, old, scaled) == set()
    assert service.replace_keys({"taskSpec"}, old, released) == set()
    assert service.replace_keys({"mode"}, old, {**old, "mode": {"global": True}}) == {"mode.global"}
    assert service.replace_keys({"auth"}, old, {**old, "auth": {"password": "new"}}) == {"auth"}
    with pytest.raises(KeyError, match="no replace rule"):
        rule_for("digitalocean:index/kubernetesCluster:KubernetesCluster")


def test_a_docker_provider_whose_host_changes_is_updated_and_its_resources_stay():
    import pulumi_docker as docker

    recorder = Recorder()
    engine = Engine({"pulumi:providers:docker": recorder, "docker:index/network:Network": recorder})

    def program(host):
        def run():
            provider = docker.Provider("swarm", host=host)
            docker.Network("net", name="main", driver="overlay", opts=pulumi.ResourceOptions(provider=provider))
        return run

    up(engine, program("ssh://root@10.0.0.1"))
    result = up(engine, program("ssh://root@10.0.0.2"))
    assert result.error is None
    assert recorder.ops()[2:] == [("update", "swarm")], "the network is neither replaced nor updated"


class Cloud(Recorder):
    """A Recorder whose resources can be lost outside Pulumi: `read` finds them no more."""

    def __init__(self):
        super().__init__()
        self.lost: set[str] = set()

    def read(self, step):
        return None if step.old.id in self.lost else step.old.outputs


def test_a_refresh_drops_what_the_cloud_lost_and_keeps_its_dependents_with_their_old_inputs():
    """`pulumi refresh` after a host failure: the lost resource leaves the state, a resource
    whose provider reads nothing back (a remote command) stays with its old inputs."""
    cloud = Cloud()
    engine = Engine({THING: cloud}, rules=RULE)
    up(engine, a_chain())
    cloud.lost.add(engine.state[engine.urn("a")].id)
    steps = engine.refresh()
    assert [(s.op, s.name, s.detail) for s in steps] == [("delete", "a", "gone (refresh)")]
    assert [res.name for res in engine.state.values() if res.custom] == ["b", "c"]
    assert engine.state[engine.urn("b")].inputs["source"] == "a#1"
    assert cloud.ops() == [("create", "a"), ("create", "b"), ("create", "c")], "a refresh runs no step"


def test_the_up_after_a_refresh_creates_the_lost_resource_anew_and_its_dependents_follow():
    cloud = Cloud()
    engine = Engine({THING: cloud}, rules=RULE)
    up(engine, a_chain())
    cloud.lost.add(engine.state[engine.urn("a")].id)
    engine.refresh()
    result = up(engine, a_chain())
    assert result.error is None, result.error
    # created, not replaced: nothing of the lost one is deleted; b sees a's new output
    assert cloud.ops()[3:] == [("create", "a"), ("update", "b")]


def test_a_refresh_can_be_limited_to_targets():
    cloud = Cloud()
    engine = Engine({THING: cloud}, rules=RULE)
    up(engine, a_chain())
    cloud.lost |= {engine.state[engine.urn(name)].id for name in ("a", "b")}
    steps = engine.refresh(target=[engine.urn("b")])
    assert [s.name for s in steps] == ["b"]
    assert engine.urn("a")


def test_a_resource_without_a_read_stays_in_the_state_after_a_refresh(engine, recorder):
    up(engine, a_chain())
    assert engine.refresh() == []
    assert len([res for res in engine.state.values() if res.custom]) == 3
