"""The stack configuration: read once, validated once, turned into typed values.

Keys live under the `swarm:` namespace (docs/configuration.md lists them all). The same
parser serves the Pulumi program (values from `pulumi.Config`) and offline tools (values read
from `Pulumi.<stack>.yaml`), so both reject the same mistakes with the same words.

Every problem is collected before failing: an operator fixes a config file in one pass.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import yaml

from swarm.config.alerts import Alerts, parse_alerts
from swarm.config.backups import Backups, parse_backups
from swarm.config.ingress import Ingress, parse_ingress, with_ingress_label
from swarm.config.keys import NAMESPACE, Collector, ConfigError, Problem, config_problem, known_key, unknown_keys
from swarm.config.pools import DNS_LABEL, Pool, any_pool_problem, parse_pools
from swarm.config.renames import check_previous_pool_names, parse_previous_names
from swarm.config.sizes import REGIONS, offered_in
from swarm.config.workloads import (
    DEFAULT_CONVERGE_TIMEOUT_SECONDS,
    Registry,
    parse_bind_mounts,
    parse_configs,
    parse_converge_timeout,
    parse_images,
    parse_registry,
    parse_secret_names,
)
from swarm.diagnostics import Positions, describe_yaml_error, display_path, yaml_error_mark
from swarm.model import SWARM_ADDRESS_POOL, Folder
from swarm.suggest import close_matches, did_you_mean

if TYPE_CHECKING:  # imported by from_pulumi: the offline tools start 0.12 s sooner without the SDK
    import pulumi

# Ports the program opens itself (SSH for admins, swarm's own ports inside the cluster).
RESERVED_PORTS = {22, 2377, 7946, 4789}

REGION = re.compile(r"^[a-z]{3}[0-9]$")
PORT_SPEC = re.compile(r"^(?P<first>[0-9]{1,5})(-(?P<last>[0-9]{1,5}))?(/(?P<protocol>tcp|udp))?$")
SSH_PUBLIC_KEY = re.compile(r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/=]+( .*)?$")


@dataclass(frozen=True)
class Node:
    """One droplet-to-be: `<stack>-<pool>-<index>`."""

    name: str
    pool: Pool
    index: int

    @property
    def role(self) -> str:
        return self.pool.role


@dataclass(frozen=True)
class PublicPort:
    protocol: str  # tcp | udp
    ports: str  # "443" or a range "8000-8010", as DigitalOcean's firewall takes it


@dataclass(frozen=True)
class ClusterConfig:
    stack: str
    region: str
    pools: tuple[Pool, ...]
    stack_file: Path
    admin_cidrs: tuple[str, ...]
    public_ports: tuple[PublicPort, ...] = ()
    vpc_ip_range: str | None = None
    ssh_public_key: str | None = None
    # swarm:sshAuthorizedKeys: operators' public keys, installed beside the program's own on every
    # node by a remote command (components/node_config.py); changing them replaces no droplet.
    authorized_keys: tuple[str, ...] = ()
    # Names set under swarm:secrets; None when they cannot be read (offline, one encrypted blob).
    secret_names: frozenset[str] | None = frozenset()
    # Values of Compose configs declared `external: true` (not secret: they are plain files).
    configs: Mapping[str, str] = field(default_factory=dict)
    registry: Registry | None = None
    images: Mapping[str, str] = field(default_factory=dict)  # service -> image, overriding the stack file
    bind_mounts: Mapping[str, Folder] = field(default_factory=dict)  # bind source -> declared owner/mode
    converge_timeout_seconds: int = DEFAULT_CONVERGE_TIMEOUT_SECONDS  # swarm:convergeTimeout
    # swarm:nodeLossWarnings: false when the stack runs on single nodes on purpose (staging): the
    # capacity check then does not warn that a node's loss would stop a service.
    node_loss_warnings: bool = True
    previous_stack_names: tuple[str, ...] = ()  # swarm:previousStackNames, after `pulumi stack rename`
    ingress: Ingress | None = None  # swarm:ingress (docs/ingress.md)
    backups: Backups | None = None  # swarm:backups
    alerts: Alerts | None = None  # swarm:alerts (docs/alerts.md)
    warnings: tuple[Problem, ...] = field(default=())
    # Where each swarm:* key is in Pulumi.<stack>.yaml, when the file was read offline (plan
    # command, tests): problems about a key are then placed at its line (see place).
    positions: Positions | None = field(default=None, compare=False, repr=False)

    def place(self, problem: Problem) -> Problem:
        """`problem`, when it is about a swarm:* key, with the file and the line of that key."""
        if self.positions is None or problem.file or not problem.path or not str(problem.path[0]).startswith(f"{NAMESPACE}:"):
            return problem
        mark = self.positions.of(("config", *problem.path))
        line, column = mark or (None, None)
        return dataclasses.replace(problem, file=f"Pulumi.{self.stack}.yaml", line=line, column=column)

    @property
    def nodes(self) -> tuple[Node, ...]:
        return tuple(
            Node(f"{self.stack}-{pool.name}-{index}", pool, index)
            for pool in self.pools
            for index in range(1, pool.count + 1)
        )

    @property
    def first_manager(self) -> Node:
        """The node that runs `swarm init`: the first node of the first manager pool."""
        return next(node for node in self.nodes if node.role == "manager")

    @property
    def monthly_cost(self) -> float:
        return round(sum(pool.size.price_monthly * pool.count for pool in self.pools), 2)

    @property
    def cluster_tag(self) -> str:
        """DigitalOcean tag carried by every droplet of this stack (the firewall targets it)."""
        return f"swarm-{self.stack}"

    def role_tag(self, role: str) -> str:
        return f"swarm-{self.stack}-{role}"

    def stack_aliases(self) -> tuple[str, ...]:
        """Earlier names of the components named after the stack."""
        return self.previous_stack_names

    def pool_aliases(self, pool: Pool) -> tuple[str, ...]:
        """Earlier names of `pool`'s component (`<stack>-<pool>`), for every earlier stack and pool
        name. Pulumi derives its children's aliases (droplets, volumes) from these."""
        return tuple(
            f"{stack}-{name}"
            for stack in (self.stack, *self.previous_stack_names)
            for name in (pool.name, *pool.previous_names)
            if (stack, name) != (self.stack, pool.name)
        )


