"""What a change to each resource type does, by the providers' own schemas.

The lifecycle engine (tests/lifecycle/engine.py) diffs a registration against the state and
asks this table whether the changed properties replace the resource (ForceNew in a Terraform
schema, `replaceOnChanges` in a native provider's schema) or update it in place. Property names
are the Pulumi (camelCase) input names the program registers.

| type | replaces on a change of | updates in place | source |
|---|---|---|---|
| digitalocean Droplet | image, region, sshKeys, userData, vpcUuid, monitoring, dropletAgent | size (power off, resize, power on), name, tags, volumeIds, backups, gracefulShutdown, resizeDisk, ipv6 off→on | digitalocean/terraform-provider-digitalocean digitalocean/droplet/resource_droplet.go (schema: `ForceNew: true`; update: `DropletActions.PowerOff` → `Resize` → power on) |
| digitalocean Volume | region, name, description, snapshotId, initialFilesystemType, initialFilesystemLabel | size (grow), tags | digitalocean/volume/resource_volume.go (`description`: "ForceNew: true, // Update-ability Coming Soon ™") |
| digitalocean ReservedIp | region | — | digitalocean/reservedip/resource_reserved_ip.go |
| digitalocean ReservedIpAssignment | ipAddress, dropletId | — | digitalocean/reservedip/resource_reserved_ip_assignment.go |
| digitalocean Vpc | region, ipRange | name, description | digitalocean/vpc/resource_vpc.go |
| digitalocean Tag | name | — | digitalocean/tag/resource_tag.go |
| digitalocean SshKey | publicKey | name | digitalocean/sshkey/resource_ssh_key.go |
| digitalocean Firewall | — | every field | digitalocean/firewall/resource_firewall.go |
| digitalocean LoadBalancer | region, vpcUuid, type | the rest | digitalocean/loadbalancer/resource_loadbalancer.go |
| digitalocean Certificate | every field | — | digitalocean/certificate/resource_certificate.go |
| digitalocean DnsRecord | domain, type | name, value, ttl, priority, … | digitalocean/domain/resource_record.go |
| digitalocean SpacesBucket | name, region | acl, lifecycle rules, … | digitalocean/spaces/resource_spaces_bucket.go |
| digitalocean SpacesKey | — | name, grants | digitalocean/spaces/spaces_entities.go (`spacesKeyResourceSchema`: no `ForceNew`), resource_spaces_key.go (`SpacesKeys.Update` with name and grants) |
| digitalocean MonitorAlert | — | every field (`UpdateAlertPolicy`) | digitalocean/monitoring/resource_monitor_alert.go (no `ForceNew`) |
| digitalocean UptimeCheck | — | every field | digitalocean/uptime/resource_uptime_check.go (`ForceNew` only on the computed `id`) |
| digitalocean UptimeAlert | — | every field (`UpdateAlert`) | digitalocean/uptime/resource_uptime_alert.go (no `ForceNew`) |
| digitalocean ContainerRegistryDockerCredentials | registryName | write, expirySeconds | digitalocean/registry/resource_container_registry_docker_credentials.go |
| command remote Command | triggers | create, update, delete, stdin, connection, environment, … (an update runs `update`, else `create`; `delete` runs with the *old* inputs) | pulumi/pulumi-command provider/pkg/provider/remote/command.go (`triggers`: `replaceOnChanges`), and its schema docs for `update` |
| docker Service | name, auth (registry credentials), mode (replicated ↔ global), taskSpec.containerSpec.hosts | everything else (`docker service update`) | kreuzwerker/terraform-provider-docker internal/provider/resource_docker_service.go (`ForceNew: true` on `name`, `auth`, `mode`, `hosts`) |
| docker Network | every field | — (networks cannot be changed) | internal/provider/resource_docker_network.go (all `ForceNew`) |
| docker Secret | every field | — (swarm secrets are immutable) | internal/provider/resource_docker_secret.go |
| docker ServiceConfig | every field | — (swarm configs are immutable) | internal/provider/resource_docker_config.go |
| docker provider | — | every field; its resources are not replaced | pulumi/pulumi-docker: a provider's configuration change is an update (the engine diffs providers like resources; no field of the docker provider is marked replace) |
| tls PrivateKey | algorithm, rsaBits, ecdsaCurve (every input) | — | hashicorp/terraform-provider-tls internal/provider/resource_private_key.go (`RequiresReplace`) |
| random RandomBytes | length, keepers (every input) | — | hashicorp/terraform-provider-random internal/provider/resource_bytes.go (`RequiresReplace`) |
| random RandomPassword | length, special, keepers, … (every input) | — | hashicorp/terraform-provider-random internal/provider/resource_password.go (`RequiresReplace` on every attribute) |
| component resources | — (never: they have no provider) | — | Pulumi: components have no CRUD of their own |
"""

from __future__ import annotations

from dataclasses import dataclass

EVERY_FIELD = "*"


@dataclass(frozen=True)
class Rule:
    replaces: frozenset[str]  # inputs whose change replaces; EVERY_FIELD for all of them
    source: str
    nested: frozenset[str] = frozenset()  # dotted paths inside an input ("taskSpec.containerSpec.hosts")

    def replace_keys(self, changed: set[str], old: dict | None = None, new: dict | None = None) -> set[str]:
        """The changed properties that force a replacement. Nested paths are compared when
        both input sets are given; without them (a dependent's property about to change), a
        change of the enclosing input counts."""
        if EVERY_FIELD in self.replaces:
            return set(changed)
        forced = changed & self.replaces
        for path in self.nested:
            top = path.split(".", 1)[0]
            if top in changed and (old is None or new is None or _at(old, path) != _at(new, path)):
                forced.add(path)
        return forced


