"""Day-2 scenarios: prod's first `up` on the sandbox, then one change as a second `up`, watched
every second. Shared by tests/sandbox/test_lifecycle.py and scripts/lifecycle_report.py.

A scenario *holds* when, after its second `up`:
- the swarm survived (the same cluster ID, answered by a manager),
- every service survived (same IDs as before the change),
- every secret the program declares exists in the swarm,
- the database volume's data survived (a file written before the change reads back),
- no replicated service with two or more replicas ran fewer than replicas - 1 tasks in any
  sample taken during the run,
- `docker node ls` lists as many managers and nodes as the configuration declares, every one
  Ready and Active (none left drained or paused), and the reserved IP (managerAddress) answers
  as a manager,
- and `up` itself succeeded.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from swarm.backups.jobs import JOBS_DIR
from swarm.node_scripts.day2 import RETIRE_LOCK_DIR
from tests.lifecycle.engine import Engine, RunResult
from tests.pulumi_program import cluster_config, reference_stack_text, run_program
from tests.sandbox.harness import DEFAULT_IMAGE, Sandbox, wait_for
from tests.sandbox.lifecycle_cloud import Cloud, sandbox_engine, swarm_snapshot
from tests.sandbox.lifecycle_interrupt import DrainCutter, takes_tasks

STACK = "prod"
RELEASE_IMAGE = "swarm-sandbox/busybox:2"
MARKER = ".lifecycle-marker"
SAMPLE_SECONDS = 1.0
# Broken scenarios fail on the convergence check: bounded here so that a report stays short.
CONVERGE_TIMEOUT = "60s"


def lifecycle_stack_file(directory: Path) -> Path:
    """stacks/prod.yaml's services on the local image (see conftest.sandbox_stack_file), with
    sandbox-sized waits: a short stop grace period (`sleep` ignores SIGTERM, every task stop
    would take 10 s) and rolling updates that watch each task for 3 s instead of 30 s (the
    order of a rolling update stays the stack file's; only its pauses are shorter)."""
    document = yaml.safe_load(reference_stack_text())
    for service in document["services"].values():
        service["image"] = DEFAULT_IMAGE
        service["command"] = ["sleep", "86400"]
        service["stop_grace_period"] = "1s"
        update = service.get("deploy", {}).get("update_config")
        if update:
            update.update({"delay": "1s", "monitor": "3s"})
    path = directory / "prod-lifecycle.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def load_images(sandbox: Sandbox) -> None:
    """Make the local image (and the release tag) part of every droplet the engine boots. The
    image is built on a host, so one is booted for that and destroyed again."""
    builder = sandbox.add_host("image-builder")
    try:
        sandbox.load_image()
        sandbox.load_image(RELEASE_IMAGE)
    finally:
        sandbox.destroy_host(builder.key)


def base_config(stack_file: Path) -> dict:
    return {**cluster_config(STACK), "stackFile": str(stack_file), "convergeTimeout": CONVERGE_TIMEOUT}


def node_names(config: dict) -> list[str]:
    return [
        f"{STACK}-{pool}-{index}"
        for pool, spec in config["nodePools"].items()
        for index in range(1, int(spec["count"]) + 1)
    ]


# --- changes ------------------------------------------------------------------------------


def _pool(config: dict, pool: str, **changes) -> dict:
    config = copy.deepcopy(config)
    config["nodePools"][pool].update(changes)
    return config


def _without_pool(config: dict, pool: str) -> dict:
    config = copy.deepcopy(config)
    del config["nodePools"][pool]
    return config


def _with_spare_pool(config: dict) -> dict:
    config = copy.deepcopy(config)
    config["nodePools"]["spare"] = {"role": "worker", "count": 1, "size": "s-1vcpu-2gb", "labels": {"type": "spare"}}
    return config


def _with_two_more_managers(config: dict) -> dict:
    """Three managers: the database's (with its volume) and two small ones of their own pool.
    (Three managers of one pool would each hold a volume, and preview refuses a database that
    could be rescheduled onto another node's empty volume.)"""
    config = copy.deepcopy(config)
    config["nodePools"]["control"] = {"role": "manager", "count": 2, "size": "s-1vcpu-2gb", "labels": {"type": "control"}}
    return config


def _with_a_control_pool_first(config: dict) -> dict:
    """Three managers, the first two in a `control` pool without a volume listed first: its first
    node inits the swarm and holds the reserved IP, then the database's manager with its volume.
    A first manager without a volume is replaced create-before-delete: its successor holds the
    reserved IP before the old droplet's deletes run."""
    config = copy.deepcopy(config)
    control = {"role": "manager", "count": 2, "size": "s-1vcpu-2gb", "labels": {"type": "control"}}
    config["nodePools"] = {"control": control, **config["nodePools"]}
    return config


# Issue 20, the scheduler follows the manager: backups on (a schedule that never falls during a
# report: the sandbox has no Spaces) and a stack-file job that runs every minute.
SCHEDULED_SERVICE = "report"
NEVER_DURING_A_REPORT = "0 3 1 1 *"


def _with_the_scheduler(config: dict) -> dict:
    """The scheduler on: `swarm:backups` (the database's job, never due here) and a scheduled
    service (`x-schedule`: every minute) in a copy of the stack file."""
    source = Path(config["stackFile"])
    document = yaml.safe_load(source.read_text())
    document["services"][SCHEDULED_SERVICE] = {
        "image": DEFAULT_IMAGE, "command": ["sh", "-c", "echo report"], "x-schedule": "* * * * *",
        "stop_grace_period": "1s", "deploy": {"replicas": 1, "restart_policy": {"condition": "on-failure"}},
    }
    scheduled = source.with_name(source.stem + "-scheduled.yaml")
    scheduled.write_text(yaml.safe_dump(document))
    backups = {"bucket": "lifecycle-backups", "schedule": NEVER_DURING_A_REPORT, "swarmState": False}
    return {**config, "stackFile": str(scheduled), "backups": backups}


def _scheduler_runs_on_the_successor(life: Lifecycle) -> list[str]:
    """After the manager's replacement: its successor has the scheduler (cron entry, jobs,
    keys), the cron entry run there starts the scheduled job, which completes, the status
    reports that run on that manager, and a further `up` succeeds."""
    hosts = [h for h in life.cloud.droplets.values() if h.name == f"{STACK}-manager-1" and h.ready]
    if not hosts:
        return ["no droplet prod-manager-1 after the change"]
    host = hosts[0]
    entry = host.exec("cat /etc/cron.d/swarm-jobs", check=False)
    lines = [line for line in entry.stdout.splitlines() if line.strip() and not line.startswith("#")]
    if entry.returncode != 0 or not lines:
        return [f"the successor {host.name} has no cron entry for the scheduler: {entry.stderr.strip()}"]
    command = lines[0].split(None, 6)[6]  # cron's five fields and the user, then the command
    job = f"{STACK}_{SCHEDULED_SERVICE}"

    def last_run() -> dict | None:
        host.exec(command, check=False, timeout=120)  # as cron runs it every minute: start or collect
        status = host.exec(f"python3 {JOBS_DIR}/lib/swarm_jobs.py --dir {JOBS_DIR} status", check=False)
        try:
            return (json.loads(status.stdout).get(job) or {}).get("lastRun")
        except ValueError:
            return None

    try:
        run = wait_for(last_run, f"{job}'s run on {host.name}", timeout=90, interval=3)
    except Exception as error:  # noqa: BLE001 - reported as the scenario's problem
        tail = host.exec(f"tail -n 5 {JOBS_DIR}/tick.log", check=False).stdout
        return [f"no run of {job} on the successor: {_first_line(str(error))}; tick.log: {tail.strip()}"]
    problems = []
    if run.get("status") != "succeeded":
        problems.append(f"{job}'s run on the successor: {run}")
    again = life.up(life.config)
    if again.error is not None:
        problems.append("the further up failed: " + _first_line(str(again.error)))
    else:
        reported = (again.exports.get("scheduledJobs") or {}).get(job) or {}
        if (reported.get("lastRun") or {}).get("status") != "succeeded":
            problems.append(f"the further up's scheduledJobs output does not show the run: {reported}")
    return problems


def _key_pair(comment: str) -> tuple[str, str]:
    """A new ED25519 key pair: (public key line, private key)."""
    with tempfile.TemporaryDirectory() as directory:
        key = Path(directory) / "key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)], check=True)
        return key.with_suffix(".pub").read_text().strip(), key.read_text()


def _new_program_key(config: dict) -> dict:
    """The program's own key pair switched (it is every droplet's DigitalOcean `ssh_keys`)."""
    public, private = _key_pair("program")
    return {**config, "sshPublicKey": public, "sshPrivateKey": private}


def _operator_key_added(config: dict) -> dict:
    public, _ = _key_pair("operator")
    return {**config, "sshAuthorizedKeys": [*config.get("sshAuthorizedKeys", []), public]}


def _rotated_secret(config: dict) -> dict:
    """The database password rotated (its secret is replaced, its service updated)."""
    return {**config, "secrets": {**config["secrets"], "db_password": f"rotated-{secrets.token_hex(4)}"}}


@contextlib.contextmanager
def _program_upgrade_changing_user_data() -> Iterator[None]:
    """A new release of this program whose cloud-init differs (apt's upgrade policy gains a line)."""
    from swarm.node_scripts import cloudinit

    saved = cloudinit.UPGRADE_POLICY
    cloudinit.UPGRADE_POLICY = saved + 'Unattended-Upgrade::Remove-Unused-Dependencies "true";\n'
    try:
        yield
    finally:
        cloudinit.UPGRADE_POLICY = saved


@contextlib.contextmanager
def _program_upgrade_changing_daemon_settings() -> Iterator[None]:
    """A new release of this program whose Docker daemon settings differ (one more log file kept)."""
    from swarm.node_scripts import node_config

    saved = copy.deepcopy(node_config.DAEMON_SETTINGS)
    node_config.DAEMON_SETTINGS["log-opts"] = {**saved["log-opts"], "max-file": "6"}
    try:
        yield
    finally:
        node_config.DAEMON_SETTINGS.clear()
        node_config.DAEMON_SETTINGS.update(saved)


@dataclass(frozen=True)
class Scenario:
    name: str
    change: Callable[[dict], dict] = lambda config: config
    baseline: Callable[[dict], dict] = lambda config: config
    replace: tuple[str, ...] = ()  # resource names to `--replace`
    upgrade: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    # A node whose drain for its Docker restart the first `up` is cut off in (its script and SSH
    # session killed, tests/sandbox/lifecycle_interrupt.py); then `up` runs again, and that
    # node must take tasks afterwards.
    interrupt: str = ""
    # Droplets destroyed outside Pulumi before the `up` (a host failure), then the documented way
    # back (docs/how-to.md, "A manager's droplet is lost"): `pulumi refresh` of the droplets and
    # the reserved IP's assignment, then `pulumi up`.
    lost: tuple[str, ...] = ()
    # A deploy killed mid-retirement (issue 20, item 7): every SSH session of the `up` is killed
    # (SIGKILL) once a retirement holds its slot on the manager and has drained its node; the run
    # fails there, and the scenario's `up` is the next deploy, with the same configuration.
    killed_mid_retirement: bool = False
    # A lone manager lost without a swarm-state backup (docs/how-to.md): after refresh and an `up`
    # that stops at init, `<mountPath>/.swarm-state` is removed on the successor, then `up`,
    # `pulumi refresh` (the old swarm's objects are gone) and `up` again: a new swarm with the
    # same services, secrets and networks, and the volume's data. Judged on that: a new cluster
    # ID and new service IDs are expected.
    new_swarm: bool = False
    # What else must hold after the change, on the cluster: problems, none when it holds.
    check: Callable[[Lifecycle], list[str]] | None = None
    # The `up` must fail with this text (a refusal that protects data), the volume's data kept.
    refusal: str = ""


SCENARIOS = (
    Scenario("no change"),
    Scenario("worker added (ml 3 -> 4)", lambda c: _pool(c, "ml", count=4)),
    Scenario("worker removed (ml 3 -> 2)", lambda c: _pool(c, "ml", count=2)),
    Scenario("pool removed (spare)", lambda c: _without_pool(c, "spare"), baseline=_with_spare_pool),
    Scenario("manager replaced (image change)", lambda c: _pool(c, "manager", image="ubuntu-22-04-x64")),
    # Issue 20: the scheduler follows the manager (installed on the successor, jobs run there).
    Scenario("manager replaced (image change), scheduler on", lambda c: _pool(c, "manager", image="ubuntu-22-04-x64"),
             baseline=_with_the_scheduler, check=_scheduler_runs_on_the_successor),
    Scenario("every node's user data changed", upgrade=_program_upgrade_changing_user_data),
    Scenario("pool size changed (ml)", lambda c: _pool(c, "ml", size="m-8vcpu-64gb")),
    Scenario("operator SSH key added", _operator_key_added),
    Scenario("daemon settings changed (log-opts)", upgrade=_program_upgrade_changing_daemon_settings),
    Scenario("program key pair switched", _new_program_key),
    Scenario("label changed (ml: zone=a)", lambda c: _pool(c, "ml", labels={"type": "machine-learning", "zone": "a"})),
    Scenario("secret rotated (db_password)", _rotated_secret),
    Scenario("image released (api)", lambda c: {**c, "images": {"api": RELEASE_IMAGE}}),
    Scenario("three managers, prod-control-1 replaced", baseline=_with_two_more_managers, replace=("prod-control-1",)),
    Scenario("three managers, the first (prod-manager-1) replaced", baseline=_with_two_more_managers,
             replace=("prod-manager-1",)),
    Scenario("three managers, every manager's image changed", baseline=_with_two_more_managers,
             change=lambda c: _pool(_pool(c, "manager", image="ubuntu-22-04-x64"), "control", image="ubuntu-22-04-x64")),
    # Managers of two pools restart Docker one at a time cluster-wide (issue 20: quorum across pools).
    Scenario("three managers in two pools, daemon settings changed", baseline=_with_two_more_managers,
             upgrade=_program_upgrade_changing_daemon_settings),
    # A drain cut off half-way heals on the next up (issue 20: an interrupted drain heals).
    Scenario("daemon settings changed, the up killed while prod-ml-1 drains, up again",
             upgrade=_program_upgrade_changing_daemon_settings, interrupt="prod-ml-1"),
    # The first manager's handover never reaches its successor (issue 20: a handover on the successor).
    Scenario("three managers, a control pool first without a volume, its image changed",
             baseline=_with_a_control_pool_first, change=lambda c: _pool(c, "control", image="ubuntu-22-04-x64")),
    # A dead manager does not wedge `up` (issue 20, item 6): the first manager's droplet destroyed
    # outside Pulumi, then refresh + up.
    Scenario("three managers, the first (prod-manager-1) lost, refresh and up", baseline=_with_two_more_managers,
             lost=("prod-manager-1",)),
    # Its raft state is gone with the droplet: the successor's init must refuse to start an empty
    # swarm over the volume that held one, saying what to do, and lose nothing on the way.
    Scenario("lone manager (prod-manager-1) lost, refresh and up: init refuses an empty swarm", lost=("prod-manager-1",),
             refusal="not initialising a new, empty swarm over it. Restore the swarm state"),
    Scenario("lone manager (prod-manager-1) lost, a new swarm with the same services", lost=("prod-manager-1",),
             new_swarm=True),
    # A killed `up` leaves nothing behind (issue 20, item 7).
    Scenario("worker removed (ml 3 -> 2), the up killed mid-retirement, then up again",
             lambda c: _pool(c, "ml", count=2), killed_mid_retirement=True),
)

# What `pulumi refresh --target` names in the documented way back: the droplets and the reserved
# IP's assignment (the Docker provider's objects are left out: the manager they are read through
# may be the droplet that is gone).
REFRESHED_TYPES = ("digitalocean:index/droplet:Droplet", "digitalocean:index/reservedIpAssignment:ReservedIpAssignment")


# --- watching -----------------------------------------------------------------------------

_TASK_FORMAT = "{{.Name}} {{.Node}} desired={{.DesiredState}} {{.CurrentState}} {{.Error}}"
_SERVING_SCRIPT = ("docker ps --filter label=com.docker.swarm.service.name "
                   "--format '{{.Label \"com.docker.swarm.service.name\"}}|{{.Status}}'")
_SAMPLE_SCRIPT = (
    "docker node ls --format '{{.Hostname}}|{{.Status}}|{{.Availability}}|{{.ManagerStatus}}' && echo --- && "
    "docker service ls --format '{{.Name}}|{{.Replicas}}'"
)


@dataclass
class Sample:
    at: float
    available: set[str]  # hostnames with a Ready, Active node
    running: dict[str, int]  # service -> running tasks
    quorum: bool  # a manager answered, with a leader elected
    # service -> its tasks (`docker service ps`), only for services short of their replicas:
    # what a report shows when a service falls too low
    tasks: dict[str, str] = field(default_factory=dict)
    # service -> its containers running on the hosts, healthy where there is a healthcheck, as
    # each host's own Docker lists them: what is serving, whether or not a manager answers
    serving: dict[str, int] = field(default_factory=dict)


class Sampler:
    """Every second, asks a manager which nodes are available and how many tasks each service
    runs. Runs in a thread on the test runner, from a host's console (no SSH, no Pulumi)."""

    def __init__(self, cloud: Cloud):
        self.cloud = cloud
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            sample = self._sample(started)
            sample.serving = self._serving()
            self.samples.append(sample)
            self._stop.wait(max(0.0, SAMPLE_SECONDS - (time.monotonic() - started)))

    def _sample(self, at: float) -> Sample:
        for host in list(self.cloud.droplets.values()):
            if not host.ready:
                continue
            try:
                result = host.exec(_SAMPLE_SCRIPT, check=False, timeout=10)
            except Exception:  # noqa: BLE001 - a host destroyed meanwhile
                continue
            if result.returncode != 0 or "---" not in result.stdout:
                continue
            nodes, services = result.stdout.split("---\n", 1)
            available, leader = set(), False
            for line in nodes.splitlines():
                hostname, status, availability, manager = (line.split("|") + ["", "", "", ""])[:4]
                if status == "Ready" and availability == "Active":
                    available.add(hostname)
                leader = leader or manager == "Leader"
            running, short = {}, []
            for line in services.splitlines():
                name, replicas = line.split("|", 1)
                running[name] = int(replicas.split("/", 1)[0])
                if running[name] < int(replicas.split("/", 1)[1].split()[0]):
                    short.append(name)
            return Sample(at, available, running, leader, self._tasks(host, short))
        return Sample(at, set(), {}, False)

    def _serving(self) -> dict[str, int]:
        serving: dict[str, int] = {}
        for host in list(self.cloud.droplets.values()):
            if not host.ready:
                continue
            try:
                result = host.exec(_SERVING_SCRIPT, check=False, timeout=10)
            except Exception:  # noqa: BLE001 - a host destroyed meanwhile serves nothing
                continue
            for line in result.stdout.splitlines() if result.returncode == 0 else ():
                service, status = (line.split("|", 1) + [""])[:2]
                if service and "health: starting" not in status and "unhealthy" not in status:
                    serving[service] = serving.get(service, 0) + 1
        return serving

    @staticmethod
    def _tasks(host, services: list[str]) -> dict[str, str]:
        tasks = {}
        for service in services:
            try:
                result = host.exec(f"docker service ps --format '{_TASK_FORMAT}' {service} | head -n 12",
                                   check=False, timeout=10)
            except Exception as error:  # noqa: BLE001 - the host destroyed meanwhile
                tasks[service] = str(error)
                continue
            tasks[service] = result.stdout.strip() if result.returncode == 0 else result.stderr.strip()
        return tasks


def longest_unavailable(samples: list[Sample], hostname: str, end: float) -> float:
    """The longest stretch, in seconds, during which `hostname` had no Ready and Active node."""
    longest, since = 0.0, None
    for sample in samples:
        if hostname in sample.available:
            if since is not None:
                longest = max(longest, sample.at - since)
                since = None
        elif since is None:
            since = sample.at
    if since is not None:
        longest = max(longest, end - since)
    return longest


# --- running ------------------------------------------------------------------------------


@dataclass
class Outcome:
    scenario: str
    result: RunResult
    summary: dict[str, int]
    replaced: list[str]  # droplets replaced, or resources when no droplet was
    swarm_survived: bool
    services_survived: bool
    secrets_survived: bool
    data_survived: bool
    longest_unavailable: tuple[str, float]  # (node, seconds)
    min_running: dict[str, tuple[int, int]]  # service -> (lowest running, replicas)
    seconds: float
    problems: list[str] = field(default_factory=list)
    leaderless_samples: int = 0  # samples in which no manager answered with a leader elected
    # service -> (lowest number of its containers serving on the hosts, replicas)
    min_serving: dict[str, tuple[int, int]] = field(default_factory=dict)
    managers: int = 1  # after the change
    # What `docker node ls` lists after the change: (managers, nodes); the configuration's counts
    # in `managers` and `nodes`.
    listed: tuple[int, int] = (0, 0)
    nodes: int = 0
    manager_address_answers: bool = True  # the reserved IP (managerAddress) reaches a manager
    # Nodes not Ready and Active afterwards, and what an interrupted scenario found wrong (the first
    # up not cut off, the node taking no task): each fails the scenario.
    not_serving: list[str] = field(default_factory=list)
    # What a killed `up` left behind after the next one (a slot held, a node not Active)
    leftovers: list[str] = field(default_factory=list)
    # A lost lone manager: no manager until the new swarm forms, and the workers leave the old
    # one to join it (their tasks stop): the replicas are judged at the end, not in every sample.
    outage_expected: bool = False
    checks_held: bool = True  # the scenario's own check (Scenario.check) found nothing
    expected_refusal: str = ""  # Scenario.refusal: held when `up` stops with it, data kept

    @property
    def membership_held(self) -> bool:
        """The swarm is the configured one: as many managers and nodes as declared, no retired
        node left behind, no successor demoted, and managerAddress answers as a manager."""
        return self.manager_address_answers and self.listed == (self.managers, self.nodes) and not self.not_serving

    @property
    def replicas_held(self) -> bool:
        if self.outage_expected:
            return True
        return all(low >= wanted - 1 for counts in (self.min_running, self.min_serving)
                   for low, wanted in counts.values() if wanted >= 2)

    @property
    def held(self) -> bool:
        """Issue 11's bar: everything kept, `up` succeeded, replicas - 1 running and serving in
        every sample, and, with several managers, a leader in every sample. A lone manager
        cannot have one while its own Docker restarts or its successor restores the state: those
        samples are counted and shown, and what they cost is in the serving counts."""
        if self.expected_refusal:
            return (self.result.error is not None and self.expected_refusal in str(self.result.error)
                    and self.data_survived)
        return (self.result.error is None and self.swarm_survived and self.services_survived
                and self.secrets_survived and self.data_survived and self.replicas_held
                and self.membership_held and (self.leaderless_samples == 0 or self.managers < 2)
                and not self.leftovers and self.checks_held)


class Lifecycle:
    """One engine over the sandbox, for a chain of `up`s on one cluster."""

    def __init__(self, sandbox: Sandbox, workdir: Path, stack_file: Path):
        self.sandbox = sandbox
        self.stack_file = stack_file
        self.engine: Engine
        self.engine, self.cloud, self.commands = sandbox_engine(sandbox, workdir)
        self.config: dict = {}

    def up(self, config: dict, *, replace: tuple[str, ...] = (),
           upgrade: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext) -> RunResult:
        urns = [self.engine.urn(name) for name in replace]
        # The harness logs in to the droplets with its own key (tests/sandbox/harness.py): to the
        # program it is an operator's key, which the nodes' access commands keep authorized.
        harness_key = self.sandbox.public_key.strip()
        operators = config.get("sshAuthorizedKeys", [])
        if harness_key not in operators:
            config = {**config, "sshAuthorizedKeys": [harness_key, *operators]}
        with upgrade():
            result = self.engine.up(lambda monitor: run_program(STACK, config, monitor=monitor), replace=urns)
        self.config = config
        return result

    def volume_host(self):
        """The host the database volume is attached to, and the volume's mount path."""
        mount = next(p["volume"]["mountPath"] for p in self.config["nodePools"].values() if p.get("volume"))
        for volume in self.cloud.volumes.values():
            host = self.cloud.droplets.get(volume["droplet"] or "")
            if host is not None and volume["name"] == "prod-manager-1-data":
                return host, mount
        return None, mount

    def write_marker(self) -> str:
        token = secrets.token_hex(8)
        host, mount = self.volume_host()
        assert host is not None, "no droplet holds the database volume"
        host.exec(f"echo {token} > {mount}/{MARKER}")
        return token

    def read_marker(self) -> str:
        host, mount = self.volume_host()
        if host is None:
            return ""
        return host.exec(f"cat {mount}/{MARKER}", check=False).stdout.strip()

    def change(self, scenario: Scenario) -> Outcome:
        """Apply `scenario`'s change to the cluster as a second `up`, watched every second."""
        before = swarm_snapshot(self.cloud)
        token = self.write_marker()
        new_config = scenario.change(self.config)
        for name in scenario.lost:
            self.lose(name)
        started = time.monotonic()
        problems: list[str] = []
        killed_problems: list[str] = []
        with Sampler(self.cloud) as sampler:
            if scenario.interrupt:
                problems += self._interrupted_up(new_config, scenario)
            if scenario.killed_mid_retirement:
                killed_problems = self._killed_up(new_config, scenario)
            result = self.up(new_config, replace=scenario.replace, upgrade=scenario.upgrade)
            if scenario.new_swarm:
                result = self._new_swarm(new_config, result)
        end = time.monotonic()
        if scenario.interrupt and result.error is None:
            manager = self.cloud.host_at(next(iter(self.cloud.reserved)))
            problem = takes_tasks(manager, scenario.interrupt, f"{STACK}_api") if manager else "no manager"
            problems += [problem] if problem else []
        after = swarm_snapshot(self.cloud)
        if scenario.new_swarm and after and before:
            # A new swarm is the point: judged by the services' and secrets' names instead.
            before = {**before, "cluster": after["cluster"],
                      "services": {name: {**spec, "ID": after["services"].get(name, {}).get("ID")}
                                   for name, spec in before["services"].items()}}
        outcome = self._outcome(scenario.name, result, before, after, token, sampler.samples, started, end, problems)
        outcome.expected_refusal = scenario.refusal
        if scenario.new_swarm:
            outcome.outage_expected = True
            # At the end every service runs all its replicas again.
            short = [f"{name} runs {spec['Replicas']}" for name, spec in (after or {}).get("services", {}).items()
                     if spec["Replicas"].split("/")[0] != spec["Replicas"].split("/")[1].split()[0]]
            outcome.leftovers = short
            outcome.problems.extend(short)
        if scenario.killed_mid_retirement:
            outcome.leftovers = killed_problems + self._left_behind()
            outcome.problems.extend(outcome.leftovers)
        if scenario.check is not None:
            found = scenario.check(self)
            outcome.problems.extend(found)
            outcome.checks_held = not found
        return outcome

    def _killed_up(self, config: dict, scenario: Scenario) -> list[str]:
        """The `up` killed once a retirement holds a slot with its node drained: every SSH
        session the run has open gets SIGKILL, as a killed `pulumi up` drops them."""
        seen = threading.Event()

        def watch() -> None:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and not seen.is_set():
                manager = self._manager()
                if manager is not None:
                    held = manager.exec(f"ls -d {RETIRE_LOCK_DIR}/*.lock.* 2>/dev/null; "
                                        "docker node ls --format '{{.Availability}}' | grep -c Drain || true",
                                        check=False, timeout=20).stdout.split()
                    if len(held) >= 2 and held[-1] != "0":
                        _kill_own_ssh_sessions()
                        seen.set()
                        return
                time.sleep(0.3)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        killed = self.up(config, replace=scenario.replace, upgrade=scenario.upgrade)
        seen.set()
        watcher.join()
        if killed.error is None:
            return ["the up to be killed finished before a retirement held its slot: nothing was killed"]
        return []

    def _new_swarm(self, config: dict, stopped: RunResult) -> RunResult:
        """The documented way back for a lone manager lost without a swarm-state backup."""
        if stopped.error is None or "not initialising a new, empty swarm" not in str(stopped.error):
            return stopped  # not the stop at init the docs describe: judged as it is
        host, mount = self.volume_host()
        assert host is not None, "no droplet holds the database volume"
        host.exec(f"rm -rf {mount}/.swarm-state")
        # A new swarm, which the workers join; the state still lists the old swarm's services,
        # so the convergence check finds none of them ("no such service"): expected, the refresh
        # that follows drops them and the next `up` creates them.
        first = self.up(config)
        if first.error is not None and "no such service" not in str(first.error):
            return first
        self.engine.refresh()
        return self.up(config)

    def _manager(self):
        with self.cloud.lock:
            addresses = list(self.cloud.reserved)
        return self.cloud.host_at(addresses[0]) if addresses else None

    def _left_behind(self) -> list[str]:
        """What a killed run must not leave: a retirement slot held, a node not Active."""
        manager = self._manager()
        if manager is None:
            return ["no manager at the reserved IP to ask"]
        out = manager.exec(f"ls -d {RETIRE_LOCK_DIR}/*.lock.* 2>/dev/null; echo ---; "
                           "docker node ls --format '{{.Hostname}} {{.Availability}}'", check=False, timeout=20).stdout
        slots, nodes = out.split("---", 1)
        problems = [f"a retirement slot is still held: {slot}" for slot in slots.split()]
        problems += [f"{line.split()[0]} is {line.split()[1]}, not Active" for line in nodes.strip().splitlines()
                     if len(line.split()) == 2 and line.split()[1] != "Active"]
        return problems

    def lose(self, name: str) -> None:
        """A host failure: the droplet `name` destroyed outside Pulumi, then what the operator
        does (docs/how-to.md): `pulumi refresh` of the droplets and the reserved IP's assignment,
        once the surviving managers (if any) have elected a leader."""
        self.cloud.fail_host(name)
        deadline = time.monotonic() + 60
        managers = sum(int(pool.get("count", 0)) for pool in self.config["nodePools"].values()
                       if pool.get("role") == "manager")
        while managers >= 2 and not _answers(self.cloud) and time.monotonic() < deadline:
            time.sleep(1)
        self.refresh()

    def refresh(self) -> list:
        return self.engine.refresh(target=[urn for urn, res in self.engine.state.items() if res.type in REFRESHED_TYPES])

    def _interrupted_up(self, config: dict, scenario: Scenario) -> list[str]:
        """The first `up`, cut off while `scenario.interrupt` drains: it must fail there."""
        with DrainCutter(self.cloud, scenario.interrupt) as cutter:
            first = self.up(config, replace=scenario.replace, upgrade=scenario.upgrade)
        if not cutter.cut:
            return [f"the first up was never cut off in the drain of {scenario.interrupt}; "
                    f"{cutter.seen}"]
        print(f"    {cutter.cut}; the up: {_first_line(str(first.error))}", file=sys.stderr, flush=True)
        return [] if first.error is not None else ["the up cut off in the drain did not fail"]

    def _outcome(self, name, result, before, after, token, samples, started, end, problems=None) -> Outcome:
        not_serving = list(problems or [])
        problems = list(not_serving)
        swarm_survived = bool(after) and after["cluster"] == before["cluster"]
        if not after:
            problems.append("no manager answers")
        elif not swarm_survived:
            problems.append("a new swarm was initialised")
        lost = [s for s, spec in before["services"].items() if after.get("services", {}).get(s, {}).get("ID") != spec["ID"]]
        if lost:
            problems.append("services lost or recreated: " + ", ".join(lost))
        declared = [r.id for r in self.engine.state.values() if r.type == "docker:index/secret:Secret"]
        missing = [s for s in declared if s not in after.get("secrets", {}).values()]
        if missing:
            problems.append(f"{len(missing)} declared secrets missing from the swarm")
        data = self.read_marker() == token
        if not data:
            problems.append("the database volume's data is gone")
        hostnames = node_names(self.config)
        # The swarm marks a node Down only after missed heartbeats: a droplet powered off and on
        # again between two samples counts for as long as it was off, as the cloud saw it.
        powered_off = [(h, stop - off) for h, off, stop in self.cloud.outages if off >= started]
        unavailable = max(
            [(h, longest_unavailable(samples, h, end)) for h in hostnames] + powered_off, key=lambda item: item[1]
        )
        wanted = {s: int(spec["Replicas"].split("/", 1)[1].split()[0]) for s, spec in before["services"].items()}
        # A sample no manager answered (a lone manager's Docker restarting) says nothing about the
        # tasks, which keep running on the workers: it counts among the leaderless samples instead.
        answered = [sample for sample in samples if sample.quorum or sample.running]
        min_running = {s: (min((sample.running.get(s, 0) for sample in answered), default=0), n) for s, n in wanted.items()}
        for service, (low, n) in min_running.items():
            if n >= 2 and low < n - 1:
                problems.append(f"{service} fell to {low} of {n} running tasks")
                problems.append(_lowest(service, answered, result.steps, started))
        # What the hosts serve, counted on every sample: a task the manager still lists as
        # running on a node that left the swarm is not serving anything.
        min_serving = {s: (min((sample.serving.get(s, 0) for sample in samples), default=0), n) for s, n in wanted.items()}
        for service, (low, n) in min_serving.items():
            if n >= 2 and low < n - 1:
                problems.append(f"{service}: only {low} of {n} containers serving on the hosts")
        leaderless = sum(not sample.quorum for sample in samples)
        managers = sum(int(pool.get("count", 0)) for pool in self.config["nodePools"].values()
                       if pool.get("role") == "manager")
        if leaderless and managers >= 2:
            problems.append(f"{leaderless} samples found no manager with a leader elected")
        listed = (sum(bool(node.get("ManagerStatus")) for node in after.get("nodes", [])), len(after.get("nodes", [])))
        nodes = len(hostnames)
        if after and listed != (managers, nodes):
            problems.append(f"docker node ls lists {listed[0]} managers and {listed[1]} nodes; "
                            f"the configuration has {managers} and {nodes}")
        # Every node takes tasks afterwards: none is left drained or paused (a drain cut off
        # half-way by an earlier run included).
        idle = sorted(f"{node.get('Hostname')} ({node.get('Status')}, {node.get('Availability')})"
                      for node in after.get("nodes", [])
                      if node.get("Status") != "Ready" or node.get("Availability") != "Active")
        if idle:
            not_serving.append("nodes not Ready and Active: " + ", ".join(idle))
            problems.append(not_serving[-1])
        address_answers = self._manager_address_answers()
        if not address_answers:
            problems.append("managerAddress (the reserved IP) does not answer as a swarm manager")
        if result.error is not None:
            problems.append("up failed: " + _first_line(str(result.error), limit=1200))
        droplets = sorted({s.name for s in result.steps if s.op == "replace" and s.type.endswith(":Droplet")})
        replaced = droplets or sorted({s.name for s in result.steps if s.op == "replace"})
        return Outcome(name, result, result.summary(), replaced, swarm_survived, not lost, not missing, data,
                       unavailable, min_running, end - started, problems, leaderless, min_serving, managers,
                       listed, nodes, address_answers, not_serving)

    def _manager_address_answers(self) -> bool:
        """Whether the host at the reserved IP (managerAddress, where the Docker provider, the
        operators and every manager command go) answers as a manager of the swarm."""
        with self.cloud.lock:
            addresses = list(self.cloud.reserved)
        for address in addresses or [None]:
            host = self.cloud.host_at(address) if address else None
            if host is None:
                return False
            result = host.exec("docker info --format '{{.Swarm.ControlAvailable}}'", check=False, timeout=20)
            if result.stdout.strip() != "true":
                return False
        return True

    def close(self) -> None:
        self.cloud.close()


def _answers(cloud: Cloud) -> bool:
    """Whether a manager answers with a leader elected (`docker node ls` hangs without one)."""
    try:
        return bool(swarm_snapshot(cloud))
    except subprocess.TimeoutExpired:
        return False


def _kill_own_ssh_sessions() -> None:
    """SIGKILL every `ssh` process this process started (its descendants, by PID; nothing else)."""
    children: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1: stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
        names[int(entry.name)] = name
    todo, found = [os.getpid()], []
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            todo.append(child)
            if names.get(child) == "ssh":
                found.append(child)
    for pid in found:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _lowest(service: str, samples: list[Sample], steps, started: float) -> str:
    """When `service` was lowest, what the engine was doing and where its tasks were: enough to
    tell a scheduling problem from a slow host in a CI log."""
    if not samples:
        return f"  {service}: no sample was answered by a manager"
    low = min(samples, key=lambda sample: sample.running.get(service, 0))
    busy = [f"{s.op} {s.name}" for s in steps if s.op != "same" and s.started <= low.at <= s.started + s.seconds]
    return (f"  {service} at +{low.at - started:.1f} s, during: {', '.join(busy) or 'no step'}; "
            f"nodes Ready and Active: {', '.join(sorted(low.available))}; its tasks:\n"
            + "\n".join("    " + line for line in low.tasks.get(service, "(not read)").splitlines()))


def _first_line(text: str, limit: int = 160) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def run_scenario(sandbox: Sandbox, workdir: Path, stack_file: Path, scenario: Scenario) -> Outcome:
    """A fresh cluster from prod's first `up` (the scenario's baseline), then its change."""
    life = Lifecycle(sandbox, workdir, stack_file)
    try:
        first = life.up(scenario.baseline(base_config(stack_file)))
        if first.error is not None:
            raise RuntimeError(f"{scenario.name}: the first up failed: {first.error}")
        return life.change(scenario)
    finally:
        life.close()
