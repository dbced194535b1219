"""Run the real `__main__.py` in-process under Pulumi mocks and record what it registers.

Each registration keeps its type, name, inputs (camelCase, as the engine sees them, secrets
still wrapped), the resources it depends on, and its options; the stack's exports are
resolved too. `run_program` is the one entry point the mock tests use.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import gc
import hashlib
import json
import runpy
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc, settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SECRET_SIG = rpc._special_secret_sig
# What FakeCloud's DigitalOcean registry credentials carry as username and password.
FAKE_REGISTRY_TOKEN = "dop_v1_fake_registry_token"
FAKE_LOAD_BALANCER_IP = "203.0.113.80"
# Config keys the CLI holds as secrets (set with --secret; swarm:alerts once its webhookUrl is set
# with --secret --path).
SECRET_KEYS = ("sshPrivateKey", "secrets", "registryPassword", "ingressCertificate", "ingressPrivateKey", "alerts")


@dataclass
class Registration:
    type: str
    name: str
    urn: str
    inputs: dict
    dependencies: set[str] = field(default_factory=set)  # URNs this resource waits for
    parent: str = ""
    options: dict = field(default_factory=dict)  # additionalSecretOutputs, deleteBeforeReplace, ...

    def plain(self, key: str) -> Any:
        """An input with secret wrappers removed."""
        return unwrap(self.inputs.get(key))


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(rpc._special_sig_key) == SECRET_SIG


def unwrap(value: Any) -> Any:
    if is_secret(value):
        return unwrap(value["value"])
    if isinstance(value, dict):
        return {key: unwrap(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unwrap(item) for item in value]
    return value


@dataclass
class ProgramRun:
    registrations: list[Registration]
    exports: dict[str, Any]
    secret_exports: set[str]
    error: BaseException | None

    def of_type(self, type_: str) -> list[Registration]:
        return [r for r in self.registrations if r.type == type_]

    def named(self, name: str) -> Registration:
        (match,) = [r for r in self.registrations if r.name == name]
        return match

    @property
    def by_urn(self) -> dict[str, Registration]:
        return {r.urn: r for r in self.registrations}

    def depth(self, registration: Registration) -> int:
        """Longest chain of dependencies below `registration` (0 when it waits for nothing)."""
        by_urn = self.by_urn
        memo: dict[str, int] = {}

        def walk(urn: str) -> int:
            if urn not in memo:
                deps = [d for d in by_urn[urn].dependencies if d in by_urn]
                memo[urn] = 1 + max(map(walk, deps)) if deps else 0
            return memo[urn]

        return walk(registration.urn)

    def depends_on(self, registration: Registration, other: Registration) -> bool:
        """True when `registration` waits for `other`, directly or through others."""
        by_urn = self.by_urn
        seen, todo = set(), [registration.urn]
        while todo:
            urn = todo.pop()
            for dep in by_urn[urn].dependencies if urn in by_urn else ():
                if dep == other.urn:
                    return True
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        return False


class FakeCloud(pulumi.runtime.Mocks):
    """Returns plausible outputs: droplet addresses, command stdout, a generated key."""

    def __init__(self, command_stdout: Callable[[str, dict], str] | None = None):
        self.command_stdout = command_stdout or default_command_stdout

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        outputs = dict(args.inputs)
        if args.typ == "digitalocean:index/droplet:Droplet":
            outputs["ipv4Address"], outputs["ipv4AddressPrivate"] = fake_addresses(args.inputs["name"])
            return [fake_droplet_id(args.inputs["name"]), outputs]
        if args.typ == "digitalocean:index/reservedIp:ReservedIp":
            outputs["ipAddress"] = MANAGER_ADDRESS
        elif args.typ == "tls:index/privateKey:PrivateKey":
            outputs["privateKeyOpenssh"], outputs["publicKeyOpenssh"] = fake_key_pair(args.name)
        elif args.typ == "random:index/randomBytes:RandomBytes":
            outputs["hex"] = fake_random_bytes(args.name, int(args.inputs["length"])).hex()
            outputs["base64"] = base64.b64encode(fake_random_bytes(args.name, int(args.inputs["length"]))).decode()
        elif args.typ == "random:index/randomPassword:RandomPassword":
            outputs["result"] = fake_random_bytes(args.name, int(args.inputs["length"])).hex()[: int(args.inputs["length"])]
        elif args.typ == "digitalocean:index/spacesKey:SpacesKey":
            # The backups' bucket key (Pulumi.prod.yaml): what the scheduler's install writes down.
            outputs["accessKey"] = "FAKE" + fake_random_bytes(args.name + "-access", 8).hex().upper()
            outputs["secretKey"] = fake_random_bytes(args.name + "-secret", 20).hex()
        elif args.typ == "command:remote:Command":
            outputs["stdout"] = self.command_stdout(args.name, unwrap(args.inputs))
            outputs["stderr"] = ""
        elif args.typ == "digitalocean:index/containerRegistryDockerCredentials:ContainerRegistryDockerCredentials":
            auth = base64.b64encode(f"{FAKE_REGISTRY_TOKEN}:{FAKE_REGISTRY_TOKEN}".encode()).decode()
            outputs["dockerCredentials"] = json.dumps({"auths": {"registry.digitalocean.com": {"auth": auth}}})
        elif args.typ == "digitalocean:index/loadBalancer:LoadBalancer":
            outputs["ip"] = FAKE_LOAD_BALANCER_IP
        return [f"{args.name}-id", outputs]

    def call(self, args: pulumi.runtime.MockCallArgs):
        raise AssertionError(f"the program must make no provider calls (data sources hit the API): {args.token}")


@functools.cache
def fake_key_pair(resource_name: str) -> tuple[str, str]:
    """A real ED25519 key pair per resource name, as tls.PrivateKey gives it (OpenSSH private key,
    public key line with a newline): sshd can load it, and it stays the same for every run of the
    program in this process, as a key kept in state does."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(resource_name.encode()).digest())
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return private, public + "\n"


