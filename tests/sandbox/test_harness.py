"""The sandbox harness itself: hosts, SSH, a swarm formed by hand, replacement, teardown."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.sandbox.conftest import REFERENCE_HOSTS
from tests.sandbox.harness import (
    DEFAULT_IMAGE,
    Host,
    Sandbox,
    leftovers,
    pids_in_namespace,
    wait_for,
)

REPO = Path(__file__).resolve().parents[2]
# Sandboxes of their own for the teardown tests: they must not collide with sandbox_five.
SPARE_PREFIX = "swsbt"
SPARE_SUBNET = "10.231.1.0/24"


def node_states(manager: Host) -> dict[str, str]:
    out = manager.docker("node", "ls", "--format", "{{.Hostname}} {{.Status}}").stdout
    return dict(line.split() for line in out.splitlines())


def leave_swarm(manager: Host, workers: list[Host]) -> None:
    """Leave any swarm: the shared sandbox comes and goes without one."""
    with ThreadPoolExecutor() as pool:  # each leave takes about a second
        list(pool.map(lambda w: w.docker("swarm", "leave", "--force", check=False), workers))
    manager.docker("swarm", "leave", "--force", check=False)


def test_five_hosts_each_with_own_hostname_dockerd_and_address(sandbox_five: Sandbox) -> None:
    assert set(sandbox_five.hosts) == set(REFERENCE_HOSTS)  # replaced hosts move to the end
    engine_ids = set()
    for name, host in sandbox_five.hosts.items():
        out = host.ssh("hostname; docker info --format '{{.Name}} {{.ID}}'; "
                       "ip -4 -o addr show dev eth0; ip route").stdout.splitlines()
        assert out[0] == name
        docker_name, engine_id = out[1].split()
        assert docker_name == name
        engine_ids.add(engine_id)
        assert f"inet {host.ip}/24" in out[2]
        assert not any(line.startswith("default") for line in out[3:]), "a host has a route out"
        assert host.docker("image", "inspect", DEFAULT_IMAGE, check=False).returncode == 0
        assert sandbox_five.host_by_ip(host.ip) is host
        # First boot is over, as on a droplet that scripts reach (if cloud-init is installed).
        host.ssh("! command -v cloud-init || cloud-init status --wait", timeout=30)
    assert len(engine_ids) == 5, "hosts share a dockerd"


def test_hosts_reach_each_other_and_nothing_else(sandbox_five: Sandbox) -> None:
    hosts = list(sandbox_five.hosts.values())
    for host in hosts:
        others = " ".join(h.ip for h in hosts if h is not host)
        host.ssh(f"for ip in {others}; do timeout 3 bash -c \"</dev/tcp/$ip/22\"; done")
        unreachable = host.ssh("ip route get 1.1.1.1", check=False)
        assert unreachable.returncode != 0 and "unreachable" in unreachable.stderr


def test_swarm_formed_over_ssh_runs_an_overlay_service(
        sandbox_five: Sandbox, timings: dict[str, float]) -> None:
    manager = sandbox_five.hosts["prod-manager-1"]
    workers = [host for host in sandbox_five.hosts.values() if host is not manager]
    leave_swarm(manager, workers)  # whatever other modules left behind
    started = time.monotonic()
    try:
        manager.docker("swarm", "init", "--advertise-addr", manager.ip)
        token = manager.docker("swarm", "join-token", "-q", "worker").stdout.strip()
        for worker in workers:  # the token goes on stdin, never into a command line
            worker.ssh(f'docker swarm join --token "$(cat)" {manager.ip}:2377', stdin=token)
        wait_for(lambda: list(node_states(manager).values()) == ["Ready"] * 5, "5 Ready nodes")
        timings["swarm: init + 4 joins over ssh, 5 nodes Ready"] = time.monotonic() - started
        assert set(node_states(manager)) == set(REFERENCE_HOSTS)

        manager.docker("network", "create", "--driver", "overlay", "probe-net")
        started = time.monotonic()
        # `sleep` as PID 1 ignores SIGTERM: without a short grace period every stop of a
        # task (and of a dockerd running tasks) waits the default 10 s.
        manager.docker("service", "create", "--detach", "--name", "probe", "--replicas", "4",
                       "--network", "probe-net", "--stop-grace-period", "1s",
                       "--no-resolve-image", DEFAULT_IMAGE, "sleep", "3600")
        running = lambda: manager.docker(  # noqa: E731
            "service", "ls", "--filter", "name=probe", "--format", "{{.Replicas}}"
        ).stdout.strip() == "4/4"
        started = time.monotonic()
        wait_for(running, "4/4 replicas", timeout=30)
        timings["swarm: 4-replica overlay service converged"] = time.monotonic() - started
        tasks = manager.docker("service", "ps", "probe", "--filter", "desired-state=running",
                               "--format", "{{.ID}} {{.Node}}").stdout.split("\n")
        task_nodes = dict(line.split() for line in tasks if line)
        assert len(set(task_nodes.values())) >= 2, f"tasks not spread: {task_nodes}"

        # Overlay traffic crosses hosts: a task pings every task's overlay address.
        addresses = [manager.docker(
            "inspect", task, "--format",
            '{{range .NetworksAttachments}}{{if eq .Network.Spec.Name "probe-net"}}'
            '{{index .Addresses 0}}{{end}}{{end}}').stdout.strip().split("/")[0]
            for task in task_nodes]
        prober = sandbox_five.hosts[next(iter(task_nodes.values()))]
        container = prober.docker("ps", "-q", "--filter",
                                  "label=com.docker.swarm.service.name=probe").stdout.split()[0]
        for address in addresses:
            prober.docker("exec", container, "ping", "-c1", "-W3", address)

        # A worker's dockerd restarts in swarm mode; its node and the replicas come back.
        worker = sandbox_five.hosts[next(n for n in task_nodes.values() if n != manager.name)]
        started = time.monotonic()
        worker.restart_dockerd()
        timings["swarm: restart of a worker's dockerd"] = time.monotonic() - started
        wait_for(lambda: node_states(manager)[worker.name] == "Ready", "restarted node Ready")
        wait_for(running, "4/4 replicas after restart")
        timings["swarm: node Ready and 4/4 again after restart"] = time.monotonic() - started
    finally:
        leave_swarm(manager, workers)


def test_dockerd_stops_and_starts_while_sshd_stays(
        sandbox_five: Sandbox, timings: dict[str, float]) -> None:
    host = sandbox_five.hosts["prod-backoffice-1"]
    started = time.monotonic()
    host.stop_dockerd()
    timings["dockerd: stop (not in swarm)"] = time.monotonic() - started
    assert host.docker("info", check=False).returncode != 0
    assert host.ssh("hostname").stdout.strip() == host.name
    started = time.monotonic()
    host.start_dockerd()
    timings["dockerd: start"] = time.monotonic() - started
    assert host.docker("info", "--format", "{{.Name}}").stdout.strip() == host.name


def test_destroyed_host_is_replaced_by_a_fresh_one_with_the_same_name(
        sandbox_five: Sandbox, timings: dict[str, float]) -> None:
    name = "prod-ml-3"
    old = sandbox_five.hosts[name]
    old_engine = old.docker("info", "--format", "{{.ID}}").stdout.strip()
    old.docker("volume", "create", "data-of-the-old-droplet")

    started = time.monotonic()
    sandbox_five.destroy_host(name)
    timings["host: destroy"] = time.monotonic() - started
    assert name not in sandbox_five.hosts
    assert f"netns {old.netns}" not in leftovers(sandbox_five.prefix)
    assert not old.dir.exists()
    with pytest.raises(KeyError):
        sandbox_five.host_by_ip(old.ip)

    started = time.monotonic()
    new = sandbox_five.add_host(name)
    timings["host: add a replacement (image loaded)"] = time.monotonic() - started
    assert list(sandbox_five.hosts)[-1] == name
    assert new.ip != old.ip and sandbox_five.host_by_ip(new.ip) is new
    assert new.ssh("hostname").stdout.strip() == name
    assert new.docker("info", "--format", "{{.ID}}").stdout.strip() != old_engine
    assert new.docker("volume", "ls", "-q").stdout.strip() == ""
    assert new.docker("image", "inspect", DEFAULT_IMAGE, check=False).returncode == 0


def test_a_hosts_etc_and_var_are_its_own_kept_across_a_power_cycle_and_gone_with_it(sandbox_five: Sandbox) -> None:
    """Like a droplet's disk: what a program leaves in /etc or /var (a cron entry, a folder under
    /var/lib) is seen by no other host and not by the machine, survives a reboot, and a
    successor of the same name starts without it (issue 20: the scheduler follows the manager)."""
    name = "prod-ml-2"
    host, other = sandbox_five.hosts[name], sandbox_five.hosts["prod-ml-1"]
    host.ssh("mkdir -p /var/lib/left-behind && echo mine >/var/lib/left-behind/file && "
             "echo '# left behind' >/etc/cron.d/left-behind")
    for path in ("/var/lib/left-behind/file", "/etc/cron.d/left-behind"):
        assert other.ssh(f"test -e {path}", check=False).returncode == 1, f"{path} seen on another host"
        assert not Path(path).exists(), f"{path} written on the machine's own disk"
    assert host.ssh("getent passwd root && test -e /etc/ssh && test -d /var/lib/dpkg", check=False).returncode == 0, \
        "the machine's /etc and /var show through"
    host.power_cycle()
    assert host.ssh("cat /var/lib/left-behind/file /etc/cron.d/left-behind").stdout == "mine\n# left behind\n"
    sandbox_five.destroy_host(name)
    successor = sandbox_five.add_host(name)
    assert successor.ssh("test -e /var/lib/left-behind || test -e /etc/cron.d/left-behind", check=False).returncode == 1
    # Nor what the program leaves on a node, should the machine carry it (a run outside the sandbox).
    assert successor.ssh("test -e /var/lib/swarm-jobs || test -e /etc/cron.d/swarm-jobs", check=False).returncode == 1


def test_host_with_extra_daemon_json_advertises_generic_resources(sandbox_five: Sandbox) -> None:
    gpu = sandbox_five.add_host("prod-gpu-1", {"node-generic-resources": ["GPU=fake-uuid-1"]})
    try:
        config = json.loads(gpu.ssh("cat /etc/docker/daemon.json").stdout)
        assert config["node-generic-resources"] == ["GPU=fake-uuid-1"]
        gpu.docker("swarm", "init", "--advertise-addr", gpu.ip)
        resources = json.loads(gpu.docker(
            "node", "inspect", "self", "--format",
            "{{json .Description.Resources.GenericResources}}").stdout)
        assert resources == [{"NamedResourceSpec": {"Kind": "GPU", "Value": "fake-uuid-1"}}]
    finally:
        sandbox_five.destroy_host("prod-gpu-1")


def test_close_leaves_nothing_behind(sandbox_workdir: Path, timings: dict[str, float]) -> None:
    sandbox = Sandbox(sandbox_workdir / "spare", subnet=SPARE_SUBNET, prefix=SPARE_PREFIX)
    try:
        hosts = sandbox.add_hosts(["spare-1", "spare-2"])
        sandbox.load_image()
        hosts[0].docker("run", "-d", DEFAULT_IMAGE, "sleep", "3600")  # leaves a shim running
        pid_namespaces = [h.pid_namespace for h in hosts]
        assert all(pids_in_namespace("pid", ino) for ino in pid_namespaces)
        assert leftovers(SPARE_PREFIX)
    finally:
        started = time.monotonic()
        sandbox.close()
        timings["teardown of 2 hosts (one running a container)"] = time.monotonic() - started
    assert leftovers(SPARE_PREFIX) == []
    assert not any(pids_in_namespace("pid", ino) for ino in pid_namespaces)
    assert not (sandbox_workdir / "spare/hosts").exists()
    with pytest.raises(Exception, match="closed"):
        sandbox.add_host("spare-3")


# Runs a sandbox in another process that is then killed.
_VICTIM = """
import sys, time
from pathlib import Path
from tests.sandbox.harness import Sandbox
sandbox = Sandbox(Path(sys.argv[1]), subnet=sys.argv[2], prefix=sys.argv[3])
sandbox.add_host("victim-1")
print("ready", flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killed_run_is_cleaned_up(signum: signal.Signals, sandbox_workdir: Path) -> None:
    """SIGTERM: the run tears itself down. SIGKILL: the next sandbox with the prefix does."""
    victim = subprocess.Popen(
        [sys.executable, "-c", _VICTIM, str(sandbox_workdir / "spare"), SPARE_SUBNET,
         SPARE_PREFIX], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert victim.stdout is not None
    try:
        assert victim.stdout.readline() == "ready\n"
        netns = Path(f"/run/netns/{SPARE_PREFIX}-victim-1")
        pids = pids_in_namespace("net", netns.stat().st_ino)
        pid_namespaces = {os.stat(f"/proc/{pid}/ns/pid").st_ino for pid in pids} - {
            os.stat("/proc/self/ns/pid").st_ino}
        assert pid_namespaces
    finally:
        victim.send_signal(signum)
        victim.wait(timeout=60)
        victim.stdout.close()
    assert victim.returncode == -signum
    if signum == signal.SIGKILL:
        assert leftovers(SPARE_PREFIX)
        assert all(pids_in_namespace("pid", ino) for ino in pid_namespaces)
        Sandbox(sandbox_workdir / "spare", subnet=SPARE_SUBNET, prefix=SPARE_PREFIX).close()
    assert leftovers(SPARE_PREFIX) == []
    assert not any(pids_in_namespace("pid", ino) for ino in pid_namespaces)
