// Subscribe through a live gateway with a reference client nobody at graftql wrote, and print
// what it receives: one JSON line per result, then {"complete": true}; {"error": ...} if the
// client reports one. Usage: node subscribe.mjs ws|sse <url> <query> [<connectionParams JSON>]
import { createClient as createWsClient } from 'graphql-ws';
import { createClient as createSseClient } from 'graphql-sse';
import WebSocket from 'ws';

const [mode, url, query, params] = process.argv.slice(2);
const connectionParams = params ? JSON.parse(params) : undefined;

const client =
  mode === 'ws'
    ? createWsClient({ url, webSocketImpl: WebSocket, connectionParams, retryAttempts: 0, lazy: true })
    : createSseClient({ url, singleConnection: false, retryAttempts: 0 });

const timer = setTimeout(() => {
  console.log(JSON.stringify({ error: 'timed out' }));
  process.exit(2);
}, 20000);

try {
  for await (const result of client.iterate({ query })) {
    console.log(JSON.stringify(result));
  }
  console.log(JSON.stringify({ complete: true }));
} catch (error) {
  const described =
    error instanceof Error ? error.message : error && error.code ? { code: error.code, reason: error.reason } : error;
  console.log(JSON.stringify({ error: described }));
} finally {
  clearTimeout(timer);
  client.dispose();
}
