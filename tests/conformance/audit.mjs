// The graphql-http server audits (GraphQL-over-HTTP conformance) against a running server.
//
//   node audit.mjs <url of the /graphql endpoint> [--report <file>]
//
// Each audit from graphql-http's `serverAudits` is one node:test test, named "<id> <name>", so
// node reports every audit by name. Anything but "ok" fails its test: an error (a MUST), a
// warning (a SHOULD) and a notice (a MAY) alike, with the request sent and the response seen.
// With --report, one JSON line per audit is appended to <file> ({id, name, status, reason,
// request, response}), after a first line listing every audit ({audits: [{id, name}]}), for
// tests/integration/test_conformance.py to read. The exit status is 1 when any audit failed.

import assert from 'node:assert/strict';
import { AsyncLocalStorage } from 'node:async_hooks';
import { appendFileSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { serverAudits } from 'graphql-http';

const REQUEST_TIMEOUT_MS = 10_000;

function parseArgs(argv) {
  const args = { url: undefined, report: undefined };
  for (let i = 0; i < argv.length; i += 1) {
    if (argv[i] === '--report') {
      args.report = argv[++i];
    } else if (args.url === undefined) {
      args.url = argv[i];
    } else {
      throw new Error(`unexpected argument: ${argv[i]}`);
    }
  }
  if (!args.url || (argv.includes('--report') && !args.report)) {
    console.error('usage: node audit.mjs <graphql endpoint url> [--report <file>]');
    process.exit(2);
  }
  if (!URL.canParse(args.url)) {
    console.error(`audit.mjs: not a URL: ${args.url}`);
    process.exit(2);
  }
  return args;
}

const { url, report } = parseArgs(process.argv.slice(2));

// The requests each audit sends, for the failure report: the audits do not expose them.
const requests = new AsyncLocalStorage();

async function recordingFetch(input, init = {}) {
  const headers = Object.fromEntries(new Headers(init.headers ?? {}).entries());
  requests.getStore()?.push({
    method: init.method ?? 'GET',
    url: String(input),
    headers,
    body: init.body === undefined ? null : String(init.body),
  });
  return fetch(input, { ...init, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
}

async function describeResponse(response) {
  if (!response) return null;
  let body;
  try {
    const text = await response.text();
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
  } catch (err) {
    body = `<body already read: ${err.message}>`;
  }
  return {
    status: response.status,
    headers: Object.fromEntries(response.headers.entries()),
    body,
  };
}

const audits = serverAudits({ url, fetchFn: recordingFetch });

if (report) {
  writeFileSync(
    report,
    `${JSON.stringify({ audits: audits.map(({ id, name }) => ({ id, name })) })}\n`,
  );
}

for (const audit of audits) {
  test(`${audit.id} ${audit.name}`, async () => {
    const sent = [];
    let outcome;
    try {
      const result = await requests.run(sent, () => audit.fn());
      outcome = {
        id: audit.id,
        name: audit.name,
        status: result.status,
        reason: result.reason ?? null,
        request: sent.length === 1 ? sent[0] : sent,
        response: await describeResponse(result.response),
      };
    } catch (err) {
      // graphql-http throws only on a fatal problem (no response at all, e.g. a timeout)
      outcome = {
        id: audit.id,
        name: audit.name,
        status: 'fatal',
        reason: String(err?.stack ?? err),
        request: sent.length === 1 ? sent[0] : sent,
        response: null,
      };
    }
    if (report) appendFileSync(report, `${JSON.stringify(outcome)}\n`);
    if (outcome.status !== 'ok') {
      assert.fail(
        `${outcome.status}: ${outcome.reason}\n` +
          `request: ${JSON.stringify(outcome.request)}\n` +
          `response: ${JSON.stringify(outcome.response)}`,
      );
    }
  });
}
