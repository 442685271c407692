// Opens GraphiQL in Debian's headless Chromium, runs the query already in the editor, and
// prints one JSON line: the result pane's text as GraphiQL shows it, every request the page
// made, what was blocked, Content-Security-Policy violations and page errors.
//
//   node graphiql.mjs PAGE_URL SCREENSHOT_PATH [load]
//
// With "load", it only loads the page and reports whether GraphiQL rendered (for a page that
// cannot). After the query, the page probes another origin (localhost instead of 127.0.0.1)
// with a fetch and a script: a policy that allows only 'self' refuses both, and the report's
// "csp" lists each refusal's directive; then it opens a WebSocket to its own /graphql, as
// GraphiQL does for subscriptions ("websocket": "open").
//
// No network but loopback: every request and WebSocket to another host is refused (and
// recorded), and Chromium resolves no host name but localhost, so a page that still needed a
// CDN would fail here as it does behind a firewall. CHROMIUM names the browser executable.
import { chromium } from "playwright-core";

const [pageUrl, screenshot, mode] = process.argv.slice(2);
const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]"]);
const isLoopback = (url) => {
  const { protocol, hostname } = new URL(url);
  return protocol === "data:" || protocol === "blob:" || LOOPBACK.has(hostname);
};

const report = {
  requests: [],
  blocked: [],
  csp: [],
  errors: [],
  rendered: false,
  result: null,
  visible: null,
};
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    // Chromium's own sandbox needs user namespaces, which root in a container rarely has.
    ...(process.getuid && process.getuid() === 0 ? ["--no-sandbox"] : []),
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-domain-reliability",
    "--no-first-run",
  ],
});
try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if (isLoopback(url)) return route.continue();
    report.blocked.push(url);
    return route.abort("blockedbyclient");
  });
  await context.routeWebSocket(
    (url) => !isLoopback(url.toString()),
    (ws) => {
      report.blocked.push(ws.url());
      ws.close();
    },
  );
  const page = await context.newPage();
  await page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener("securitypolicyviolation", (event) => {
      window.__csp.push(event.effectiveDirective);
    });
  });
  page.on("response", (response) =>
    report.requests.push({ url: response.url(), status: response.status() }),
  );
  page.on("pageerror", (error) => report.errors.push(`pageerror: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error") report.errors.push(`console: ${message.text()}`);
  });

  await page.goto(pageUrl, { waitUntil: "load", timeout: 20_000 });
  if (mode === "load") {
    report.rendered = (await page.locator(".graphiql-execute-button").count()) > 0;
    await page.screenshot({ path: screenshot });
  } else {
    await runQuery(page);
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));

async function runQuery(page) {
  await page.locator(".graphiql-execute-button").click({ timeout: 15_000 });
  const pane = ".graphiql-response .CodeMirror";
  await page.waitForFunction(
    (selector) => {
      const editor = document.querySelector(selector);
      return editor && editor.CodeMirror.getValue().trim().startsWith("{");
    },
    pane,
    { timeout: 15_000 },
  );
  report.result = await page.evaluate((selector) => {
    return document.querySelector(selector).CodeMirror.getValue();
  }, pane);
  // What a person sees: the text is on screen, not only in the editor's model.
  report.visible = await page.locator(".graphiql-response").innerText();
  report.rendered = true;
  await page.screenshot({ path: screenshot });
  const before = report.errors.length;
  const other = new URL(pageUrl);
  other.hostname = "localhost";
  await page.evaluate(async (origin) => {
    const script = document.createElement("script");
    script.src = `${origin}/graphiql-probe.js`;
    document.head.append(script);
    await fetch(`${origin}/healthz`).catch(() => null);
  }, other.origin);
  await page.waitForFunction(() => window.__csp.length >= 2, null, { timeout: 5_000 });
  // GraphiQL's subscriptions: a WebSocket to the page's own /graphql is allowed.
  report.websocket = await page.evaluate(
    () =>
      new Promise((resolve) => {
        const url = new URL("/graphql", location.href);
        url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
        const socket = new WebSocket(url, "graphql-transport-ws");
        socket.onopen = () => {
          socket.close();
          resolve("open");
        };
        socket.onerror = () => resolve("error");
      }),
  );
  report.csp = await page.evaluate(() => window.__csp);
  report.probeErrors = report.errors.splice(before); // the browser logs each refusal too
}
