"""`scripts/local-swarm`: a stack's cluster for real on this machine, kept between invocations.

`up` forms the stack's droplets as sandbox hosts (tests/sandbox/harness.py: a network namespace,
dockerd and sshd each) and runs the real program through the lifecycle engine
(tests/lifecycle/engine.py, with the sandbox as the cloud: tests/sandbox/lifecycle_cloud.py).
The hosts keep running when the command exits; the engine's state, the cloud's droplets and
volumes and the sandbox's hosts go to a state file (local_swarm_state.py), so the next `up`
diffs the edited config against it as `pulumi up` does and applies the difference. `down` removes
everything by the sandbox's prefix, whatever the state file says.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import subprocess
import time
import zlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.sandbox import local_swarm_state as state
from tests.sandbox.harness import Sandbox, SandboxError, host_public_key, missing_prerequisites, write_known_hosts
from tests.sandbox.harness_teardown import _acquire_lock, _remove_leftovers, leftovers
from tests.sandbox.lifecycle_cloud import Cloud, sandbox_engine, swarm_snapshot
from tests.sandbox.local_stack import IMAGE_LABEL, NOTE, Scale, write_local_stack

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MARKER = ".local-swarm"  # down removes a working directory only when it carries this file
CONVERGE_TIMEOUT = "2m"  # a service that cannot start fails `up` in minutes, not the default 10
IMAGES_SCRIPT = ("docker service ls -q | xargs -r docker service inspect --format "
                 f"'  {{{{.Spec.Name}}}}  {{{{index .Spec.TaskTemplate.ContainerSpec.Labels \"{IMAGE_LABEL}\"}}}}'")
MACHINE_MEMORY = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
SYMBOL = {"create": "+", "update": "~", "replace": "+-", "delete": "-"}


class Refused(Exception):
    """The command cannot run as asked; the message says why and what to do."""


@dataclass(frozen=True)
class Target:
    stack: str
    project_root: Path
    workdir: Path
    prefix: str
    subnet: str
    options: str = ""  # the command line's options, repeated in the commands it prints


def default_prefix(stack: str) -> str:
    """Names every namespace and link (at most 8 characters, see harness.Sandbox)."""
    return ("lsw" + "".join(c for c in stack.lower() if c.isalnum()))[:8]


def default_subnet(stack: str) -> str:
    """One /24 per stack name in 10.239.0.0/16, away from the sandbox suite's 10.231-10.233."""
    return f"10.239.{zlib.crc32(stack.encode()) % 250 + 1}.0/24"


def prerequisite_problems() -> list[str]:
    problems = missing_prerequisites()
    if any("root" in p for p in problems):
        problems = [p + ": run it with sudo" if "root" in p else p for p in problems]
    if len(problems) > (1 if os.geteuid() != 0 else 0):
        problems.append("install the sandbox packages: sudo .ci/sandbox-prereqs.sh (docker.io, openssh-server, "
                        "busybox-static, iproute2, kmod; no daemon is started in your namespace)")
    return problems


# --- config -------------------------------------------------------------------------------


def _encrypted(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"secure"}