def fake_random_bytes(resource_name: str, length: int) -> bytes:
    """random.RandomBytes' value, the same for every run (kept in state)."""
    return hashlib.sha256(b"random-bytes:" + resource_name.encode()).digest()[:length]


# The reserved IP FakeCloud gives the manager (TEST-NET-3).
MANAGER_ADDRESS = "203.0.113.10"


def fake_droplet_id(droplet_name: str) -> str:
    """A stable numeric droplet ID per name, as DigitalOcean's are numbers."""
    return str(100_000_000 + zlib.crc32(droplet_name.encode()) % 900_000_000)


def fake_addresses(droplet_name: str) -> tuple[str, str]:
    """Stable (public, private) addresses per droplet name, whatever the registration order."""
    _, pool, index = droplet_name.rsplit("-", 2)
    subnet = zlib.crc32(pool.encode()) % 200
    return f"198.51.{subnet}.{index}", f"10.110.{subnet}.{int(index) + 1}"


def default_command_stdout(name: str, inputs: dict) -> str:
    if name.endswith("-join-tokens"):
        return json.dumps({"worker": "SWMTKN-1-worker-fake", "manager": "SWMTKN-1-manager-fake"})
    if name.endswith("-init") or name.endswith("-join"):
        return f"node-id-of-{name.rsplit('-', 1)[0]}\n"
    if name.endswith("-settings"):
        return "{}\n"
    return ""


class _Recording:
    """Records every registration a monitor answers, with its inputs and options."""

    registrations: list[Registration]

    def RegisterResource(self, request):
        response = super().RegisterResource(request)  # type: ignore[misc]
        if request.type != "pulumi:pulumi:Stack":
            inputs = rpc.deserialize_properties(request.object)
            self.registrations.append(
                Registration(
                    type=request.type,
                    name=request.name,
                    urn=response.urn,
                    inputs=inputs,
                    dependencies=set(request.dependencies),
                    parent=request.parent,
                    options={
                        "additionalSecretOutputs": list(request.additionalSecretOutputs),
                        "deleteBeforeReplace": request.deleteBeforeReplace,
                        "customTimeouts": request.customTimeouts,
                        "provider": request.provider,
                        "protect": request.protect,
                        "retainOnDelete": request.retainOnDelete,
                        "ignoreChanges": list(request.ignoreChanges),
                        "replaceOnChanges": list(request.replaceOnChanges),
                        "aliases": list(request.aliases),
                        # the names it answers to besides its own (alias specs), for assertions
                        "aliasNames": [alias.spec.name for alias in request.aliases if alias.HasField("spec")],
                    },
                )
            )
        return response


class RecordingMonitor(_Recording, pulumi_mocks.MockMonitor):
    def __init__(self, mocks: pulumi.runtime.Mocks):
        super().__init__(mocks)
        self.registrations = []


def recording(monitor: pulumi_mocks.MockMonitor) -> pulumi_mocks.MockMonitor:
    """`monitor`, made to record its registrations too."""
    monitor.__class__ = type(f"Recording{type(monitor).__name__}", (_Recording, type(monitor)), {})
    monitor.registrations = []  # type: ignore[attr-defined]
    return monitor


