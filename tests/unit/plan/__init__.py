"""Tests of swarm/plan/."""
