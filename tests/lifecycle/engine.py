"""A test engine that plays `pulumi up` under the mocks, again and again, on one state.

Pulumi's mocks answer each registration once and remember nothing: they cannot show what a
second `up` does. This engine keeps a state between runs (each resource's URN, ID, inputs,
outputs, dependencies and options) and diffs every registration against it, as the Pulumi
engine does:

- same inputs: nothing runs, the outputs come from the state;
- changed inputs: an update, or a replacement when a changed property forces one
  (tests/lifecycle/rules.py, from the providers' schemas), `replace_on_changes` names it, or the
  run was asked to `--replace` the resource;
- a replacement is create-before-delete: the new resource is created, its dependents are
  updated with its outputs, and the old one is deleted at the end of the run. With
  `delete_before_replace`, the dependents that must be replaced because of it (those whose
  replace-forcing properties depend on it) are deleted first, dependents before dependencies,
  then the resource itself, and only then the new one is created;
- a resource no longer registered is deleted after the program has finished, in reverse
  dependency order, independent deletes in parallel. A delete runs with the *old* inputs;
- `protect` makes deleting or replacing the resource fail the run; `retain_on_delete` drops it
  from the state without deleting it; `ignore_changes` keeps the state's value of the named
  properties; custom timeouts reach the provider's step;
- `target` limits the run to the named URNs (the others keep their state), like `--target`;
- a failed step fails the run: steps already running finish, no further step starts, nothing
  is deleted at the end, and the state keeps everything that succeeded, as a real `up` does. A
  replaced resource whose deletion did not happen stays in the state, pending deletion, and is
  deleted by the next run that succeeds.

Creates and updates happen as the program registers resources, which the Pulumi SDK does as
soon as a resource's inputs resolve: independent resources are created concurrently.

What a step does is up to a Provider per resource type: `Provider` itself does nothing and
answers with the inputs (unit tests of the engine), tests/sandbox/lifecycle_cloud.py makes
droplets sandbox hosts and runs commands over SSH.

`refresh()` plays `pulumi refresh`: each resource in the state is read back through its
provider's `read`; one the cloud no longer has is dropped from the state (its dependents keep
their entries and their old inputs, as Pulumi leaves them), the others take the outputs read.
The base `Provider.read` keeps the state as it is, which is what pulumi-command's
remote.Command does (it has no real read: a command on a destroyed droplet stays in the state,
pulumi/pulumi-command#104, and its delete then runs over its old connection).

Not modelled: providers'
`Check` (defaults and normalisation of inputs), `deleted_with`, `replace_with`, import, the
`--target-dependents` flag, and previews (every run is an `up`).
"""

from __future__ import annotations

import copy
import itertools
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime.proto import resource_pb2
from pulumi.runtime.sync_await import _sync_await

from tests.lifecycle.rules import Rule, rule_for

STACK_TYPE = "pulumi:pulumi:Stack"


class StepFailed(RuntimeError):
    """A provider step failed; the run fails with this message."""


@dataclass
class Options:
    """The resource options the engine acts on, as registered."""

    protect: bool = False
    retain_on_delete: bool = False
    delete_before_replace: bool = False
    ignore_changes: tuple[str, ...] = ()
    replace_on_changes: tuple[str, ...] = ()
    timeouts: Mapping[str, float | None] = field(default_factory=dict)  # create/update/delete -> seconds


@dataclass
class Resource:
    """One resource in the state."""

    urn: str
    type: str
    name: str
    custom: bool
    id: str
    inputs: dict
    outputs: dict
    parent: str = ""
    dependencies: tuple[str, ...] = ()  # every URN it waits for: depends_on and its inputs'
    property_dependencies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    provider: str = ""  # "<provider urn>::<provider id>", empty for the default provider
    options: Options = field(default_factory=Options)
    pending_delete: bool = False  # the old half of a replacement, deleted at the end of a run

    @property
    def waits_for(self) -> set[str]:
        """Everything that must exist while this resource does: dependencies, parent, provider."""
        waits = set(self.dependencies)
        if self.parent:
            waits.add(self.parent)
        if self.provider:
            waits.add(self.provider.rsplit("::", 1)[0])
        return waits


@dataclass
class Step:
    """One thing the engine did to one resource."""

    op: str  # create | update | replace | delete | same
    urn: str
    type: str
    name: str
    started: float
    seconds: float = 0.0
    detail: str = ""  # the changed properties, or why
    error: str = ""