def program_config(target: Target, sandbox: Sandbox, saved_secrets: dict[str, str]) -> tuple[dict, dict, list[str]]:
    """The config the program gets: Pulumi.<stack>.yaml's `swarm:` values, with the local stack
    file, generated values for secrets that are unset or encrypted (kept between runs), and the
    sandbox's login key among the operators' keys. Returns (config, secrets, notes)."""
    from swarm.__main__ import missing_secrets

    path = target.project_root / f"Pulumi.{target.stack}.yaml"
    document = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
    values = {key.split(":", 1)[1]: value for key, value in document.items() if key.startswith("swarm:")}
    notes = []
    dropped = sorted(key for key, value in values.items() if _encrypted(value))
    if dropped:
        notes.append("encrypted values need the Pulumi CLI and are left out here: " + ", ".join(dropped))
        values = {key: value for key, value in values.items() if key not in dropped}
    given = {name: value for name, value in (values.get("secrets") or {}).items() if not _encrypted(value)}
    wanted = set(missing_secrets(target.stack, target.project_root))
    wanted |= {name for name, value in (values.get("secrets") or {}).items() if _encrypted(value)}
    generated = {name: saved_secrets.get(name) or secrets.token_urlsafe(24) for name in sorted(wanted)}
    new = [name for name in generated if name not in saved_secrets]
    if new:
        notes.append("secrets without a value here, generated (and kept for the next runs): " + ", ".join(new))
    values["secrets"] = {**given, **generated}
    stack_file = target.project_root / values.get("stackFile", f"stacks/{target.stack}.yaml")
    images = values.pop("images", None) or {}
    scale = reservation_scale(values.get("nodePools") or {})
    if scale != Scale():
        notes.append(f"reservations scaled (CPUs x {scale.cpus:.2g}, memory x {scale.memory:.2g}) to this machine's "
                     f"{os.cpu_count()} CPUs and {MACHINE_MEMORY / 2**30:.0f} GiB, which every sandbox host reports: "
                     "the largest droplet has more")
    values["stackFile"] = str(write_local_stack(stack_file, target.workdir / "stack", images, scale))
    values["convergeTimeout"] = CONVERGE_TIMEOUT
    harness_key = sandbox.public_key.strip()
    values["sshAuthorizedKeys"] = [harness_key, *[k for k in values.get("sshAuthorizedKeys", []) if k != harness_key]]
    return values, generated, notes


def reservation_scale(pools: dict) -> Scale:
    """Below 1 when a pool's droplets have more vCPUs or memory than this machine (local_stack.py)."""
    from swarm.config.sizes import SIZES

    sizes = [SIZES[pool["size"]] for pool in pools.values() if isinstance(pool, dict) and pool.get("size") in SIZES]
    if not sizes:
        return Scale()
    return Scale(cpus=min(1.0, (os.cpu_count() or 1) / max(size.vcpus for size in sizes)),
                 memory=min(1.0, MACHINE_MEMORY / max(size.memory_bytes for size in sizes)))


def offline_check(target: Target) -> None:
    """Every check `pulumi preview` makes, on the user's own files (so that problems point at
    their lines), before anything boots."""
    from swarm.__main__ import plan

    text, fits = plan(target.stack, target.project_root)
    if not fits:
        raise Refused(f"{text}\n\nlocal-swarm: the stack's files have problems (above); nothing was changed")


# --- commands -----------------------------------------------------------------------------


def up(target: Target, say=print) -> int:
    started = time.monotonic()
    saved = state.read(target.workdir)
    offline_check(target)
    if saved is None:
        target.workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        target.workdir.chmod(0o700)
        (target.workdir / MARKER).write_text("scripts/local-swarm working directory: `down` removes it\n")
        say(f"local-swarm: forming {target.stack} on sandbox hosts ({target.subnet}, prefix {target.prefix})")
        sandbox = Sandbox(target.workdir, subnet=target.subnet, prefix=target.prefix)
    else:
        sandbox = attach(saved, target)
    result, cloud, generated = None, None, {}
    try:
        if not (saved or {}).get("sandbox", {}).get("images"):
            load_image(sandbox)
        config, generated, notes = program_config(target, sandbox, (saved or {}).get("secrets", {}))
        for note in [NOTE, *notes]:
            say("note: " + note)
        engine, cloud, _ = sandbox_engine(sandbox, target.workdir)
        if saved is not None and saved.get("engine"):
            state.load_engine(engine, saved["engine"])
            state.load_cloud(cloud, sandbox, saved["cloud"])
        from tests.pulumi_program import run_program

        say("local-swarm: running the program (the lifecycle engine plays `pulumi up`)...")
        logging.disable(logging.WARNING)  # the program's warnings were the offline check's
        result = engine.up(lambda monitor: run_program(target.stack, config, monitor=monitor))
    finally:
        record = sandbox.detach()
        if cloud is not None:
            state.write(target.workdir, {
                "stack": target.stack, "project_root": str(target.project_root), "sandbox": record,
                "engine": state.dump_engine(engine), "cloud": state.dump_cloud(cloud), "secrets": generated,
            })
        elif saved is not None:
            state.write(target.workdir, {**saved, "sandbox": record})
        else:
            state.write(target.workdir, {"stack": target.stack, "sandbox": record, "engine": None, "cloud": None,
                                         "secrets": {}})
    say("")
    say(changes(result.steps, first=not (saved or {}).get("engine")))
    summary = result.summary()
    say(f"engine: {summary['create']} created, {summary['update']} updated, {summary['replace']} replaced, "
        f"{summary['delete']} deleted in {result.seconds:.0f} s")
    if result.error is not None:
        say(f"\nlocal-swarm: up failed: {result.error}\nThe state keeps what was done: fix the cause and run up "
            f"again, or remove everything with: sudo scripts/local-swarm down {target.stack}{target.options}")
    say(show(target, cloud))
    say(f"local-swarm: up took {time.monotonic() - started:.0f} s")
    return 0 if result.error is None else 1


