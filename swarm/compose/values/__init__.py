"""Compose values parsed exactly as Docker's Go code parses them, one file per value type (as
compose-go does). Each parser raises ValueError with the reason."""
