// Run a scripted sequence of calls through the official npm `cloudflare` SDK against a live conntel.
//
// The scenario comes from pytest as ONE JSON object on stdin:
//
//   {
//     "baseURL": "http://127.0.0.1:8787/client/v4",
//     "sdk": "v7",                                   // "v7" (cloudflare 7.3.0, default) or "v5" (5.2.0)
//     "steps": [
//       {
//         "name": "create",                          // unique; later steps may refer to this outcome
//         "auth": {"apiToken": "..."},               // or {"apiEmail": "...", "apiKey": "..."}
//         "call": "magicTransit.connectors.create",  // a method reached from the client, called on its owner
//         "args": [{"account_id": "...", "device": {"serial_number": "SN-1"}}],
//         "mode": "await"                            // optional, see below
//       }
//     ]
//   }
//
// Anywhere inside "args", {"$ref": "create.result.id"} is replaced by the value at that
// dotted path of an earlier step's outcome (a step that failed has no "result").
//
// Modes:
//   "await"   (default) the awaited return value: {"result": <value>}
//   "iterate" `for await` over the returned page promise (how list endpoints are consumed):
//             {"result": [<every item>]}
//   "walk"    events.list style cursor pagination: call, then call again with the last
//             argument extended by {"cursor": <previous page's cursor>} while a cursor comes
//             back: {"result": [<every page>]}
//
// A call that throws gives {"error": {"name": <error class>, "status": <HTTP status>,
// "codes": [<v4 error codes>]}} (plus "message" when there is no HTTP status).
//
// Prints ONE JSON object on stdout: {<step name>: <outcome>, ...}.

import Cloudflare5 from 'cloudflare-5';
import Cloudflare7 from 'cloudflare-7';

const CLIENTS = { v5: Cloudflare5, v7: Cloudflare7 };
const WALK_PAGE_LIMIT = 10_000; // a server that never stops sending cursors must not hang the test

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

function makeClient(Client, baseURL, auth) {
  // Every credential explicitly, so CLOUDFLARE_* variables cannot leak into the client.
  const { apiToken = null, apiEmail = null, apiKey = null } = auth ?? {};
  return new Client({ baseURL, maxRetries: 0, timeout: 20_000, apiToken, apiEmail, apiKey, userServiceKey: null });
}

function resolve(value, outcomes) {
  if (Array.isArray(value)) return value.map((item) => resolve(item, outcomes));
  if (value !== null && typeof value === 'object') {
    if (Object.keys(value).length === 1 && typeof value.$ref === 'string') {
      let found = outcomes;
      for (const part of value.$ref.split('.')) {
        if (found === null || found === undefined || !(part in Object(found))) {
          throw new Error(`unresolved reference ${value.$ref}`);
        }
        found = found[part];
      }
      return found;
    }
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, resolve(item, outcomes)]));
  }
  return value;
}

function method(client, dotted) {
  const parts = dotted.split('.');
  let owner = client;
  for (const part of parts.slice(0, -1)) {
    owner = owner?.[part];
  }
  const fn = owner?.[parts.at(-1)];
  if (typeof fn !== 'function') throw new Error(`no SDK method ${dotted}`);
  return (...args) => fn.apply(owner, args);
}

function failure(err) {
  const error = { name: err?.constructor?.name ?? typeof err, status: err?.status ?? null };
  if (Array.isArray(err?.errors)) error.codes = err.errors.map((item) => item?.code ?? null);
  if (error.status == null) error.message = String(err?.message ?? err);
  return { error };
}

async function perform(call, args, mode) {
  if (mode === 'iterate') {
    const items = [];
    for await (const item of call(...args)) items.push(item);
    return items;
  }
  if (mode === 'walk') {
    const pages = [];
    let page = await call(...args);
    pages.push(page);
    while (page?.cursor) {
      if (pages.length >= WALK_PAGE_LIMIT) throw new Error(`more than ${WALK_PAGE_LIMIT} pages`);
      const last = { ...args.at(-1), cursor: page.cursor };
      page = await call(...args.slice(0, -1), last);
      pages.push(page);
    }
    return pages;
  }
  if (mode !== undefined && mode !== 'await') throw new Error(`unknown mode ${mode}`);
  return await call(...args);
}

const scenario = await readStdin();
const Client = CLIENTS[scenario.sdk ?? 'v7'];
if (!Client) throw new Error(`unknown sdk ${scenario.sdk}`);

const outcomes = {};
for (const step of scenario.steps) {
  if (step.name in outcomes) throw new Error(`step name ${step.name} used twice`);
  const client = makeClient(Client, scenario.baseURL, step.auth);
  const call = method(client, step.call);
  const args = resolve(step.args ?? [], outcomes); // a bad reference is a bug in the test: let it throw
  try {
    outcomes[step.name] = { result: await perform(call, args, step.mode) };
  } catch (err) {
    outcomes[step.name] = failure(err);
  }
}

// Keep-alive sockets of the SDK's HTTP agent must not hold the process open.
process.stdout.write(JSON.stringify(outcomes) + '\n', () => process.exit(0));
