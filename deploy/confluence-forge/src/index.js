'use strict';
// The Forge trigger: each subscribed Confluence event goes to ragbot (src/relay.js).

const { fetch } = require('@forge/api');
const { relayEvent } = require('./relay');

exports.relay = async (event) => {
  await relayEvent(event, {
    fetch,
    url: process.env.RAGBOT_WEBHOOK_URL,
    secret: process.env.RAGBOT_WEBHOOK_SECRET,
  });
};
