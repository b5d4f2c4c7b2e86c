'use strict';
// Forwards a Confluence Cloud event to ragbot's POST /webhooks/confluence, signed like a Data Center webhook
// (X-Hub-Signature: sha256=<HMAC-SHA256 of the body>). Only the content's id and type leave Confluence: the
// bot reads the page again itself. Kept apart from index.js so it runs outside Forge (tests, `node`).

const crypto = require('node:crypto');

const TIMEOUT_MS = 10000; // a Forge function has 25 s; a bot that does not answer in 10 is down

function relayBody(event) {
  const content = (event && event.content) || {};
  return JSON.stringify({
    eventType: String((event && event.eventType) || ''),
    content: { id: String(content.id), type: String(content.type || '') },
  });
}

function sign(body, secret) {
  return 'sha256=' + crypto.createHmac('sha256', secret).update(body).digest('hex');
}

// True when the bot took the event. Never throws: a lost event waits for the bot's id listing, as a lost
// webhook does, so a failure is one log line (the event type and why; never the URL's secret or a body).
async function relayEvent(event, { fetch, url, secret, log = console }) {
  const type = String((event && event.eventType) || 'an event');
  if (!url || !secret) {
    log.error('ragbot relay: RAGBOT_WEBHOOK_URL and RAGBOT_WEBHOOK_SECRET must both be set (forge variables set)');
    return false;
  }
  const id = event && event.content && event.content.id;
  if (id === undefined || id === null || id === '') {
    return false; // nothing to name
  }
  const body = relayBody(event);
  try {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Hub-Signature': sign(body, secret) },
      body,
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    if (!response.ok) {
      log.warn(`ragbot relay: ${type} refused, HTTP ${response.status}`);
      return false;
    }
    return true;
  } catch (error) {
    log.warn(`ragbot relay: ${type} not delivered (${(error && error.name) || 'error'})`);
    return false;
  }
}

module.exports = { relayBody, relayEvent, sign };
