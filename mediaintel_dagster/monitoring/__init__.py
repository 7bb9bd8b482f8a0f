"""Monitoring: metrics export (``metrics``) and structured logs (``logs``). docs/trust.md."""
