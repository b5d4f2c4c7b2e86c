"""Slack threads as a source: `connector.py` polls channels through the Web API, one thread = one document."""
