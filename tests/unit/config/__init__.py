"""Tests of swarm/config/, one module per reader."""
