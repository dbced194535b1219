"""Values parsed exactly as Docker's Go code parses them, one file per value type (as compose-go
does), shared by the stack file loader (swarm/compose/) and the configuration. Each parser
raises ValueError with the reason."""
