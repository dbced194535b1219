"""Tests of swarm/node_scripts/: the shell files, their renderer and the modules that render them."""