def parse_config(values: Mapping[str, Any], *, stack: str, project_root: Path, source: str,
                 from_file: bool = False) -> ClusterConfig:
    """Validate raw config values (keys without the `swarm:` prefix) into a ClusterConfig.

    `values` holds decoded JSON/YAML values; secret keys only need to be present (their
    values are handled as Pulumi secrets by the program, never here). `from_file`: the values
    were read from Pulumi.<stack>.yaml as it is on disk, where a secret shows as `{secure: ...}`.
    Raises ConfigError listing every problem found.
    """
    found = Collector(namespace=NAMESPACE)
    for name, message in unknown_keys(values):
        found.problem(name, message)
    if not DNS_LABEL.match(stack):
        found.problem("(stack name)", f"stack name {stack!r} must be lowercase letters, digits and '-' (it prefixes droplet names)")

    region = _parse_region(values.get("region"), found)
    pools = parse_pools(values.get("nodePools"), stack, found)
    if _valid_region(region):
        _check_sizes_offered(pools, region, found)
    admin_cidrs = _parse_admin_cidrs(values.get("adminCidrs"), found)
    public_ports = _parse_public_ports(values.get("publicPorts"), found)
    vpc_ip_range = _parse_vpc_ip_range(values.get("vpcIpRange"), found)
    ssh_public_key = _parse_ssh_keys(values.get("sshPublicKey"), values.get("sshPrivateKey"), found)
    authorized_keys = _parse_authorized_keys(values.get("sshAuthorizedKeys"), found)
    stack_file = _parse_stack_file(values.get("stackFile"), stack, project_root, found)
    secret_names = parse_secret_names(values.get("secrets"), found)
    configs = parse_configs(values.get("configs"), found)
    registry = parse_registry(values.get("registry"), values.get("registryPassword") is not None, found)
    images = parse_images(values.get("images"), found)
    bind_mounts = parse_bind_mounts(values.get("bindMounts"), found)
    converge_timeout = parse_converge_timeout(values.get("convergeTimeout"), found)
    node_loss_warnings = _parse_node_loss_warnings(values.get("nodeLossWarnings"), found)
    previous_stack_names = _parse_previous_stack_names(values.get("previousStackNames"), stack, found)
    check_previous_pool_names(values.get("nodePools"), found.problem)
    ingress = parse_ingress(values, pools, [(p.protocol, p.ports) for p in public_ports], found,
                            reserved_ports=RESERVED_PORTS, pools_reported=any_pool_problem(found))
    if ingress is not None:
        pools = [with_ingress_label(pool) if pool.name == ingress.pool else pool for pool in pools]
    backups = parse_backups(values.get("backups"), region if _valid_region(region) else None, found)
    alerts = parse_alerts(values.get("alerts"), pools, found, pools_reported=any_pool_problem(found), from_file=from_file)

    config = ClusterConfig(
        stack=stack,
        region=region,
        pools=tuple(pools),
        stack_file=stack_file,
        admin_cidrs=tuple(admin_cidrs),
        public_ports=tuple(public_ports),
        vpc_ip_range=vpc_ip_range,
        ssh_public_key=ssh_public_key,
        authorized_keys=authorized_keys,
        secret_names=secret_names,
        configs=configs,
        registry=registry,
        images=images,
        bind_mounts=bind_mounts,
        converge_timeout_seconds=converge_timeout,
        node_loss_warnings=node_loss_warnings,
        previous_stack_names=previous_stack_names,
        ingress=ingress,
        backups=backups,
        alerts=alerts,
        warnings=tuple(found.warnings),
    )
    if found.problems:
        # The keys with problems are at their defaults (or left out) in `partial`: the stack file
        # and the cross-checks of the other keys still run (swarm/preflight.py, check).
        raise ConfigError(source, found.problems, partial=config)
    return config


