"""Notification of people outside the pipeline: the alert stream forwarded to Alertmanager (docs/alertmanager.md)."""
