#!/bin/sh
# Join the swarm whose manager listens on MANAGER (address:port), with the token read from
# stdin, advertising this node's VPC address ADDR; prints the node ID. A node already in the
# swarm is left alone; one in another swarm, pending or in error leaves and joins again. See
# swarm.scripts.join_script.
# MANAGERS: today's managers, address:port, separated by blanks.
# inputs: ADDR PORT MANAGER MANAGERS MANAGER_WAIT
# uses: _swarm
set -eu
IFS= read -r token || { echo "no join token on stdin" >&2; exit 1; }
state=$(local_state)
# The managers this node knows, address:port, blank-separated with a blank on either side.
known_managers() {
  echo " $(docker info --format '{{range .Swarm.RemoteManagers}}{{.Addr}} {{end}}')"
}
case "$state" in
  active)
    known=$(known_managers)
    ours=""
    for address in $MANAGERS; do
      case "$known" in *" $address "*) ours=1 ;; esac
    done
    # A node that knows one of today's managers is in today's swarm: a manager that joined it a
    # moment ago reaches the node's manager list within seconds.
    deadline=$(( $(date +%s) + MANAGER_WAIT ))
    until case "$known" in
            *" $MANAGER "*) true ;;
            *) false ;;
          esac; do
      if [ -z "$ours" ] || [ "$(date +%s)" -ge "$deadline" ]; then
        echo "$(hostname): in a swarm that does not know the manager $MANAGER: leaving it to join that one" >&2
        docker swarm leave --force >/dev/null
        state=inactive
        break
      fi
      sleep 1
      known=$(known_managers)
    done
    ;;
  pending | error)
    docker swarm leave --force >/dev/null
    state=inactive
    ;;
  inactive) ;;
  *)
    echo "$(hostname): unexpected swarm state '$state' (locked: run docker swarm unlock)" >&2
    exit 1
    ;;
esac
if [ "$state" = inactive ]; then
  swarm_join "$ADDR" "$PORT" "$token" "$MANAGER"
fi
state=$(local_state)
if [ "$state" != active ]; then
  echo "$(hostname): swarm state '$state' after joining $MANAGER, not active" >&2
  exit 1
fi
docker info --format '{{.Swarm.NodeID}}'
