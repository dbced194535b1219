"""Tests of swarm/backups/."""