def _valid_region(value: Any) -> bool:
    return isinstance(value, str) and value in REGIONS


@known_key("region", type="string", default="required",
           doc="DigitalOcean region slug, e.g. `fra1`; every pool's size must be sold there (GPU sizes: `atl1`, `nyc2`, `tor1`, the H100 also `ams3`)")
def _parse_region(value: Any, found: Collector) -> str:
    if value is None:
        found.problem("region", "is required: set a DigitalOcean region slug, e.g. `pulumi config set swarm:region fra1`")
    elif not isinstance(value, str) or not REGION.match(value):
        found.problem("region", f"{value!r} is not a DigitalOcean region slug; use one like 'fra1', 'ams3' or 'nyc3'")
    elif not _valid_region(value):
        hint = did_you_mean(value, REGIONS) or f"; the regions are {', '.join(sorted(REGIONS))}"
        found.problem("region", f"{value!r} is not a DigitalOcean region that takes new droplets{hint} "
                                "(table: swarm/config/sizes.py)")
    return value


def _check_sizes_offered(pools: list[Pool], region: str, found: Collector) -> None:
    """A size DigitalOcean does not sell in the region fails the droplet's create halfway
    through `up`, after the pools before it were created: refused at preview instead."""
    for pool in pools:
        if pool.size is not None and not offered_in(pool.size, region):
            found.problem(("nodePools", pool.name, "size"),
                          f"'{pool.size.slug}' is not sold in {region} (only in {', '.join(sorted(pool.size.regions or ()))}); "
                          f"move the stack to one of those regions (`swarm:region`), or keep the pool out of this "
                          f"stack: a swarm spans one region's VPC")


@known_key("previousStackNames", type="list of string", default="`[]`",
           doc="the stack's earlier names, after `pulumi stack rename`: its resources answer to them too, so volumes and their data are kept (see docs/day-2-data-and-retirement.md)")
def _parse_previous_stack_names(value: Any, stack: str, found: Collector) -> tuple[str, ...]:
    return parse_previous_names(value, ("previousStackNames",), stack, "stack", DNS_LABEL, found.problem)


@known_key("nodeLossWarnings", type="boolean", default="`true`",
           doc="`false` for a stack that runs on single nodes on purpose (staging): the plan and preview then do not "
               "warn that one node's loss would stop a service (docs/capacity.md)")
def _parse_node_loss_warnings(value: Any, found: Collector) -> bool:
    if value is None:
        return True
    if not isinstance(value, bool):
        found.problem("nodeLossWarnings", f"{value!r} must be true or false")
        return True
    return value


