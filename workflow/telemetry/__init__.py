"""Telemetry: W&B tracking, energy meters, MFU, and the DAG's per-rule job times."""
