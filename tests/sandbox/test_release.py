"""Deploying real images on a real swarm (issue 7), driven by the program itself: bind-mount
folders prepared on the nodes, `pulumi up` waiting for convergence and reporting the tasks' own
errors when there is none, and an image release that restarts nothing else.

Three sandbox hosts of their own (prefix swrel): a manager and two `type=app` workers. Bind
sources live under /run, which is each sandbox host's own tmpfs, so a folder prepared on one host
does not exist on the others, as on separate droplets.
"""

from __future__ import annotations

import time

import pytest
import yaml

from tests.pulumi_program import run_program
from tests.sandbox.executing_cloud import SandboxCloud
from tests.sandbox.harness import DEFAULT_IMAGE, Sandbox

PREFIX, SUBNET = "swrel", "10.233.70.0/24"
HOSTS = ("rel-manager-1", "rel-app-1", "rel-app-2")
APP_HOSTS = ["rel-app-1", "rel-app-2"]
RELEASE_IMAGE = "swarm-sandbox/busybox:2"  # the same image under a second tag, on every host
DATA = "/run/swarm-release"
FAILING_TIMEOUT = "12s"

CONFIG = {
    "region": "fra1",
    "adminCidrs": [SUBNET],
    "nodePools": {
        "manager": {"role": "manager", "count": 1, "size": "s-2vcpu-4gb", "labels": {"type": "database"}},
        # Sized far beyond this machine: the capacity check (which models the droplet) lets a
        # service through that the real nodes cannot hold, to see swarm refuse it.
        "app": {"role": "worker", "count": 2, "size": "m-32vcpu-256gb", "labels": {"type": "app"}},
    },
    "bindMounts": {f"{DATA}/store": {"owner": "123:456", "mode": "0750"}},
    "convergeTimeout": "90s",
    # The local image's name is on Docker Hub, as Docker reads it: every service pulls with these
    # (and, with no route out, falls back to the local image, as always in the sandbox).
    "registry": {"server": "docker.io", "username": "sandbox"},
    "registryPassword": "first-password",
}


def service(**fields) -> dict:
    """A long-running service on the local image; `sleep` ignores SIGTERM, hence the short grace."""
    return {"image": DEFAULT_IMAGE, "command": ["sleep", "86400"], "stop_grace_period": "1s", **fields}


def on_app(**deploy) -> dict:
    return {"placement": {"constraints": ["node.labels.type == app"]}, **deploy}


SERVICES = {
    "store": service(volumes=[f"{DATA}/store:/data"], deploy=on_app(replicas=2)),
    "web": service(deploy=on_app(replicas=2, update_config={"parallelism": 2, "monitor": "1s"})),
    "agent": service(deploy={"mode": "global", "placement": {"constraints": ["node.role == worker"]}}),
}
# The same shape as store, for a folder the program is kept from preparing at first.
VAULT = service(volumes=[f"{DATA}/vault:/data"], deploy=on_app(replicas=1))
CANNOT_CONVERGE = {
    # Fits a m-32vcpu-256gb droplet, not the machine the sandbox runs on.
    "hungry": service(deploy=on_app(resources={"reservations": {"memory": "200G"}})),
    "ghost": service(image="swarm-sandbox/missing:1", deploy=on_app()),
}


class ReleaseCloud(SandboxCloud):
    """The sandbox cloud, able to leave out the program's folder preparation (to show what swarm
    does without it)."""

    prepare_folders = True

    def _run_command(self, args):
        if not self.prepare_folders and args.name.endswith("-folders"):
            return [f"{args.name}-id", {**args.inputs, "stdout": "", "stderr": ""}]
        return super()._run_command(args)


class Release:
    def __init__(self, sandbox: Sandbox, workdir):
        self.sandbox = sandbox
        self.cloud = ReleaseCloud(sandbox)  # one cloud: every run is `pulumi up` again
        self.stack_file = workdir / "rel.yaml"
        self.manager = sandbox.hosts["rel-manager-1"]

    def up(self, services: dict, **config):
        self.stack_file.write_text(yaml.safe_dump({"version": "3.8", "services": services}))
        started = time.monotonic()
        run = run_program("rel", {**CONFIG, "stackFile": str(self.stack_file), **config}, mocks=self.cloud)
        return run, time.monotonic() - started

    def tasks(self, name: str) -> dict[str, tuple[str, str, str]]:
        """Task ID -> (node, image, state) of the service's tasks meant to run."""
        out = self.manager.docker("service", "ps", f"rel_{name}", "--no-trunc", "--filter", "desired-state=running",
                                  "--format", "{{.ID}} {{.Node}} {{.Image}} {{.CurrentState}}").stdout
        return {task: (node, image, state) for task, node, image, state, *_ in map(str.split, out.splitlines())}

    def started_at(self, name: str) -> dict[str, str]:
        """Task ID -> when its container started, read on the node that runs it."""
        times = {}
        for task, (node, _, _) in self.tasks(name).items():
            container = self.manager.docker("inspect", "--format", "{{.Status.ContainerStatus.ContainerID}}", task).stdout.strip()
            times[task] = self.sandbox.hosts[node].docker("inspect", "--format", "{{.State.StartedAt}}", container).stdout.strip()
        return times

    def version(self, name: str) -> int:
        return int(self.manager.docker("service", "inspect", "--format", "{{.Version.Index}}", f"rel_{name}").stdout)

    def folder(self, host: str, path: str) -> str | None:
        """`uid:gid mode` of a path on a host, None when it does not exist there."""
        result = self.sandbox.hosts[host].ssh(f"stat -c '%u:%g %a' {path}", check=False)
        return result.stdout.strip() if result.returncode == 0 else None


