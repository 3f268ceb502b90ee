"""Stand-ins for what the project talks to: ``nexus`` (the Nexus API: records every upload, injects
faults) and ``model`` (the model provider OpenClaw's gateway calls, so fixtures chat offline)."""
