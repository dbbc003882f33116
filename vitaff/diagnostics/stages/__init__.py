"""One CLI entry point per diagnostic rule: ``python -m vitaff.diagnostics.stages.<rule>``."""