@known_key("adminCidrs", type="list of CIDR", default="required",
           doc="who may always reach SSH on the nodes; `[]` (as shipped) keeps SSH closed except while "
               "`scripts/ssh_access.py` opens it for one address, as deploys do (docs/security.md)")
def _parse_admin_cidrs(value: Any, found: Collector) -> list[str]:
    if value is None:
        found.problem(
            "adminCidrs",
            "is required: the addresses always allowed to SSH to the nodes (Pulumi's remote commands use SSH too), "
            "e.g. `pulumi config set --path 'swarm:adminCidrs[0]' 203.0.113.0/24`, or [] to keep SSH closed "
            "except while scripts/ssh_access.py opens it (docs/security.md)",
        )
        return []
    if not isinstance(value, list):
        found.problem("adminCidrs", "must be a list of CIDR blocks ([] keeps SSH closed, see docs/security.md)")
        return []
    cidrs = []
    for index, cidr in enumerate(value):
        try:
            network = ipaddress.ip_network(cidr, strict=True)
        except (TypeError, ValueError) as error:
            found.problem(("adminCidrs", index), f"{cidr!r} is not a CIDR block ({error}); e.g. 203.0.113.0/24 or 198.51.100.7/32")
            continue
        if network.prefixlen == 0:
            found.warn(
                ("adminCidrs", index), f"{network} opens SSH on every node to the whole internet; "
                "list your own ranges, or [] and open SSH for a session with scripts/ssh_access.py (docs/security.md)"
            )
        cidrs.append(str(network))
    return cidrs


@known_key("publicPorts", type="list", default="`[]`",
           doc="ports opened to the internet on every node: `443`, `\"443/tcp\"`, `\"8000-8010/udp\"`")
def _parse_public_ports(value: Any, found: Collector) -> list[PublicPort]:
    if value is None:
        return []
    if not isinstance(value, list):
        found.problem("publicPorts", "must be a list such as [80, 443, '8000-8010/tcp', '53/udp']")
        return []
    ports = []
    for index, item in enumerate(value):
        match = PORT_SPEC.match(str(item)) if isinstance(item, (int, str)) and not isinstance(item, bool) else None
        first = int(match["first"]) if match else 0
        last = int(match["last"] or first) if match else 0
        if not match or not 1 <= first <= last <= 65535:
            found.problem(("publicPorts", index), f"{item!r} is not a port; use 443, '443/tcp' or a range '8000-8010/udp'")
        elif RESERVED_PORTS & set(range(first, last + 1)):
            found.problem(
                ("publicPorts", index),
                f"{item!r} includes a port the program manages itself ({', '.join(map(str, sorted(RESERVED_PORTS)))}); "
                "SSH is opened by swarm:adminCidrs, swarm ports only inside the cluster",
            )
        else:
            ports.append(PublicPort(match["protocol"] or "tcp", match[0].split("/")[0]))
    return ports


@known_key("vpcIpRange", type="CIDR", default="chosen by DigitalOcean",
           doc="private IPv4 range of the stack's VPC, /16 to /28, outside `10.0.0.0/16` (swarm's overlay networks)")
def _parse_vpc_ip_range(value: Any, found: Collector) -> str | None:
    if value is None:
        return None
    try:
        network = ipaddress.ip_network(value, strict=True)
    except (TypeError, ValueError) as error:
        found.problem("vpcIpRange", f"{value!r} is not a CIDR block ({error}); e.g. 10.110.0.0/20")
        return None
    if network.version != 4 or not network.is_private or not 16 <= network.prefixlen <= 28:
        found.problem("vpcIpRange", f"{value!r} must be a private IPv4 range from /16 to /28, e.g. 10.110.0.0/20")
    elif network.overlaps(ipaddress.ip_network(SWARM_ADDRESS_POOL)):
        found.problem(
            "vpcIpRange",
            f"{value!r} overlaps {SWARM_ADDRESS_POOL}, where swarm allocates overlay networks; pick another range, e.g. 10.110.0.0/20",
        )
    return str(network)


@known_key("sshPrivateKey", type="string (secret)", default="generated",
           doc="its private key (`--secret`); when both are absent an ED25519 key pair is generated and kept in state as a secret")
@known_key("sshPublicKey", type="string", default="generated",
           doc="an operator key pair's public key; set it together with `swarm:sshPrivateKey`")