@dataclass
class StepContext:
    """What a provider gets for one step."""

    engine: Engine
    urn: str
    type: str
    name: str
    inputs: dict  # the new inputs (create/update) or the old ones (delete), secrets still wrapped
    old: Resource | None  # the state before this step (update, delete)
    provider: str  # "<urn>::<id>" of the explicit provider, if any
    timeout: float | None  # the custom timeout of this operation, in seconds

    def provider_inputs(self) -> dict:
        """The current inputs of this resource's explicit provider (e.g. the docker host)."""
        return self.engine.state[self.provider.rsplit("::", 1)[0]].inputs


class Provider:
    """The CRUD of one resource type. This base does nothing: IDs are generated, and the
    outputs are the inputs. Subclasses act on a cloud (the sandbox)."""

    _ids = itertools.count(1)

    def create(self, step: StepContext) -> tuple[str, dict]:
        return f"{step.name}-{next(self._ids)}", dict(step.inputs)

    def update(self, step: StepContext) -> dict:
        assert step.old is not None
        return {**step.old.outputs, **step.inputs}

    def delete(self, step: StepContext) -> None:
        return None

    def read(self, step: StepContext) -> dict | None:
        """`pulumi refresh` of one resource: its outputs as the cloud has them now, or None when
        the cloud no longer has it (the refresh drops it from the state). This base keeps the
        state's outputs: a resource with nothing to read back, as a remote command."""
        assert step.old is not None
        return step.old.outputs


@dataclass
class RunResult:
    steps: list[Step]
    error: BaseException | None
    exports: dict[str, Any]
    seconds: float
    registrations: list  # tests.pulumi_program.Registration, in registration order

    def ops(self, op: str, type_: str | None = None) -> list[Step]:
        return [s for s in self.steps if s.op == op and (type_ is None or s.type == type_)]

    def summary(self) -> dict[str, int]:
        """How many resources were created, updated, replaced and deleted (replacement
        deletes are part of their replacement, not counted again)."""
        counts = {op: 0 for op in ("create", "update", "replace", "delete")}
        for step in self.steps:
            if step.op in counts and not step.detail.startswith("replaced"):
                counts[step.op] += 1
        return counts


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|m|s|ms)")


def parse_timeout(text: str) -> float | None:
    """A Pulumi custom timeout ("20m", "1h30m", "90s") in seconds; None when unset."""
    if not text:
        return None
    scale = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(number) * scale[unit] for number, unit in parts)


def changed_properties(old: Mapping, new: Mapping) -> set[str]:
    """Top-level input names whose values differ (an absent value counts as null)."""
    return {key for key in set(old) | set(new) if old.get(key) != new.get(key)}


def _apply_ignore_changes(old: Mapping, new: Mapping, paths: Iterable[str]) -> dict:
    """`new` with the state's value kept for every ignored property path ("a" or "a.b")."""
    result = copy.deepcopy(dict(new))
    for path in paths:
        keys = path.split(".")
        source, target = old, result
        for key in keys[:-1]:
            source = source.get(key) if isinstance(source, Mapping) else None
            target = target.setdefault(key, {}) if isinstance(target, dict) else None
            if source is None or target is None:
                break
        else:
            last = keys[-1]
            if isinstance(source, Mapping) and last in source:
                target[last] = copy.deepcopy(source[last])
            elif isinstance(target, dict):
                target.pop(last, None)
    return result


