"""The HTTP API adapter: ask, sources, feedback and resync over HTTP, an OpenAI-compatible endpoint, the report.

Like the Slack and Discord adapters it only translates requests into `bot.conversation` questions and the answer
events back, so source ACLs, rate limits, the spend cap, the query log, votes and A/B arms apply unchanged.
"""