def _parse_ssh_keys(public_key: Any, private_key_set: Any, found: Collector) -> str | None:
    if public_key is None and private_key_set is None:
        return None
    if public_key is None or private_key_set is None:
        found.problem(
            "sshPublicKey" if public_key is None else "sshPrivateKey",
            "set both swarm:sshPublicKey and swarm:sshPrivateKey (the private one with --secret), "
            "or neither to let the program generate a key pair",
        )
        return None
    if not isinstance(public_key, str) or not SSH_PUBLIC_KEY.match(public_key.strip()):
        found.problem("sshPublicKey", "is not an OpenSSH public key line ('ssh-ed25519 AAAA... comment')")
        return None
    return public_key.strip()


@known_key("sshAuthorizedKeys", type="list of string", default="`[]`",
           doc="operators' OpenSSH public keys (`ssh-ed25519 AAAA... alice`), authorized for root on every node "
               "beside the program's own key; adding or removing one rewrites `authorized_keys` in place and "
               "replaces no droplet (docs/day-2-operations.md, \"SSH keys\")")
def _parse_authorized_keys(value: Any, found: Collector) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        found.problem("sshAuthorizedKeys", "must be a list of OpenSSH public key lines, e.g. "
                      "`pulumi config set --path 'swarm:sshAuthorizedKeys[0]' \"$(cat ~/.ssh/id_ed25519.pub)\"`")
        return ()
    keys: list[str] = []
    seen: dict[str, int] = {}
    for index, line in enumerate(value):
        key = ("sshAuthorizedKeys", index)
        text = line.strip() if isinstance(line, str) else line
        if not isinstance(text, str) or "\n" in text or not SSH_PUBLIC_KEY.match(text):
            hint = "; that is a private key: give its .pub file instead" if isinstance(text, str) and "PRIVATE KEY" in text else ""
            found.problem(key, f"is not one OpenSSH public key line ('ssh-ed25519 AAAA... comment'){hint}")
            continue
        # Options before the key type (`from="..." ssh-ed25519 ...`) are refused by the pattern: the
        # line is written to authorized_keys as it is, and the program's own key must stay usable.
        blob = text.split()[1]
        if blob in seen:
            found.problem(key, f"the same key as sshAuthorizedKeys[{seen[blob]}]; list each key once")
            continue
        seen[blob] = index
        keys.append(text)
    return tuple(keys)


@known_key("stackFile", type="string", default="`stacks/<stack>.yaml`",
           doc="the stack's Compose file, relative to the project root; it must exist")
def _parse_stack_file(value: Any, stack: str, project_root: Path, found: Collector) -> Path:
    relative = value if value is not None else f"stacks/{stack}.yaml"
    if not isinstance(relative, str) or not relative:
        found.problem("stackFile", f"{value!r} must be a path relative to the project root, e.g. stacks/{stack}.yaml")
        return project_root
    path = (project_root / relative).resolve()
    if not path.is_file():
        found.problem(
            "stackFile",
            f"stack file {relative} does not exist; create it (a Compose file, see docs/stack-files.md) "
            f"or point swarm:stackFile at an existing one",
        )
    return path


# ---- sources of raw values -------------------------------------------------------------------

def _decode(raw: str) -> Any:
    """Pulumi hands object and list values to the program as JSON text, strings as they are."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


@dataclass(frozen=True)
class SecretValues:
    """The secret keys' values, as Pulumi secrets (encrypted in state, never in a log). None: not set."""

    ssh_private_key: pulumi.Output[str] | None
    registry_password: pulumi.Output[str] | None
    ingress_certificate: pulumi.Output[str] | None
    ingress_private_key: pulumi.Output[str] | None
    secrets: pulumi.Output[dict[str, str]]  # swarm:secrets, {} when not set
    alerts_webhook_url: pulumi.Output[str | None] | None = None  # swarm:alerts.webhookUrl


def from_pulumi(project_root: Path) -> tuple[ClusterConfig, SecretValues]:
    """The running program's configuration, and its secret values as secret Outputs: the
    configuration only checks their shape; the program wires the Outputs into resources."""
    return config_from_pulumi(project_root), secret_values_from_pulumi()


