"""Slack adapter: the Bolt app, Block Kit and mrkdwn rendering, the app manifest."""
