// Drive the official npm `cloudflare` SDK (5.2.0 and 7.3.0) against a live conntel server.
//
// Environment:
//   CONNTEL_BASE_URL   e.g. http://127.0.0.1:8787/client/v4
//   CONNTEL_TOKEN      API token used for the main calls
//   CONNTEL_ACCOUNT    account id
//   CONNTEL_CONNECTOR  connector id
//   EVENT_T, EVENT_N   the event to get
//   CONNTEL_EMAIL, CONNTEL_KEY  optional: also get the event with API email + global key
//   UNKNOWN_N          optional: a sequence number with no event at EVENT_T (default EVENT_N + 1000003)
//
// Prints ONE JSON object on stdout:
//   {"v5": {<case>: <outcome>, ...}, "v7": {...}}
// where an outcome is {"result": <what the SDK returned>} or
// {"error": {"name": <error class>, "status": <HTTP status>, "codes": [<v4 error codes>]}}.
// Cases: "get" (the event, with CONNTEL_TOKEN), "unknown_event", "unknown_connector",
// "bad_token" (a well-formed token that matches nothing), and "email_key" when
// CONNTEL_EMAIL/CONNTEL_KEY are set.

import { randomBytes } from 'node:crypto';

import Cloudflare5 from 'cloudflare-5';
import Cloudflare7 from 'cloudflare-7';

function required(name) {
  const value = process.env[name];
  if (value === undefined || value === '') {
    throw new Error(`missing environment variable ${name}`);
  }
  return value;
}

function integer(name, value) {
  const number = Number(value);
  if (!Number.isSafeInteger(number)) {
    throw new Error(`${name} must be an integer, got ${JSON.stringify(value)}`);
  }
  return number;
}

const baseURL = required('CONNTEL_BASE_URL');
const token = required('CONNTEL_TOKEN');
const accountId = required('CONNTEL_ACCOUNT');
const connectorId = required('CONNTEL_CONNECTOR');
const eventT = integer('EVENT_T', required('EVENT_T'));
const eventN = integer('EVENT_N', required('EVENT_N'));
const unknownN = integer('UNKNOWN_N', process.env.UNKNOWN_N || String(eventN + 1000003));
const email = process.env.CONNTEL_EMAIL || null;
const apiKey = process.env.CONNTEL_KEY || null;

// A token of the right shape (40 characters of [A-Za-z0-9_-]) that matches nothing.
const badToken = randomBytes(30).toString('base64url');
// A connector id of the right shape (32 hex) that does not exist.
const unknownConnector = randomBytes(16).toString('hex');

// Every credential is given explicitly so CLOUDFLARE_* variables in the
// environment cannot leak into the clients.
function credentials({ apiToken = null, apiEmail = null, apiKey: key = null }) {
  return { apiToken, apiEmail, apiKey: key, userServiceKey: null };
}

const SDKS = {
  v5: {
    make: (creds) => new Cloudflare5({ baseURL, maxRetries: 0, timeout: 20_000, ...credentials(creds) }),
    // The reference page's own call form.
    get: (client, connector, t, n) =>
      client.magicTransit.connectors.events.get(connector, t, n, { account_id: accountId }),
  },
  v7: {
    make: (creds) => new Cloudflare7({ baseURL, maxRetries: 0, timeout: 20_000, ...credentials(creds) }),
    get: (client, connector, t, n) =>
      client.magicTransit.connectors.events.get(n, { account_id: accountId, connector_id: connector, event_t: t }),
  },
};

async function outcome(promise) {
  try {
    return { result: await promise };
  } catch (err) {
    const error = { name: err?.constructor?.name ?? typeof err, status: err?.status ?? null };
    if (Array.isArray(err?.errors)) {
      error.codes = err.errors.map((item) => item?.code ?? null);
    }
    if (error.status == null) {
      error.message = String(err?.message ?? err);
    }
    return { error };
  }
}

async function run(sdk) {
  const main = sdk.make({ apiToken: token });
  const cases = {
    get: await outcome(sdk.get(main, connectorId, eventT, eventN)),
    unknown_event: await outcome(sdk.get(main, connectorId, eventT, unknownN)),
    unknown_connector: await outcome(sdk.get(main, unknownConnector, eventT, eventN)),
    bad_token: await outcome(sdk.get(sdk.make({ apiToken: badToken }), connectorId, eventT, eventN)),
  };
  if (email && apiKey) {
    const byKey = sdk.make({ apiEmail: email, apiKey });
    cases.email_key = await outcome(sdk.get(byKey, connectorId, eventT, eventN));
  }
  return cases;
}

const report = {};
for (const [name, sdk] of Object.entries(SDKS)) {
  report[name] = await run(sdk);
}

// Keep-alive sockets of the SDKs' HTTP agents must not hold the process open.
process.stdout.write(JSON.stringify(report) + '\n', () => process.exit(0));
