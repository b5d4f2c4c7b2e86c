"""Confluence over its REST API (Cloud and Data Center / Server): `connector.py` reads, `access.py` maps
space permissions and page restrictions to `Access`."""