class Engine:
    """`pulumi up` on a persistent state, with providers per resource type."""

    def __init__(self, providers: Mapping[str, Provider] | None = None, default: Provider | None = None,
                 parallelism: int = 32, rules: Mapping[str, Rule] | None = None):
        self.providers = dict(providers or {})
        self.rules = dict(rules or {})  # extra types (the engine's own tests); else tests/lifecycle/rules.py
        self.default = default or Provider()
        self.parallelism = parallelism
        self.state: dict[str, Resource] = {}
        self.pending: list[Resource] = []  # old halves of replacements, not yet deleted
        self._lock = threading.RLock()
        # per run
        self._steps: list[Step] = []
        self._registered: set[str] = set()
        self._failed: str | None = None
        self._replace: set[str] = set()
        self._target: set[str] | None = None

    # --- running ----------------------------------------------------------------------------

    def up(self, run: Callable[[pulumi_mocks.MockMonitor], Any], *, replace: Iterable[str] = (),
           target: Iterable[str] | None = None) -> RunResult:
        """One `pulumi up`. `run(monitor)` runs the program with that monitor and returns an
        object with `.error`, `.exports` and `.registrations` (tests.pulumi_program.run_program
        with `monitor=`)."""
        started = time.monotonic()
        self._steps, self._registered, self._failed = [], set(), None
        self._replace = set(replace)
        self._target = set(target) if target is not None else None
        program = run(EngineMonitor(self))
        error = program.error
        if error is None and self._failed:
            error = StepFailed(self._failed)
        if error is None:
            try:
                self._delete_leftovers()
            except StepFailed as failed:
                error = failed
        return RunResult(list(self._steps), error, program.exports if error is None else {},
                         time.monotonic() - started, program.registrations)

    def refresh(self, target: Iterable[str] | None = None) -> list[Step]:
        """One `pulumi refresh`: every custom resource in the state is read back; one its provider
        no longer finds is dropped from the state (a `delete` step with detail "gone", nothing
        run), the others keep their inputs and take the outputs read (an `update` step with
        detail "refreshed" when they differ). Nothing is created, updated or deleted in the cloud,
        and no program runs. `target` limits it to those URNs, like `pulumi refresh --target`.
        Returns the steps."""
        steps: list[Step] = []
        only = set(target) if target is not None else None
        with self._lock:
            resources = [r for r in self.state.values() if r.custom and (only is None or r.urn in only)]
        for res in resources:
            started = time.monotonic()
            outputs = self._provider_for(res.type).read(self._context(res, res.inputs, res, "read"))
            if outputs is None:
                with self._lock:
                    self.state.pop(res.urn, None)
                steps.append(Step("delete", res.urn, res.type, res.name, started, time.monotonic() - started,
                                  detail="gone (refresh)"))
            elif outputs != res.outputs:
                res.outputs = outputs
                steps.append(Step("update", res.urn, res.type, res.name, started, time.monotonic() - started,
                                  detail="refreshed"))
        with self._lock:
            # Old halves of replacements pending deletion are read back too: one that is gone
            # needs no delete any more.
            kept = []
            for res in self.pending:
                if res.custom and (only is None or res.urn in only) and self._provider_for(res.type).read(self._context(res, res.inputs, res, "read")) is None:
                    steps.append(Step("delete", res.urn, res.type, res.name, time.monotonic(), detail="gone (refresh)"))
                else:
                    kept.append(res)
            self.pending = kept
        return steps

    def urn(self, name: str) -> str:
        """The URN of the resource named `name` in the state (names are unique in this program)."""
        (match,) = [urn for urn, res in self.state.items() if res.name == name]
        return match

    # --- registration -----------------------------------------------------------------------

    def register(self, urn: str, request, inputs: dict, aliases: list[str]) -> tuple[str, dict]:
        options = Options(
            protect=bool(request.protect),
            retain_on_delete=bool(request.retainOnDelete),
            delete_before_replace=bool(request.deleteBeforeReplace),
            ignore_changes=tuple(request.ignoreChanges),
            replace_on_changes=tuple(request.replaceOnChanges),
            timeouts={
                op: parse_timeout(getattr(request.customTimeouts, op, ""))
                for op in ("create", "update", "delete")
            },
        )
        new = Resource(
            urn=urn, type=request.type, name=request.name, custom=bool(request.custom), id="",
            inputs=inputs, outputs={}, parent=request.parent,
            dependencies=tuple(request.dependencies),
            property_dependencies={key: tuple(deps.urns) for key, deps in request.propertyDependencies.items()},
            provider=request.provider, options=options,
        )
        with self._lock:
            self._registered.add(urn)
            old = self.state.get(urn)
            if old is None:  # renamed: the state knows it by an alias
                for alias in aliases:
                    if alias in self.state:
                        old = self.state.pop(alias)
                        old.urn = urn
                        self.state[urn] = old
                        self._registered.add(alias)
                        break
        if not new.custom:  # a component: no provider, nothing to do but remember it
            new.id = ""
            with self._lock:
                self.state[urn] = new
            return "", {}
        if self._target is not None and urn not in self._target:
            if old is None:
                raise StepFailed(f"{urn}: not targeted and not in the state; a targeted run cannot create it")
            self._record("same", new, time.monotonic(), detail="not targeted")
            return old.id, old.outputs
        rule = self._rule(new.type)
        if old is not None:
            new.inputs = _apply_ignore_changes(old.inputs, inputs, options.ignore_changes)
            changed = changed_properties(old.inputs, new.inputs)
            forced = rule.replace_keys(changed, old.inputs, new.inputs)
            forced |= changed if "*" in options.replace_on_changes else changed & set(options.replace_on_changes)
            if urn in self._replace:
                forced.add("--replace")
            if not changed and not forced:
                with self._lock:  # options and dependencies are refreshed, as the engine does
                    new.id, new.outputs = old.id, old.outputs
                    self.state[urn] = new
                self._record("same", new, time.monotonic())
                return old.id, old.outputs
            if forced:
                return self._replace_resource(old, new, sorted(forced))
            return self._update(old, new, sorted(changed))
        return self._create(new, "create")

    def _refuse_if_failed(self, res: Resource) -> None:
        if self._failed:
            raise StepFailed(f"{res.urn}: not run: an earlier step failed ({self._failed})")

    def _rule(self, type_: str) -> Rule:
        return self.rules[type_] if type_ in self.rules else rule_for(type_)

    def _provider_for(self, type_: str) -> Provider:
        return self.providers.get(type_, self.default)

    def _context(self, res: Resource, inputs: dict, old: Resource | None, op: str) -> StepContext:
        return StepContext(self, res.urn, res.type, res.name, inputs, old, res.provider, res.options.timeouts.get(op))

    def _run_step(self, op: str, res: Resource, detail: str, action: Callable[[], Any]) -> Any:
        step = Step(op, res.urn, res.type, res.name, time.monotonic(), detail=detail)
        try:
            return action()
        except Exception as error:
            step.error = str(error) or type(error).__name__
            with self._lock:
                self._failed = self._failed or f"{op} of {res.name} failed: {step.error}"
            raise StepFailed(f"{op} of {res.urn} failed: {step.error}") from error
        finally:
            step.seconds = time.monotonic() - step.started
            with self._lock:
                self._steps.append(step)

    def _record(self, op: str, res: Resource, started: float, detail: str = "") -> None:
        with self._lock:
            self._steps.append(Step(op, res.urn, res.type, res.name, started, time.monotonic() - started, detail))

    def _create(self, new: Resource, op: str, detail: str = "") -> tuple[str, dict]:
        self._refuse_if_failed(new)
        provider = self._provider_for(new.type)
        new.id, new.outputs = self._run_step(op, new, detail, lambda: provider.create(self._context(new, new.inputs, None, "create")))
        with self._lock:
            self.state[new.urn] = new
        return new.id, new.outputs

    def _update(self, old: Resource, new: Resource, changed: list[str]) -> tuple[str, dict]:
        self._refuse_if_failed(new)
        provider = self._provider_for(new.type)
        new.id = old.id
        new.outputs = self._run_step("update", new, ", ".join(changed),
                                     lambda: provider.update(self._context(new, new.inputs, old, "update")))
        with self._lock:
            self.state[new.urn] = new
        return new.id, new.outputs

    def _replace_resource(self, old: Resource, new: Resource, forced: list[str]) -> tuple[str, dict]:
        self._refuse_if_failed(new)
        if old.options.protect:
            message = f"{old.urn} is protected: it cannot be replaced (forced by {', '.join(forced)})"
            with self._lock:
                self._failed = self._failed or message
            raise StepFailed(message)
        detail = ", ".join(forced)
        if new.options.delete_before_replace:
            for dependent in self._dependents_to_replace(old):
                self._delete(dependent, detail=f"replaced before {old.name}")
                with self._lock:
                    self.state.pop(dependent.urn, None)
            self._delete(old, detail="replaced (delete before replace)")
            with self._lock:
                self.state.pop(old.urn, None)
            return self._create(new, "replace", detail)
        result = self._create(new, "replace", detail)
        with self._lock:
            old.pending_delete = True
            self.pending.append(old)
        return result

    def _dependents_to_replace(self, root: Resource) -> list[Resource]:
        """The state's resources that must be deleted before `root` is (delete-before-replace),
        dependents first: those whose replace-forcing properties depend, directly or through
        another such resource, on `root` (the Pulumi engine's calculateDependentReplacements)."""
        with self._lock:
            resources = [r for r in self.state.values() if r.custom and r.urn != root.urn]
        replaced = {root.urn}
        found: list[Resource] = []
        changed_any = True
        while changed_any:
            changed_any = False
            for res in resources:
                if res.urn in replaced:
                    continue
                props = {key for key, deps in res.property_dependencies.items() if replaced & set(deps)}
                if not props:
                    continue
                forced = self._rule(res.type).replace_keys(props)
                forced |= props if "*" in res.options.replace_on_changes else props & set(res.options.replace_on_changes)
                if forced:
                    if res.options.protect:
                        raise StepFailed(f"{res.urn} is protected: replacing {root.urn} would replace it")
                    replaced.add(res.urn)
                    found.append(res)
                    changed_any = True
        return self._deletion_order(found)

    # --- deletion ---------------------------------------------------------------------------

    def _delete(self, res: Resource, detail: str = "") -> None:
        if res.options.retain_on_delete:
            self._record("delete", res, time.monotonic(), detail=(detail + "; " if detail else "") + "retained")
            return
        provider = self._provider_for(res.type)
        if res.custom:
            self._run_step("delete", res, detail, lambda: provider.delete(self._context(res, res.inputs, res, "delete")))

    @staticmethod
    def _deletion_order(resources: list[Resource]) -> list[Resource]:
        """Dependents before what they depend on."""
        done: set[str] = set()
        ordered: list[Resource] = []
        remaining = list(resources)
        while remaining:
            ready = [r for r in remaining if not any(r.urn in o.waits_for for o in remaining if o is not r)]
            if not ready:  # a cycle cannot happen in a real state; delete what is left as is
                ready = remaining[:]
            for res in ready:
                ordered.append(res)
                done.add(res.urn)
            remaining = [r for r in remaining if r.urn not in done]
        return ordered

    def _delete_leftovers(self) -> None:
        """After the program: delete what it no longer registers, and the old halves of
        replacements; dependents first, independent ones in parallel."""
        with self._lock:
            gone = [
                r for urn, r in self.state.items()
                if urn not in self._registered and (self._target is None or urn in self._target)
            ]
            condemned = list(self.pending)
        protected = [r.urn for r in gone if r.options.protect]
        if protected:
            raise StepFailed("protected resources cannot be deleted: " + ", ".join(protected))
        todo = {id(r): r for r in gone + condemned}
        if not todo:
            return
        # A resource waits until everything that waits for it is deleted.
        blockers = {
            key: {other for other, o in todo.items() if other != key and r.urn in o.waits_for}
            for key, r in todo.items()
        }
        finished: set[int] = set()
        errors: list[str] = []
        cond = threading.Condition()
        running = 0

        def work(key: int) -> None:
            nonlocal running
            res = todo[key]
            try:
                self._delete(res, detail="replaced" if res.pending_delete else "")
                with self._lock:
                    if res.pending_delete:
                        self.pending = [p for p in self.pending if p is not res]
                    elif self.state.get(res.urn) is res:
                        del self.state[res.urn]
            except StepFailed as failed:
                with cond:
                    errors.append(str(failed))
            with cond:
                finished.add(key)
                running -= 1
                cond.notify_all()

        with ThreadPoolExecutor(max_workers=self.parallelism) as pool:
            started: set[int] = set()
            with cond:
                while len(finished) < len(todo):
                    if not errors:
                        for key in todo:
                            if key not in started and blockers[key] <= finished:
                                started.add(key)
                                running += 1
                                pool.submit(work, key)
                    if errors and running == 0:
                        break
                    cond.wait(timeout=1)
        if errors:
            raise StepFailed("; ".join(errors))