@pytest.fixture(scope="module")
def release(sandbox_workdir, tmp_path_factory, timings):
    started = time.monotonic()
    with Sandbox(sandbox_workdir / "release", subnet=SUBNET, prefix=PREFIX) as sandbox:
        sandbox.add_hosts(HOSTS)
        sandbox.load_image()
        for host in sandbox.hosts.values():
            host.docker("tag", DEFAULT_IMAGE, RELEASE_IMAGE)
        timings["release: 3 hosts up, images loaded and tagged"] = time.monotonic() - started
        deployment = Release(sandbox, tmp_path_factory.mktemp("release"))
        run, seconds = deployment.up(SERVICES)
        assert run.error is None, run.error
        timings["release: first up (swarm formed, 3 services created and converged)"] = seconds
        yield deployment


def test_up_returns_once_every_task_runs_with_its_prepared_bind_mount(release):
    # No waiting here: `pulumi up` itself waited until every replica ran.
    store = release.tasks("store")
    assert sorted(node for node, _, state in store.values() if state == "Running") == APP_HOSTS
    assert sorted(node for node, _, state in release.tasks("agent").values() if state == "Running") == APP_HOSTS
    assert [state for _, _, state in release.tasks("web").values()] == ["Running", "Running"]
    for host in APP_HOSTS:
        assert release.folder(host, f"{DATA}/store") == "123:456 750"  # declared in swarm:bindMounts
    assert release.folder("rel-manager-1", f"{DATA}/store") is None  # store can never run there
    prepared = sorted(name for name, *_ in release.cloud.executed if name.endswith("-folders"))
    assert prepared == ["rel-app-1-folders", "rel-app-2-folders"]


def test_an_image_release_rolls_out_without_restarting_the_other_services(release, timings):
    untouched = {name: release.started_at(name) for name in ("store", "agent")}
    web_before = release.tasks("web")
    run, seconds = release.up(SERVICES, images={"web": RELEASE_IMAGE})
    assert run.error is None, run.error
    timings["release: image update of one service, rolled out and converged"] = seconds

    web = release.tasks("web")  # already complete when `up` returns
    assert sorted((node, image, state) for node, image, state in web.values()) == [
        (host, RELEASE_IMAGE, "Running") for host in APP_HOSTS]
    assert not web.keys() & web_before.keys()  # every web task is new
    for name, times in untouched.items():
        assert release.started_at(name) == times, f"{name} was restarted"


def test_rotated_registry_credentials_reach_every_service_without_restarting_a_task(release):
    names = ("store", "web", "agent")
    started, versions = {n: release.started_at(n) for n in names}, {n: release.version(n) for n in names}
    run, _ = release.up(SERVICES, images={"web": RELEASE_IMAGE}, registryPassword="second-password")
    assert run.error is None, run.error
    for name in names:
        assert release.version(name) > versions[name], f"{name} was not sent the new credentials"
        assert release.started_at(name) == started[name], f"{name} was restarted"


def test_without_its_folder_a_service_fails_with_the_task_error_and_starts_once_prepared(release, timings):
    services = {**SERVICES, "vault": VAULT}
    release.cloud.prepare_folders = False
    try:
        run, seconds = release.up(services, images={"web": RELEASE_IMAGE}, convergeTimeout=FAILING_TIMEOUT)
    finally:
        release.cloud.prepare_folders = True
    timings[f"release: unprepared bind mount reported (convergeTimeout {FAILING_TIMEOUT})"] = seconds
    message = str(run.error)
    assert "rel-converge failed on rel-manager-1" in message
    assert "rel_vault: 0 of 1 tasks running" in message
    assert f'task error: invalid mount config for type "bind": bind source path does not exist: {DATA}/vault' in message
    assert "rel_store" not in message and "rel_web" not in message  # the others converged
    assert all(release.folder(host, f"{DATA}/vault") is None for host in HOSTS)

    run, _ = release.up(services, images={"web": RELEASE_IMAGE})  # with the preparation
    assert run.error is None, run.error
    assert [state for _, _, state in release.tasks("vault").values()] == ["Running"]
    assert [release.folder(host, f"{DATA}/vault") is not None for host in HOSTS] == [False, True, True]


def test_a_service_that_cannot_converge_is_reported_with_its_tasks_errors(release, timings):
    memory = int(open("/proc/meminfo").read().split()[1]) * 1024
    assert memory < 200 * 1024**3, "the test needs a machine with less than the 200G the service reserves"
    run, seconds = release.up({**SERVICES, "vault": VAULT, **CANNOT_CONVERGE}, images={"web": RELEASE_IMAGE},
                              convergeTimeout=FAILING_TIMEOUT)
    timings[f"release: unschedulable and unpullable services reported (convergeTimeout {FAILING_TIMEOUT})"] = seconds
    message = str(run.error)
    assert "not every service converged after" in message
    assert "rel_hungry: 0 of 1 tasks running\n    task error: no suitable node (insufficient resources on" in message
    assert "rel_ghost: 0 of 1 tasks running" in message
    assert "task error: No such image: swarm-sandbox/missing:1" in message
    assert seconds < 60  # the configured timeout, not the default ten minutes
