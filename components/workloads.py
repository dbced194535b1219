"""A Compose stack deployed on the swarm: overlay networks, secrets, configs and services.

What `docker stack deploy --with-registry-auth -c FILE <stack>` does, as resources of the Docker
provider connected to the first manager over SSH. Everything here waits for the swarm to be
formed and labelled, and each service for the folders its bind mounts need. Then a command on
the manager waits until every service runs all its tasks (see node_scripts.converge_script).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_docker as docker
import pulumi_random as random
from pulumi_command import remote

from components.registry import RegistryAuth
from swarm import node_scripts
from swarm.compose import StackSpec, config_args, network_args, secret_args, service_args
from swarm.config import DEFAULT_CONVERGE_TIMEOUT_SECONDS
from swarm.values import CREDENTIALS_LABEL, credentials_label, provider_auth_addresses, pulls_from

# The engine's own limit for the converge command: its script gives up first, with its report.
CONVERGE_TIMEOUT_MARGIN_SECONDS = 120


@dataclass
class WorkloadsArgs:
    stack: str  # the swarm stack namespace: services are named <stack>_<service>
    spec: StackSpec
    docker_host: pulumi.Input[str]  # ssh://root@<manager>
    ssh_private_key: pulumi.Input[str]
    known_hosts: pulumi.Input[str]  # known_hosts lines holding the manager's host key
    external_secrets: pulumi.Output[Mapping[str, str]]  # swarm:secrets, a secret Output
    manager_connection: remote.ConnectionArgs  # SSH to the manager, for the convergence check
    convergence: Sequence[node_scripts.ConvergeTarget]  # what each service converges to
    converge_timeout_seconds: int = DEFAULT_CONVERGE_TIMEOUT_SECONDS
    external_configs: Mapping[str, str] = field(default_factory=dict)
    swarm_ready: list[pulumi.Resource] = field(default_factory=list)
    registry: RegistryAuth | None = None  # credentials for the images on that registry
    prerequisites: Mapping[str, Sequence[pulumi.Resource]] = field(default_factory=dict)  # service -> folder commands
    # The nodes as they are after this run (addresses, node IDs, sizes, labels): any change to
    # a node runs the convergence check again, so a node change that leaves a service short
    # fails `up` instead of passing unseen.
    nodes: pulumi.Input[object] = None


class Workloads(pulumi.ComponentResource):
    services: dict[str, docker.Service]
    services_table: pulumi.Output[dict]  # service key -> deployed name, image, mode, replicas
    converged: remote.Command  # succeeds once every service runs all its tasks

    def __init__(self, name: str, args: WorkloadsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("swarm:index:Workloads", name, None, opts)
        spec, stack = args.spec, args.stack

        provider = docker.Provider(
            f"{name}-docker",
            host=args.docker_host,
            # The provider reaches the manager through the system `ssh`, which takes files, not
            # text: the key and the nodes' host keys are written to private files, no ssh-agent
            # needed, and `ssh` refuses a manager whose host key is not the pinned one.
            ssh_opts=pulumi.Output.all(args.ssh_private_key, args.known_hosts).apply(
                lambda values: ssh_options(write_key_file(stack, values[0]), write_known_hosts(stack, values[1]))
            ),
            # Preview needs no daemon (no data sources): it runs where SSH is closed, as in a pull
            # request's preview (docs/security.md). `up` reaches the daemon at its first resource.
            disable_docker_daemon_check=True,
            # The registry's credentials live with the provider, which sends them with every create
            # and update of a service whose image is there (`--with-registry-auth`). On a service
            # (`auth`) they would be ForceNew: rotating them would replace every such service, and
            # the replacement collides with the service's own name.
            registry_auth=_provider_registry_auth(spec, args.registry),
            opts=pulumi.ResourceOptions(parent=self),
        )
        on_swarm = pulumi.ResourceOptions(parent=self, provider=provider, depends_on=args.swarm_ready)

        networks = {
            key: docker.Network(f"{name}-network-{key}", **network_args(network, stack=stack), opts=on_swarm)
            for key, network in spec.networks.items()
        }

        # Secret and config names carry an HMAC of their value under this per-stack key (a Pulumi
        # secret), never a plain hash: a name in `docker secret ls`, the state or a preview tells
        # nothing about the value. Kept in state, so an unchanged value keeps its name.
        name_key = pulumi.Output.secret(
            random.RandomBytes(f"{name}-object-name-key", length=32, opts=pulumi.ResourceOptions(parent=self)).hex
        ).apply(bytes.fromhex)

        secrets = {}
        for key, secret in spec.secrets.items():
            content = (
                pulumi.Output.from_input(secret.content)
                if not secret.external
                else args.external_secrets.apply(lambda values, key=key: values[key].encode())
            )
            secrets[key] = self._swarm_object(
                docker.Secret, f"{name}-secret-{key}", content, name_key, on_swarm,
                lambda data, name_key, secret=secret: secret_args(secret, stack=stack, content=data, name_key=name_key),
            )
        configs = {}
        for key, config in spec.configs.items():
            content = config.content if not config.external else args.external_configs[key].encode()
            configs[key] = self._swarm_object(
                docker.ServiceConfig, f"{name}-config-{key}", pulumi.Output.from_input(content), name_key, on_swarm,
                lambda data, name_key, config=config: config_args(config, stack=stack, content=data, name_key=name_key),
                secret=False,
            )

        self.services = {}
        inputs = {}
        # One keyed hash of the registry credentials, labelled on each service that pulls with them.
        credentials = None if args.registry is None else pulumi.Output.all(
            name_key, args.registry.username, args.registry.password
        ).apply(lambda v: credentials_label(v[0], args.registry.server, v[1], v[2]))
        for key, service in spec.services.items():
            inputs[key] = service_args(
                service,
                stack=stack,
                network_ids={k: network.id for k, network in networks.items()},
                secret_ids={k: (s.id, s.name) for k, s in secrets.items()},
                config_ids={k: (c.id, c.name) for k, c in configs.items()},
            )
            if credentials is not None and pulls_from(service.image, args.registry.server):
                inputs[key]["labels"] = _with_credentials_label(inputs[key]["labels"], credentials)
            self.services[key] = docker.Service(
                f"{name}-{key}",
                **_given(inputs[key]),
                opts=pulumi.ResourceOptions(
                    parent=self,
                    provider=provider,
                    depends_on=[*args.swarm_ready, *args.prerequisites.get(key, ())],
                ),
            )
        self.converged = self._converge(name, args, resolved({"services": inputs, "nodes": args.nodes}).apply(_digest))
        self.services_table = resolved(
            {
                key: {"name": service.name, "image": spec.services[key].image, "mode": spec.services[key].mode,
                      "replicas": spec.services[key].replicas if spec.services[key].mode == "replicated" else None}
                for key, service in self.services.items()
            }
        )
        self.register_outputs({"services": self.services_table})

    def _converge(self, name: str, args: WorkloadsArgs, digest: pulumi.Output[str]) -> remote.Command:
        """The convergence check. Its script embeds a digest of every service's inputs and of
        the nodes, so any change to a service or a node changes the script and Pulumi runs it
        again (an update, no `triggers`: those would replace the command every time,
        pulumi/pulumi-command#855)."""
        limit = f"{args.converge_timeout_seconds + CONVERGE_TIMEOUT_MARGIN_SECONDS}s"
        return remote.Command(
            f"{name}-converge",
            connection=args.manager_connection,
            create=digest.apply(lambda d: node_scripts.converge_script(args.convergence, args.converge_timeout_seconds, d)),
            add_previous_output_in_env=False,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=list(self.services.values()),
                custom_timeouts=pulumi.CustomTimeouts(create=limit, update=limit),
            ),
        )

    @staticmethod
    def _swarm_object(resource_type, resource_name, content: pulumi.Output[bytes], name_key: pulumi.Output[bytes],
                      opts, to_args, *, secret: bool = True):
        """A docker.Secret or docker.ServiceConfig whose name carries a keyed hash of its content.

        Swarm objects are immutable: a new value means a new name, so Pulumi replaces the
        resource create-before-delete (new object, services moved to it, old one deleted).
        The logical resource name stays stable so that replacement, not a second object, happens.
        """
        object_args = pulumi.Output.all(content, name_key).apply(lambda values: to_args(*values))
        data = object_args.apply(lambda a: a["data"])
        return resource_type(
            resource_name,
            # The name ends in an HMAC under the stack's key, as `docker secret ls` shows it: safe to
            # show. Labels come from the stack file. Only a secret's data stays secret.
            name=pulumi.Output.unsecret(object_args.apply(lambda a: a["name"])),
            data=pulumi.Output.secret(data) if secret else pulumi.Output.unsecret(data),
            labels=pulumi.Output.unsecret(object_args.apply(lambda a: a["labels"])),
            opts=opts,
        )