def config_from_pulumi(project_root: Path) -> ClusterConfig:
    """The running program's configuration (ConfigError, with what could be read, if invalid)."""
    import pulumi

    settings = pulumi.Config(NAMESPACE)
    values = {key: _decode(raw) for key in _pulumi_config_names() if (raw := settings.get(key)) is not None}
    stack = pulumi.get_stack()
    return parse_config(values, stack=stack, project_root=project_root, source=f"Pulumi.{stack}.yaml")


def secret_values_from_pulumi() -> SecretValues:
    """The secret keys' values as secret Outputs: the configuration only checked their shape."""
    import pulumi

    settings = pulumi.Config(NAMESPACE)
    return SecretValues(
        ssh_private_key=settings.get_secret("sshPrivateKey"),
        registry_password=settings.get_secret("registryPassword"),
        ingress_certificate=settings.get_secret("ingressCertificate"),
        ingress_private_key=settings.get_secret("ingressPrivateKey"),
        secrets=settings.get_secret_object("secrets") or pulumi.Output.secret({}),
        alerts_webhook_url=_alerts_webhook_url(settings),
    )


def _alerts_webhook_url(settings: pulumi.Config) -> pulumi.Output[str | None] | None:
    """swarm:alerts.webhookUrl as a secret Output: it is set with `--secret --path`, which makes the
    whole of swarm:alerts a secret; read as one, the URL stays secret whichever way it was set."""
    alerts = settings.get_secret_object("alerts")
    if alerts is None:
        return None
    return alerts.apply(lambda value: value.get("webhookUrl") if isinstance(value, dict) else None)


def _pulumi_config_names() -> list[str]:
    """Every `swarm:*` key the engine handed the program, known or not (an unknown one is a
    typo to report, not to ignore)."""
    from pulumi.runtime import config as runtime_config  # the SDK keeps no public list of keys

    names = {*runtime_config.CONFIG.get(), *runtime_config.get_config_env()}
    return sorted(name.split(":", 1)[1] for name in names if name.startswith(f"{NAMESPACE}:"))


def load_stack_config_file(project_root: Path, stack: str) -> ClusterConfig:
    """Offline reading of `Pulumi.<stack>.yaml` (plan command, tests). Secrets stay encrypted:
    only their presence matters here. Read as Pulumi reads it (Go's YAML: a duplicate key is an
    error, not the last value winning silently); every problem is placed at its key's line."""
    from swarm.compose import read_yaml_document  # the stack files' reader: same rules, positions

    path = project_root / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        raise ConfigError(path.name, [config_problem("(file)", f"{path.name} does not exist; "
                                                     f"{_stack_hint(project_root, stack)}")])
    try:
        read = read_yaml_document(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        line, column = yaml_error_mark(error) or (None, None)
        problem = Problem(path.name, (), describe_yaml_error(error, with_mark=False), line=line, column=column)
        raise ConfigError(display_path(path), [problem]) from None
    document = read.value
    config = document.get("config") if isinstance(document, dict) else None
    if not isinstance(config, dict):
        config = {}
    values = {
        key.split(":", 1)[1]: value
        for key, value in config.items()
        if isinstance(key, str) and key.startswith(f"{NAMESPACE}:")
    }
    try:
        parsed = parse_config(values, stack=stack, project_root=project_root, source=path.name, from_file=True)
    except ConfigError as error:
        partial = error.partial
        if isinstance(partial, ClusterConfig):
            partial = dataclasses.replace(partial, positions=read.positions)
            partial = dataclasses.replace(partial, warnings=tuple(map(partial.place, partial.warnings)))
            raise ConfigError(error.source, map(partial.place, error.problems), partial=partial) from None
        raise
    parsed = dataclasses.replace(parsed, positions=read.positions)
    return dataclasses.replace(parsed, warnings=tuple(map(parsed.place, parsed.warnings)))


def _stack_hint(project_root: Path, stack: str) -> str:
    """What to do about a stack with no configuration file: a typo of a stack that has one, or `stack init`."""
    stacks = sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in project_root.glob("Pulumi.*.yaml"))
    if matches := close_matches(stack, stacks, limit=1):
        return f"did you mean --stack {matches[0]}? (stacks here: {', '.join(stacks)})"
    known = f" (stacks here: {', '.join(stacks)})" if stacks else ""
    return f"create it with `pulumi stack init {stack}`{known}"
