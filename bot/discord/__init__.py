"""Discord adapter: the discord.py client, message rendering and answer sinks."""
