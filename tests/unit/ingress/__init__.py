"""Tests of swarm/ingress/."""
