"""swarm: the pure core of the Pulumi program (and of `python -m swarm`), one package per concern:
config, compose, values, plan, capacity, ingress, backups, node_scripts (README.md, "Architecture").

Beside the packages, the shared basics every package uses: `diagnostics` (problems and the one
error that stops a deployment), `model` (names shared by every layer), `suggest` ("did you mean").
"""
