"""Tests of swarm/capacity/, one module per source module."""