def attach(saved: dict, target: Target) -> Sandbox:
    try:
        return Sandbox.attach(saved["sandbox"])
    except SandboxError as error:
        if "is running" in str(error):  # the prefix's lock: another command holds this sandbox
            raise Refused(f"local-swarm: another local-swarm command on {target.stack} is running; wait for it") from None
        raise Refused(f"local-swarm: the {target.stack} local swarm is recorded but not running ({error}); "
                      f"remove what is left with: sudo scripts/local-swarm down {target.stack}{target.options}") from None


def load_image(sandbox: Sandbox) -> None:
    """The busybox image, built on a host booted for that (there is no registry) and loaded on
    every host the engine boots."""
    builder = sandbox.add_host("image-builder")
    try:
        sandbox.load_image()
    finally:
        sandbox.destroy_host(builder.key)


def status(target: Target, say=print) -> int:
    saved = state.read(target.workdir)
    if saved is None or not saved.get("cloud"):
        say(f"local-swarm: no local swarm for {target.stack} (start one: sudo scripts/local-swarm up "
            f"{target.stack}{target.options})")
        return 3
    sandbox = attach(saved, target)
    try:
        cloud = Cloud(sandbox, target.workdir)
        state.load_cloud(cloud, sandbox, saved["cloud"])
        resources = saved["engine"]["resources"]
        say(f"local-swarm: {target.stack}: {len(cloud.droplets)} droplets as sandbox hosts, "
            f"{sum(r['custom'] for r in resources)} resources in the state ({target.workdir / state.STATE_FILE})")
        say(show(target, cloud))
    finally:
        sandbox.detach()
    return 0


def down(target: Target, say=print) -> int:
    started = time.monotonic()
    with contextlib.suppress(Exception):
        saved = state.read(target.workdir) or {}
        target = Target(target.stack, target.project_root, target.workdir,
                        saved.get("sandbox", {}).get("prefix", target.prefix), target.subnet, target.options)
    try:
        lock = _acquire_lock(target.prefix)
    except SandboxError as error:
        raise Refused(f"local-swarm: {error} (an `up` or `status` of {target.stack} is running: "
                      "wait for it, or stop it first)") from None
    try:
        found = leftovers(target.prefix)
        _remove_leftovers(target.prefix)
        loops = state.loop_devices_under(target.workdir) if target.workdir.exists() else []
        for device in loops:
            subprocess.run(["losetup", "-d", device], check=True)
        removed_dir = (target.workdir / MARKER).exists()
        if removed_dir:
            shutil.rmtree(target.workdir)
            if target.workdir.parent.name == "swarm-local":  # the default's parent, once empty
                with contextlib.suppress(OSError):
                    target.workdir.parent.rmdir()
        elif target.workdir.exists():
            say(f"local-swarm: left {target.workdir} alone: it has no {MARKER} file, so it is not ours")
        Path(f"/run/swarm-sandbox/{target.prefix}.lock").unlink(missing_ok=True)
    finally:
        lock.close()
    still = leftovers(target.prefix)
    if still:
        raise Refused("local-swarm: could not remove: " + ", ".join(still))
    if not found and not removed_dir and not loops:
        say(f"local-swarm: nothing of {target.stack} was running (prefix {target.prefix})")
    else:
        hosts = sum(1 for item in found if item.startswith("netns "))
        say(f"local-swarm: {target.stack} removed: {hosts} hosts, {len(found) - hosts} links/rules/cgroups, "
            f"{len(loops)} volumes" + (f", {target.workdir}" if removed_dir else "")
            + f" in {time.monotonic() - started:.0f} s")
    return 0