def _provider_registry_auth(spec: StackSpec, registry: RegistryAuth | None) -> list[docker.ProviderRegistryAuthArgs] | None:
    """The provider's `registry_auth` entries: the credentials, secret, under every address by
    which the provider looks up one of the stack's images on the registry (swarm.values.registry)."""
    if registry is None:
        return None
    images = [service.image for service in spec.services.values()]
    addresses = provider_auth_addresses(images, registry.server)
    password = pulumi.Output.secret(registry.password)
    return [docker.ProviderRegistryAuthArgs(address=address, username=registry.username, password=password)
            for address in addresses] or None


def _with_credentials_label(labels: list[dict], credentials: pulumi.Output[str]) -> pulumi.Output:
    """The service's labels plus the keyed hash of the registry credentials: new credentials update
    the service in place, and the provider sends them with that update. No task restarts: the
    service's labels are not its tasks'."""
    return pulumi.Output.unsecret(credentials.apply(
        lambda digest: sorted([*labels, {"label": CREDENTIALS_LABEL, "value": digest}], key=lambda item: item["label"])
    ))


def _given(value: object) -> object:
    """`value` without the dict entries that are None (not given). The SDK sends none of them to
    the engine, so the service's inputs stay exactly the same, but it awaits and type-checks each
    one: about half of a service's arguments, a millisecond per service (docs/benchmarks.md)."""
    if isinstance(value, dict):
        return {key: _given(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_given(item) for item in value]
    return value


def resolved(value: object) -> pulumi.Output:
    """`value` (dicts, lists and tuples holding Outputs) as one Output of the same structure with
    every Output replaced by its value: what `pulumi.Output.from_input(value)` gives, its
    dependencies, secrecy and unknowns included, from one `Output.all` of the Outputs in it.

    `from_input` makes an Output (a task, futures, callbacks) of every key and every value of
    every nested dict and list; for the convergence digest of a thousand services that was 60
    Outputs per service and, with the garbage they leave, most of the program's time
    (docs/benchmarks.md).
    """
    leaves: list[object] = []
    places: dict[int, _Leaf] = {}  # an Output met again (every service's network id) is one leaf

    def template(item: object) -> object:
        if isinstance(item, dict):
            return {key: template(inner) for key, inner in item.items()}
        if isinstance(item, list):
            return [template(inner) for inner in item]
        if isinstance(item, tuple):
            return tuple(template(inner) for inner in item)
        if isinstance(item, pulumi.Output) or inspect.isawaitable(item):
            if id(item) not in places:
                leaves.append(item)  # kept alive by `leaves` while `places` holds its id
                places[id(item)] = _Leaf(len(leaves) - 1)
            return places[id(item)]
        return item

    shape = template(value)

    def fill(item: object, values: list) -> object:
        if isinstance(item, _Leaf):
            return values[item.index]
        if isinstance(item, dict):
            return {key: fill(inner, values) for key, inner in item.items()}
        if isinstance(item, list):
            return [fill(inner, values) for inner in item]
        if isinstance(item, tuple):
            return tuple(fill(inner, values) for inner in item)
        return item

    return pulumi.Output.all(*leaves).apply(lambda values: fill(shape, values))


@dataclass(frozen=True)
class _Leaf:
    index: int  # where an Output stood in `resolved`'s value


def _digest(inputs: Mapping[str, object]) -> str:
    """A short digest of the services' and nodes' resolved inputs (credentials are not among them)."""
    text = json.dumps(inputs, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def write_key_file(stack: str, private_key: str) -> Path:
    """Write the nodes' SSH key to a file only this user can read, for `ssh -i`.

    Kept after the program has finished: the Docker provider still needs it while the engine
    deletes resources, which it does last. See `_write_private` for the file's name.
    """
    return _write_private(stack, "id_swarm", private_key)


def write_known_hosts(stack: str, known_hosts: str) -> Path:
    """Write the nodes' host keys (known_hosts lines) for `ssh`'s strict checking. A new file
    whenever they change: a replaced node's address and key are current."""
    return _write_private(stack, "known_hosts", known_hosts)


def _write_private(stack: str, file_name: str, text: str) -> Path:
    """Write `text` (newline-terminated) to `<tmp>/swarm-<stack>-<uid>/<file_name>-<hash>`, mode
    0600, in a directory that must be this user's and private (mode 0700).

    Named by a hash of the content: two runs at once (a preview beside an `up`, two stacks
    of one name on one CI machine, tests beside an operator) each find their own text there; a
    fixed name let the last writer swap another run's host keys under its feet. Written to a
    temporary name and renamed, so a reader never sees half a file.
    """
    directory = Path(tempfile.gettempdir()) / f"swarm-{stack}-{os.getuid()}"
    directory.mkdir(mode=0o700, exist_ok=True)
    status = directory.stat()
    if status.st_uid != os.getuid() or status.st_mode & 0o077:
        raise PermissionError(f"{directory} must belong to this user and be private (mode 0700)")
    text = text if text.endswith("\n") else text + "\n"
    path = directory / f"{file_name}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"
    partial = directory / f".{path.name}.{os.getpid()}.{threading.get_ident()}"
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    partial.replace(path)
    return path


def ssh_options(key_file: Path, known_hosts: Path) -> list[str]:
    """Options for the provider's `ssh`: the cluster key only, and the manager must present the
    host key the program generated for it (no prompt, no trust on first use, no other file)."""
    return [
        "-i", str(key_file),
        "-o", "IdentitiesOnly=yes",
        "-o", "StrictHostKeyChecking=yes",
        "-o", f"UserKnownHostsFile={known_hosts}",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "LogLevel=ERROR",
    ]
