"""The ports: Protocols the core depends on and the adapters implement."""
