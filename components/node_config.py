"""Keeps every node's root authorized keys and Docker daemon settings in sync, in place: a change
to either replaces no droplet (swarm/node_scripts/node_config.py says why and how).

Per node, after it joined (its commands carry its swarm node ID, so they wait for the join and run
again on a successor droplet):
- access:        on the node: root's authorized_keys = the program's key + swarm:sshAuthorizedKeys.
- daemon-drain:  on the manager: when the node's Docker does not run the current settings, takes
                 one of the pool's retirement slots (maxUnavailable), drains the node and waits
                 until its tasks run elsewhere.
- daemon:        on the node, after its drain: daemon.json merged with the program's settings;
                 Docker restarted only when they changed.
- daemon-return: on the manager, after it: waits until the node is back with the settings, gives
                 it its availability back and frees the slot.
The managers' nodes go first, one after another across every manager pool (each waits for the
previous manager's return; they share one slot as well: each is out of the quorum while drained);
the workers' pools then run side by side, each within its slots. A leading manager among others
is demoted by its drain (leadership moves while it is up) and promoted again before its restart,
so the first manager's drain and return run on another manager: the reserved IP reaches the first
manager itself, which answers no swarm command while demoted.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_command import remote

from components.swarm_cluster import SwarmNode
from swarm import node_scripts


@dataclass
class NodeConfigArgs:
    nodes: list[SwarmNode]
    ssh_private_key: pulumi.Input[str]
    program_public_key: pulumi.Input[str]  # the key the program logs in with: always kept first
    operator_keys: tuple[str, ...]  # swarm:sshAuthorizedKeys
    manager_connection: remote.ConnectionArgs
    drain_timeout_seconds: int = node_scripts.RETIRE_TIMEOUT_SECONDS  # per node, as retirement
    ssh_user: str = "root"


class NodeConfig(pulumi.ComponentResource):
    commands: list[remote.Command]

    def __init__(self, name: str, args: NodeConfigArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("swarm:index:NodeConfig", name, None, opts)
        self.commands = []
        # A manager's Docker restarting stops the control plane: no worker is drained meanwhile.
        managers_done: list[remote.Command] = []
        connections = {
            id(n): remote.ConnectionArgs(host=n.machine.public_ip, user=args.ssh_user,
                                         private_key=args.ssh_private_key, host_key=n.machine.host_key)
            for n in args.nodes
        }
        managers = [n for n in args.nodes if n.machine.node.role == "manager"]
        for swarm_node in sorted(args.nodes, key=lambda n: n.machine.node.role != "manager"):
            node = swarm_node.machine.node
            short = f"{name}-{node.pool.name}-{node.index}"
            connection = connections[id(swarm_node)]
            # Where its drain and return run: the reserved IP (the first manager), except for the
            # first manager itself among others, whose drain may demote it: the second manager.
            on_manager = (connections[id(managers[1])] if len(managers) > 1 and swarm_node is managers[0]
                          else args.manager_connection)

            def command(suffix: str, create: pulumi.Input[str], on: remote.ConnectionArgs,
                        after: list[pulumi.Resource], short: str = short) -> remote.Command:
                created = remote.Command(f"{short}-{suffix}", connection=on, create=create,
                                         add_previous_output_in_env=False,
                                         opts=pulumi.ResourceOptions(parent=self, depends_on=after))
                self.commands.append(created)
                return created

            command("access", pulumi.Output.all(swarm_node.node_id, args.program_public_key).apply(
                lambda values: node_scripts.authorized_keys_script(values[0], values[1], args.operator_keys)
            ), connection, [])
            pool = node.pool
            # Managers take the one managers' slot, whatever their pool: one out of the quorum at a time.
            group = node_scripts.slot_group(node.role, pool.name)
            # Managers one after another (their slots live on two hosts: the second manager holds
            # the first one's); workers after every manager.
            drain = command("daemon-drain", swarm_node.node_id.apply(
                lambda node_id, pool=pool, group=group: node_scripts.daemon_drain_script(
                    node_id, group, node_scripts.daemon_label(), args.drain_timeout_seconds,
                    max_unavailable=pool.max_unavailable)
            ), on_manager, list(managers_done[-1:]) if node.role == "manager" else list(managers_done))
            daemon = command("daemon", swarm_node.node_id.apply(node_scripts.daemon_script), connection, [drain])
            back = command("daemon-return", swarm_node.node_id.apply(
                lambda node_id, group=group, role=node.role: node_scripts.daemon_return_script(
                    node_id, group, node_scripts.daemon_label(), args.drain_timeout_seconds, role=role)
            ), on_manager, [daemon])
            if node.role == "manager":
                managers_done.append(back)
        self.register_outputs({})