def _at(values: dict, path: str):
    for key in path.split("."):
        if not isinstance(values, dict):
            return None
        values = values.get(key)
    return values


def _rule(source: str, *replaces: str, nested: tuple[str, ...] = ()) -> Rule:
    return Rule(frozenset(replaces), source, frozenset(nested))


_DO = "digitalocean/terraform-provider-digitalocean "
RULES: dict[str, Rule] = {
    "digitalocean:index/droplet:Droplet": _rule(
        _DO + "digitalocean/droplet/resource_droplet.go",
        "image", "region", "sshKeys", "userData", "vpcUuid", "monitoring", "dropletAgent",
    ),
    "digitalocean:index/volume:Volume": _rule(
        _DO + "digitalocean/volume/resource_volume.go",
        "region", "name", "description", "snapshotId", "initialFilesystemType", "initialFilesystemLabel",
    ),
    "digitalocean:index/reservedIp:ReservedIp": _rule(_DO + "digitalocean/reservedip/resource_reserved_ip.go", "region"),
    "digitalocean:index/reservedIpAssignment:ReservedIpAssignment": _rule(
        _DO + "digitalocean/reservedip/resource_reserved_ip_assignment.go", "ipAddress", "dropletId"
    ),
    "digitalocean:index/vpc:Vpc": _rule(_DO + "digitalocean/vpc/resource_vpc.go", "region", "ipRange"),
    "digitalocean:index/tag:Tag": _rule(_DO + "digitalocean/tag/resource_tag.go", "name"),
    "digitalocean:index/sshKey:SshKey": _rule(_DO + "digitalocean/sshkey/resource_ssh_key.go", "publicKey"),
    "digitalocean:index/firewall:Firewall": _rule(_DO + "digitalocean/firewall/resource_firewall.go"),
    "digitalocean:index/loadBalancer:LoadBalancer": _rule(
        _DO + "digitalocean/loadbalancer/resource_loadbalancer.go", "region", "vpcUuid", "type"
    ),
    "digitalocean:index/certificate:Certificate": _rule(
        _DO + "digitalocean/certificate/resource_certificate.go", EVERY_FIELD
    ),
    "digitalocean:index/dnsRecord:DnsRecord": _rule(_DO + "digitalocean/domain/resource_record.go", "domain", "type"),
    "digitalocean:index/spacesBucket:SpacesBucket": _rule(
        _DO + "digitalocean/spaces/resource_spaces_bucket.go", "name", "region"
    ),
    "digitalocean:index/spacesKey:SpacesKey": _rule(_DO + "digitalocean/spaces/spaces_entities.go"),
    "digitalocean:index/monitorAlert:MonitorAlert": _rule(_DO + "digitalocean/monitoring/resource_monitor_alert.go"),
    "digitalocean:index/uptimeCheck:UptimeCheck": _rule(_DO + "digitalocean/uptime/resource_uptime_check.go"),
    "digitalocean:index/uptimeAlert:UptimeAlert": _rule(_DO + "digitalocean/uptime/resource_uptime_alert.go"),
    "digitalocean:index/containerRegistryDockerCredentials:ContainerRegistryDockerCredentials": _rule(
        _DO + "digitalocean/registry/resource_container_registry_docker_credentials.go", "registryName"
    ),
    "command:remote:Command": _rule("pulumi/pulumi-command provider/pkg/provider/remote/command.go", "triggers"),
    # `auth` is ForceNew too: new registry credentials replace the service, and a replacement
    # created before the old one is deleted collides with its name (the swarm refuses a second
    # service of the same name). `mode` is ForceNew as a block: replicated <-> global.
    "docker:index/service:Service": _rule(
        "kreuzwerker/terraform-provider-docker internal/provider/resource_docker_service.go",
        "name", "auth", nested=("mode.global", "taskSpec.containerSpec.hosts"),
    ),
    "docker:index/network:Network": _rule(
        "kreuzwerker/terraform-provider-docker internal/provider/resource_docker_network.go", EVERY_FIELD
    ),
    "docker:index/secret:Secret": _rule(
        "kreuzwerker/terraform-provider-docker internal/provider/resource_docker_secret.go", EVERY_FIELD
    ),
    "docker:index/serviceConfig:ServiceConfig": _rule(
        "kreuzwerker/terraform-provider-docker internal/provider/resource_docker_config.go", EVERY_FIELD
    ),
    "pulumi:providers:docker": _rule("pulumi/pulumi-docker provider configuration"),
    "tls:index/privateKey:PrivateKey": _rule(
        "hashicorp/terraform-provider-tls internal/provider/resource_private_key.go", EVERY_FIELD
    ),
    "random:index/randomBytes:RandomBytes": _rule(
        "hashicorp/terraform-provider-random internal/provider/resource_bytes.go", EVERY_FIELD
    ),
    "random:index/randomPassword:RandomPassword": _rule(
        "hashicorp/terraform-provider-random internal/provider/resource_password.go", EVERY_FIELD
    ),
}


def rule_for(type_: str) -> Rule:
    """The rule of a type the program registers. An unknown type is an error, never a guess:
    a new resource type needs its row (and its source) in RULES first."""
    try:
        return RULES[type_]
    except KeyError:
        raise KeyError(
            f"the lifecycle engine has no replace rule for {type_}: add it to tests/lifecycle/rules.py "
            "from the provider's schema"
        ) from None