# --- output -------------------------------------------------------------------------------


def _kind(type_: str) -> str:
    return type_.rsplit(":", 1)[-1]


def changes(steps, first: bool) -> str:
    """What the engine did, as a diff: one line per resource changed (a first `up`: counted by
    type, with the names of droplets, volumes and Docker objects)."""
    done = [s for s in steps if s.op in SYMBOL and not (s.op == "delete" and s.detail.startswith("replaced"))]
    if not done:
        return "no changes: the cluster matches the files"
    lines = []
    if first:
        by_kind: dict[str, list[str]] = defaultdict(list)
        for step in done:
            by_kind[_kind(step.type)].append(step.name)
        lines.append("created:")
        for kind, names in sorted(by_kind.items(), key=lambda item: -len(item[1])):
            shown = names if len(names) <= 6 else names[:5] + [f"... ({len(names) - 5} more)"]
            lines.append(f"  + {len(names):3} {kind}: {', '.join(shown)}")
        return "\n".join(lines)
    lines.append("changes:")
    for step in sorted(done, key=lambda s: (list(SYMBOL).index(s.op), s.type, s.name)):
        detail = f"  ({step.detail})" if step.detail else ""
        lines.append(f"  {SYMBOL[step.op]:2} {step.op:8} {_kind(step.type):22} {step.name}{detail}"
                     + (f"  FAILED: {step.error[:200]}" if step.error else ""))
    return "\n".join(lines)


def show(target: Target, cloud: Cloud | None) -> str:
    """`docker node ls` and `docker service ls` from a manager, and how to reach the nodes."""
    if cloud is None or not cloud.droplets:
        return "no droplets"
    snapshot = swarm_snapshot(cloud)
    if not snapshot:
        return "no manager answers"
    manager = next(h for h in cloud.droplets.values() if h.name == snapshot["manager"] and h.ready)
    listing = manager.exec("docker node ls && echo && docker service ls", check=False, timeout=30)
    images = manager.exec(IMAGES_SCRIPT, check=False, timeout=30).stdout.rstrip()
    config = write_ssh_config(target, cloud)
    return (f"\n$ docker node ls; docker service ls    (on {manager.name}, {manager.ip})\n"
            f"{listing.stdout.rstrip()}{listing.stderr.rstrip()}\n\n"
            f"The images the services stand for (their label {IMAGE_LABEL}):\n{images}\n\n"
            f"Reach the nodes (as root: the key and host keys are in {target.workdir}):\n"
            f"  sudo ssh -F {config} {manager.name} docker service ps {target.stack}_<service>\n"
            f"  sudo ssh -F {config} {manager.name}          # a shell on the manager; "
            f"nodes: {', '.join(sorted(h.name for h in cloud.droplets.values()))}\n"
            f"Remove everything: sudo scripts/local-swarm down {target.stack}{target.options}\n")


def write_ssh_config(target: Target, cloud: Cloud) -> Path:
    """An ssh config with every node by name, the sandbox key, and the nodes' host keys pinned."""
    hosts = sorted((h for h in cloud.droplets.values() if h.ready), key=lambda h: h.name)
    known = write_known_hosts(target.workdir / "ssh_known_hosts", [(h.ip, host_public_key(h)) for h in hosts])
    path = target.workdir / "ssh_config"
    path.write_text(
        "".join(f"Host {h.name}\n  HostName {h.ip}\n" for h in hosts)
        + f"Host *\n  User root\n  IdentityFile {cloud.sandbox.key_path}\n  IdentitiesOnly yes\n"
          f"  UserKnownHostsFile {known}\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n"
          "  LogLevel ERROR\n")
    return path
