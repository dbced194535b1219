"""Keeps every node's root authorized keys and Docker daemon settings in sync, in place: a change
to either replaces no droplet (swarm/node_access.py says why and how).

Per node, after it joined (its commands carry its swarm node ID, so they wait for the join and run
again on a successor droplet):
- access:         on the node: root's authorized_keys = the program's key + swarm:sshAuthorizedKeys.
- daemon:         on the node: daemon.json merged with the program's settings; Docker restarted
                  only when they changed, once the node runs no task.
- daemon-rollout: on the manager (managers' nodes first, then the workers' pools side by side):
                  when the node's Docker does not run the current settings, drains
                  it (at most the pool's maxUnavailable at a time, in its retirement slots), waits
                  until its tasks run elsewhere and it is back with them, then makes it available.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_command import remote

from components.swarm_cluster import SwarmNode
from swarm import day2_scripts, node_access

# Slack for a node's own Docker restart on top of its pool's drains.
RESTART_SECONDS = 120


@dataclass
class NodeConfigArgs:
    nodes: list[SwarmNode]
    ssh_private_key: pulumi.Input[str]
    program_public_key: pulumi.Input[str]  # the key the program logs in with: always kept first
    operator_keys: tuple[str, ...]  # swarm:sshAuthorizedKeys
    manager_connection: remote.ConnectionArgs
    drain_timeout_seconds: int = day2_scripts.RETIRE_TIMEOUT_SECONDS  # per node, as retirement
    ssh_user: str = "root"


class NodeConfig(pulumi.ComponentResource):
    commands: list[remote.Command]

    def __init__(self, name: str, args: NodeConfigArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("swarm:index:NodeConfig", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.commands = []
        # Managers restart first, then the workers' pools, each in its own slots: a manager's Docker
        # restarting stops the control plane, and a worker drained meanwhile would have its tasks
        # moved while no manager schedules them.
        manager_rollouts: list[remote.Command] = []
        ordered = sorted(args.nodes, key=lambda n: n.machine.node.role != "manager")
        for swarm_node in ordered:
            machine, node = swarm_node.machine, swarm_node.machine.node
            short = f"{name}-{node.pool.name}-{node.index}"
            connection = remote.ConnectionArgs(host=machine.public_ip, user=args.ssh_user,
                                               private_key=args.ssh_private_key, host_key=machine.host_key)
            access = remote.Command(
                f"{short}-access",
                connection=connection,
                create=pulumi.Output.all(swarm_node.node_id, args.program_public_key).apply(
                    lambda values: node_access.authorized_keys_script(values[0], values[1], args.operator_keys)
                ),
                add_previous_output_in_env=False,
                opts=child,
            )
            # The node waits for its drain as long as the manager's command may wait for its slot and
            # then drain it. Not derived from the pool's size: a scale-up would re-run every node's
            # command for nothing.
            drain_wait = day2_scripts.LOCK_WAIT_SECONDS + args.drain_timeout_seconds + RESTART_SECONDS
            daemon = remote.Command(
                f"{short}-daemon",
                connection=connection,
                create=swarm_node.node_id.apply(lambda node_id: node_access.daemon_script(node_id, drain_wait)),
                add_previous_output_in_env=False,
                opts=child,
            )
            rollout = remote.Command(
                f"{short}-daemon-rollout",
                connection=args.manager_connection,
                create=swarm_node.node_id.apply(
                    lambda node_id, pool=node.pool: day2_scripts.daemon_rollout_script(
                        node_id, pool.name, node_access.daemon_label(), args.drain_timeout_seconds,
                        max_unavailable=pool.max_unavailable)
                ),
                add_previous_output_in_env=False,
                opts=child if node.role == "manager" else pulumi.ResourceOptions(parent=self, depends_on=manager_rollouts),
            )
            if node.role == "manager":
                manager_rollouts.append(rollout)
            self.commands += [access, daemon, rollout]
        self.register_outputs({})