class EngineMonitor(pulumi_mocks.MockMonitor):
    """The resource monitor the SDK talks to: every registration goes through the engine."""

    def __init__(self, engine: Engine):
        super().__init__(mocks=None)  # type: ignore[arg-type] - every call is answered here
        self.engine = engine

    def RegisterResource(self, request):
        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type == STACK_TYPE:
            return resource_pb2.RegisterResourceResponse(urn=urn)
        pulumi_mocks._ensure_event_loop()
        inputs = rpc.deserialize_properties(request.object)
        id_, outputs = self.engine.register(urn, request, inputs, self._aliases(request))
        obj = _sync_await(rpc.serialize_properties(outputs, {}))
        return resource_pb2.RegisterResourceResponse(urn=urn, id=id_, object=obj)

    def ReadResource(self, request):
        raise StepFailed(f"the program must not read resources ({request.type} {request.name})")

    def Invoke(self, request):
        raise StepFailed(f"the program must make no provider calls (data sources hit the API): {request.tok}")

    def _aliases(self, request) -> list[str]:
        """The URNs a resource may have had before (aliases with a name, type or parent)."""
        urns = list(getattr(request, "aliasURNs", []))
        for alias in getattr(request, "aliases", []):
            if alias.urn:
                urns.append(alias.urn)
                continue
            spec = alias.spec
            parent = "" if spec.noParent else (spec.parentUrn or request.parent)
            urns.append(self.make_urn(parent, spec.type or request.type, spec.name or request.name))
        return urns
