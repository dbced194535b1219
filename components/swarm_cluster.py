"""Forms the swarm on the pools' droplets with remote commands, and keeps membership in sync.

Per node, the dependency chain is:  ready [-> volume] -> join -> settings  (the first manager:
ready [-> volume] -> init -> settings), and every join also waits for `init -> tokens`. No join
waits for another join, so the graph's depth does not grow with the node count and workers join
in parallel.

- ready:    cloud-init finished and Docker answers (retries SSH while the droplet boots).
- volume:   on a node with a block-storage volume, mounts it (formats it only when provably
            blank), before the node joins or inits, so nothing can use the mount path before it
            is mounted. A changed script or mount path re-runs it in place, replacing no droplet.
- probe:    on every other manager, before init: its address and manager join token when it
            holds a swarm (secret, not logged). Re-run whenever the first manager's droplet changes.
- init:     brings the first manager in, advertising its VPC address: joins the swarm a probe
            found (the first of three managers replaced); else, on a successor of a lone manager
            with a volume, restores the swarm state kept there; else `swarm init`, which only a
            cluster's first `up` does.
- swarm-state: (the first manager) its delete hands over before the droplet goes: one of several
            managers demotes itself (leadership moves while it is up); a lone manager with a
            volume keeps its swarm state there, so that services, secrets and networks survive.
            It runs at the reserved IP (alive even when the droplet was lost) and acts on the
            node ID init printed: on a successor holding the IP by then, it demotes the old node
            from there (or leaves a lost one to its retirement), never the successor itself.
- tokens:   both join tokens as a secret output; never logged, handed to joins on stdin.
- join:     joins the node on its VPC address. It has no delete: see below.
- settings: at the manager's reserved IP, sets the node's role and labels by node ID; deleting it
            retires the node, the first manager's own old node too (drain, wait until its tasks run elsewhere, remove it from
            `docker node ls`; one node per pool at a time). It is replaced whenever the node ID
            changes, so a replaced droplet's old node is always retired.
- folders:  on a node where a service with bind mounts may run, creates the bind sources
            (after its settings, so after any volume they live on is mounted).

Removal is authoritative on the manager and needs nothing from the node: a delete command runs
over its *old* connection, and when the droplet is already gone pulumi-command fails after
`dial_error_limit` dial errors, on every later `up` too (it has no "ignore errors" option). So
the join command has no delete (no `swarm leave` on the node): `docker node rm --force` on the
manager removes the node whatever its state, the droplet is destroyed right after, and a
machine that lived on would leave and rejoin by itself at its next join (join_script).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_digitalocean as do
from pulumi_command import remote

from components.node_pool import Machine
from swarm import node_scripts
from swarm.model import Folder
from swarm.node_scripts import volume_device

# A droplet refuses SSH while it boots; the ready command dials until it answers, bounded by
# its own timeout rather than by the provider's short default dial budget.
BOOT_TIMEOUT = "20m"


@dataclass
class SwarmClusterArgs:
    machines: list[Machine]  # in config order; the first manager-role machine inits the swarm
    ssh_private_key: pulumi.Input[str]
    region: str  # of the manager's reserved IP
    ssh_user: str = "root"
    # node name -> bind-mount sources to create there (swarm.plan.rollout decides where)
    folders: Mapping[str, Sequence[Folder]] = field(default_factory=dict)
    # how long a retired node's tasks may take to run elsewhere before `up` fails
    retire_timeout_seconds: int = node_scripts.RETIRE_TIMEOUT_SECONDS


@dataclass
class SwarmNode:
    machine: Machine
    node_id: pulumi.Output[str]


@dataclass
class ManagerAccess:
    """SSH to one manager at its droplet's own address (not the reserved IP), for what each
    manager holds itself (the scheduler)."""

    name: str  # `<pool>-<n>`
    connection: remote.ConnectionArgs
    droplet_id: pulumi.Output[str]


class SwarmCluster(pulumi.ComponentResource):
    nodes: list[SwarmNode]
    manager_public_ip: pulumi.Output[str]
    manager_private_ip: pulumi.Output[str]
    docker_host: pulumi.Output[str]  # DOCKER_HOST value that reaches the swarm's manager
    known_hosts: pulumi.Output[str]  # known_hosts lines: the manager's reserved IP, every node's public address
    manager_known_hosts: pulumi.Output[str]  # the first line alone: what the Docker provider checks
    node_table: pulumi.Output[list[dict]]
    # Depend on these to run after the whole swarm is formed and labelled.
    ready: list[pulumi.Resource]
    manager_connection: remote.ConnectionArgs  # SSH to the first manager, for commands on the swarm
    managers: list[ManagerAccess]  # every manager, in config order
    folders: dict[str, remote.Command]  # node name -> the command that prepares its folders

    def __init__(self, name: str, args: SwarmClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("swarm:index:Cluster", name, None, opts)
        self._name = name
        self._args = args
        managers = [m for m in args.machines if m.node.role == "manager"]
        first = managers[0]
        # The manager is reached at a reserved IP that moves to its successor when its droplet is
        # replaced: a command's delete runs with its *old* connection (a retired node's settings,
        # after a manager replacement), and must still find a manager there, not a dead address.
        # The old assignment goes first: assigning the IP to the successor moves it, and deleting
        # the old assignment afterwards would unassign it from the successor.
        address = do.ReservedIp(f"{name}-manager-address", region=args.region, opts=pulumi.ResourceOptions(parent=self))
        assignment = do.ReservedIpAssignment(
            f"{name}-manager-address-assignment",
            ip_address=address.ip_address,
            droplet_id=first.droplet_id.apply(int),
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )
        manager_host = assignment.ip_address
        # Pinned to the manager's own host key: its successor, which the reserved IP moves to, has
        # the same key (one per node name), and anything else answering there is refused.
        manager_connection = remote.ConnectionArgs(host=manager_host, user=args.ssh_user,
                                                   private_key=args.ssh_private_key, host_key=first.host_key)

        prepared = {id(machine): self._prepared(machine) for machine in args.machines}
        volume = first.node.pool.volume
        state_dir = node_scripts.swarm_state_dir(volume.mount_path) if volume else None
        # The other managers, asked just before init whether they hold a swarm: a successor of the
        # first manager joins theirs instead of starting one. Re-asked whenever the first
        # manager's droplet changes.
        probes = [
            remote.Command(
                f"{name}-{_short(machine)}-probe",
                connection=self._connection(machine),
                create=node_scripts.manager_probe_script(),
                triggers=[first.droplet_id],
                logging=remote.Logging.NONE,  # a manager join token
                add_previous_output_in_env=False,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[prepared[id(machine)]],
                                            additional_secret_outputs=["stdout"]),
            )
            for machine in managers[1:]
        ]
        init = remote.Command(
            f"{name}-init",
            connection=manager_connection,
            create=first.private_ip.apply(lambda ip: node_scripts.init_script(ip, state_dir)),
            # `<address> <token>` lines; secret on the program side too, so it is encrypted in state.
            stdin=pulumi.Output.secret(pulumi.Output.all(*(probe.stdout for probe in probes)).apply("".join))
            if probes else None,
            triggers=[first.droplet_id],
            add_previous_output_in_env=False,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[prepared[id(first)]]),
        )
        tokens_command = remote.Command(
            f"{name}-join-tokens",
            connection=manager_connection,
            create=node_scripts.join_tokens_script(),
            triggers=[init.stdout],
            logging=remote.Logging.NONE,
            add_previous_output_in_env=False,
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["stdout"]),
        )
        # Secret on the program side too, so everything derived from it (join stdin) is encrypted in
        # state even before the engine applies additional_secret_outputs.
        tokens = pulumi.Output.secret(tokens_command.stdout).apply(json.loads)
        manager_addresses = pulumi.Output.all(*(m.private_ip for m in managers))

        self.nodes = []
        self.folders = {}
        settings_commands = []
        for machine in args.machines:
            if machine is first:
                node_id = init.stdout.apply(str.strip)
            else:
                node_id = self._join(machine, manager_addresses, tokens, prepared[id(machine)])
            settings = self._settings(machine, node_id, connection=manager_connection)
            settings_commands.append(settings)
            self.nodes.append(SwarmNode(machine, node_id))
            if args.folders.get(machine.node.name):
                self.folders[machine.node.name] = self._folders(machine, args.folders[machine.node.name], settings)
        # Replaced with its droplet and deleted before it (dependents first; before the successor
        # too when the volume makes the droplet delete-before-replace): one of several managers
        # demotes itself, so that leadership moves while it is still up; a lone manager keeps its
        # swarm state on its volume, and init restores it on the successor. The name predates
        # the demotion: kept, so that existing stacks update the command rather than run its delete.
        # It goes to the reserved IP, never to the droplet's own address: a droplet lost outside
        # Pulumi (a host failure, then `pulumi refresh`) leaves this command in the state, and a
        # delete at its address would fail on every later `up` (pulumi-command has no real read
        # and no "ignore unreachable"; pulumi/pulumi-command#104). With a volume the droplet is
        # replaced delete-before-replace and this delete runs before the assignment's (it
        # depends on it), so the reserved IP still reaches the old node; without one, or after a
        # loss, it reaches the successor (same name, so same host key). The script checks the
        # node ID its init printed: on any other node it demotes the old one from there when it
        # is still a reachable manager, else does nothing. It depends on every node's
        # settings, so that it is deleted before them: the handover demotes the old node (and
        # waits until it is no manager; leadership moves if it led) before any retirement of the
        # run (the settings' deletes) starts. Side by side, a retirement failed on the leader
        # change ("rpc error: ... context canceled", seen on the sandbox).
        remote.Command(
            f"{name}-{_short(first)}-swarm-state",
            connection=manager_connection,
            create=node_scripts.keep_swarm_state_script(state_dir, volume.mount_path if volume else None),
            delete=init.stdout.apply(lambda stdout: node_scripts.handover_script(state_dir, stdout.strip())),
            triggers=[first.droplet_id],
            add_previous_output_in_env=False,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[init, *settings_commands]),
        )

        self.manager_public_ip = manager_host
        self.manager_private_ip = first.private_ip
        self.docker_host = manager_host.apply(lambda ip: f"ssh://{args.ssh_user}@{ip}")
        # The manager's reserved IP first (where the Docker provider and operators reach it), then
        # every node's own address. The Docker provider gets the manager's line alone: its inputs
        # (and so every service it manages) must not change when a worker comes or goes.
        manager_line = pulumi.Output.concat(manager_host, " ", first.host_key)
        self.manager_known_hosts = manager_line.apply(lambda line: f"{line}\n")
        self.known_hosts = pulumi.Output.all(
            manager_line,
            *(pulumi.Output.concat(m.public_ip, " ", m.host_key) for m in args.machines),
        ).apply(lambda lines: "".join(f"{line}\n" for line in lines))
        self.node_table = pulumi.Output.all(*(self._table_row(node) for node in self.nodes))
        self.ready = settings_commands
        self.manager_connection = manager_connection
        self.managers = [ManagerAccess(_short(m), self._connection(m), m.droplet_id) for m in managers]
        self.register_outputs(
            {
                "managerPublicIp": self.manager_public_ip,
                "nodeIds": {node.machine.node.name: node.node_id for node in self.nodes},
            }
        )

    @staticmethod
    def _table_row(node: SwarmNode) -> pulumi.Output[dict]:
        declared = node.machine.node
        return pulumi.Output.all(
            public_ip=node.machine.public_ip, private_ip=node.machine.private_ip, node_id=node.node_id
        ).apply(
            lambda live: {
                "name": declared.name,
                "pool": declared.pool.name,
                "role": declared.role,
                "size": declared.pool.size.slug,
                "publicIp": live["public_ip"],
                "privateIp": live["private_ip"],
                "nodeId": live["node_id"],
                "labels": dict(declared.pool.labels),
            }
        )

    def _connection(self, machine: Machine, *, dial_error_limit: int | None = None) -> remote.ConnectionArgs:
        return remote.ConnectionArgs(
            host=machine.public_ip,
            user=self._args.ssh_user,
            private_key=self._args.ssh_private_key,
            # Pinned: a host presenting any other key is refused before anything is sent (the join
            # tokens, secrets and registry credentials travel over these connections).
            host_key=machine.host_key,
            dial_error_limit=dial_error_limit,
        )

    def _ready_command(self, machine: Machine) -> remote.Command:
        return remote.Command(
            f"{self._name}-{_short(machine)}-ready",
            connection=self._connection(machine, dial_error_limit=-1),
            create=node_scripts.wait_ready_script(),
            triggers=[machine.droplet_id],
            add_previous_output_in_env=False,
            opts=pulumi.ResourceOptions(
                parent=self,
                custom_timeouts=pulumi.CustomTimeouts(create=BOOT_TIMEOUT, update=BOOT_TIMEOUT),
            ),
        )

    def _prepared(self, machine: Machine) -> remote.Command:
        """The node's ready command, then its volume mount if it has a volume: what its join (or
        init) waits for."""
        ready = self._ready_command(machine)
        volume = machine.node.pool.volume
        if volume is None or machine.volume_name is None:
            return ready
        return remote.Command(
            f"{self._name}-{_short(machine)}-volume",
            connection=self._connection(machine),
            create=machine.volume_name.apply(
                lambda name: node_scripts.mount_volume_script(volume_device(name), volume.mount_path)
            ),
            triggers=[machine.droplet_id],
            add_previous_output_in_env=False,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[ready]),
        )

    def _join(self, machine: Machine, manager_addresses: pulumi.Output[list[str]], tokens: pulumi.Output[dict],
              prepared: remote.Command) -> pulumi.Output[str]:
        """`manager_addresses`: every manager's VPC address, the first manager's first (the one
        the node joins through)."""
        role = machine.node.role
        join = remote.Command(
            f"{self._name}-{_short(machine)}-join",
            connection=self._connection(machine),
            create=pulumi.Output.all(machine.private_ip, manager_addresses).apply(
                lambda values: node_scripts.join_script(values[0], values[1][0], values[1])
            ),
            # The token travels on stdin: it is in no command line, and stdin is kept in state
            # as a secret because the tokens output is one.
            stdin=tokens.apply(lambda t: t[role] + "\n"),
            triggers=[machine.droplet_id],
            add_previous_output_in_env=False,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[prepared]),
        )
        return join.stdout.apply(str.strip)

    def _settings(self, machine: Machine, node_id: pulumi.Output[str], *, connection: remote.ConnectionArgs) -> remote.Command:
        node = machine.node
        return remote.Command(
            f"{self._name}-{_short(machine)}-settings",
            connection=connection,
            create=node_id.apply(lambda nid: node_scripts.node_settings_script(nid, node.role, node.pool.labels)),
            # Every node, the first manager's too, is drained and removed when it goes: the delete
            # runs at the reserved IP, on the first manager's successor by then (the retire
            # script will not remove the manager it runs on).
            # Managers retire one at a time across every manager pool (node_scripts.slot_group).
            delete=node_id.apply(
                lambda nid: node_scripts.retire_script(nid, node_scripts.slot_group(node.role, node.pool.name),
                                                       self._args.retire_timeout_seconds,
                                                       max_unavailable=node.pool.max_unavailable)
            ),
            triggers=[node_id],
            add_previous_output_in_env=False,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _folders(self, machine: Machine, folders: Sequence[Folder], settings: remote.Command) -> remote.Command:
        return remote.Command(
            f"{self._name}-{_short(machine)}-folders",
            connection=self._connection(machine),
            create=node_scripts.prepare_folders_script(folders),
            # A new droplet needs them again; a changed list re-runs the (idempotent) script.
            triggers=[machine.droplet_id],
            add_previous_output_in_env=False,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[settings]),
        )


def _short(machine: Machine) -> str:
    """`<pool>-<n>`: the node's name without the stack prefix the component name already has."""
    return f"{machine.node.pool.name}-{machine.node.index}"