def run_program(
    stack: str,
    config: dict[str, Any],
    *,
    mocks: pulumi.runtime.Mocks | None = None,
    monitor: pulumi_mocks.MockMonitor | None = None,
    program: Callable[[], Any] | None = None,
    preview: bool = False,
) -> ProgramRun:
    """Run __main__.py (or `program`) for `stack` with `config` (keys without the `swarm:`
    prefix), as `up`, or as `preview` when `preview` is set. Registrations go to `mocks`, or to
    `monitor` (the lifecycle engine's), and are recorded either way."""
    monitor = recording(monitor) if monitor is not None else RecordingMonitor(mocks or FakeCloud())
    pulumi.runtime.set_all_config(
        {f"swarm:{key}": value if isinstance(value, str) else json.dumps(value) for key, value in config.items()},
        secret_keys=[f"swarm:{key}" for key in SECRET_KEYS if key in config],
    )
    settings.ROOT.set(None)  # a fresh Stack resource for every run
    # A failed run leaves failed outputs behind; the next run must not await (and re-raise)
    # them, as pulumi.runtime.mocks.test clears them too.
    settings.SETTINGS.outputs.clear()
    pulumi.runtime.set_mocks(monitor.mocks, project="swarm", stack=stack, preview=preview, monitor=monitor)
    root = settings.get_root_resource()

    error: BaseException | None = None
    # __main__.py tunes the garbage collector for its own process, which the CLI starts for one
    # run; here many runs share one process, which gets its settings back after each.
    thresholds = gc.get_threshold()
    try:
        try:
            main = program or (lambda: runpy.run_path(str(PROJECT_ROOT / "__main__.py"), run_name="__main__"))
            _sync_await(run_pulumi_func(main))
        except Exception as raised:  # noqa: BLE001 - the caller asserts on it
            error = raised

        exports, secret_exports = {}, set()
        if error is None:
            for key, value in root.outputs.items():
                output = pulumi.Output.from_input(value)
                exports[key] = _sync_await(output.future())
                if _sync_await(output.is_secret()):
                    secret_exports.add(key)
    finally:
        gc.set_threshold(*thresholds)
    return ProgramRun(monitor.registrations, exports, secret_exports, error)


TEST_SECRET_PREFIX = "test-value-of-"


def reference_stack_text() -> str:
    """stacks/prod.yaml without its model catalogue: the article's three services alone."""
    text = (PROJECT_ROOT / "stacks" / "prod.yaml").read_text()
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith("x-model-catalogue:"))


def stack_config(stack: str) -> dict[str, Any]:
    """The `swarm:` values of a checked-in Pulumi.<stack>.yaml, as the CLI would pass them,
    plus a test value for each external secret (operators set theirs with --secret)."""
    import yaml

    from swarm.__main__ import missing_secrets

    document = yaml.safe_load((PROJECT_ROOT / f"Pulumi.{stack}.yaml").read_text())
    values = {key.split(":", 1)[1]: value for key, value in document["config"].items() if key.startswith("swarm:")}
    values["secrets"] = {name: TEST_SECRET_PREFIX + name for name in missing_secrets(stack)}
    return values


def cluster_config(stack: str) -> dict[str, Any]:
    """`stack_config(stack)` without `swarm:backups`: for tests of the nodes, the swarm and the
    services, which count the commands a change runs. With backups (Pulumi.prod.yaml's), the
    scheduler's status command also runs at every `up`, and the sandbox would need a Spaces
    endpoint; tests/unit/test_backups.py covers the shipped stack's backups."""
    values = stack_config(stack)
    values.pop("backups", None)
    return values


def _drop_unretrieved_run_errors(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    """A failed run leaves futures holding its error that nothing awaits (run_program returns
    the error). asyncio would log each from the future's finaliser, formatting a traceback in
    the middle of whatever Python runs then; on CPython 3.11 that breaks an `ast.parse` in
    progress ("AST constructor recursion depth mismatch", python/cpython#106905)."""
    if "exception was never retrieved" not in context.get("message", ""):
        loop.default_exception_handler(context)


_loop = asyncio.new_event_loop()
_loop.set_exception_handler(_drop_unretrieved_run_errors)
# The SDK sends each registration from the loop's default executor; its default size (6 threads
# on 2 cores) would serialise the remote commands of a larger cluster, which Pulumi runs at once.
_loop.set_default_executor(ThreadPoolExecutor(max_workers=32))
asyncio.set_event_loop(_loop)
