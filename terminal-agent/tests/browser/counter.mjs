// The counter page in headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core), against a running
// terminal-agent. Run by terminal-agent/tests/browser.rs, which starts the agent and inserts the card:
//
//   node counter.mjs AGENT_PORT ALLOWED_PORT SCREENSHOT
//
// Talks on stdout, one line per step: `READY` (the page is loaded and connected to the events socket; the caller now
// inserts the card), then `NAME <name>` (the page shows the holder after the card-inserted event), `FOREIGN refused`
// (a page of an origin not on the allow-list cannot read the card, by fetch or WebSocket), `ALLOWED <name>` (a page
// of an allowed origin can, through CORS). Any failure: a line `FAIL <why>` and exit code 1.
import { createServer } from "node:http";
import { chromium } from "playwright-core";

const [agentPort, allowedPort, screenshot] = process.argv.slice(2);
const agent = `http://127.0.0.1:${agentPort}`;

function fail(why) {
  console.log(`FAIL ${why}`);
  process.exit(1);
}

// A page of another origin that tries to read the card in reader 0 and to open the events socket.
function probePage() {
  return `<!doctype html><meta charset="utf-8"><title>probe</title><script>
  window.result = (async () => {
    const out = {};
    try {
      const r = await fetch("${agent}/v1/readers/0/basic");
      const body = await r.json();
      out.fetch = { status: r.status, name: body.card ? body.card.name : null };
    } catch (e) {
      out.fetch = { error: String(e) };
    }
    out.ws = await new Promise((resolve) => {
      const ws = new WebSocket("ws://127.0.0.1:${agentPort}/v1/events");
      ws.onmessage = (m) => { resolve({ message: JSON.parse(m.data).type }); ws.close(); };
      ws.onerror = () => resolve({ error: true });
      setTimeout(() => resolve({ timeout: true }), 5000);
    });
    return out;
  })();
  </script>`;
}

function serve(port) {
  return new Promise((resolve) => {
    const server = createServer((req, res) => {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end(probePage());
    });
    server.listen(Number(port), "127.0.0.1", () => resolve(server));
  });
}

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const servers = [];
try {
  // 1. the counter page, before the card is inserted
  const page = await browser.newPage();
  const consoleErrors = [];
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  await page.goto(`${agent}/`);
  await page.waitForSelector('#agent[data-state="connected"]', { timeout: 15000 });
  await page.waitForSelector('#readers li[data-reader="Virtual PCD 00 00"]', { timeout: 15000 });
  console.log("READY");

  // 2. the caller inserts the card: the events socket says so, the page reads and shows the holder
  await page.waitForFunction(() => {
    const name = document.getElementById("holder-name").textContent;
    return name && name !== "—";
  }, null, { timeout: 30000 });
  const name = await page.textContent("#holder-name");
  const present = await page.textContent('#readers li[data-reader="Virtual PCD 00 00"] .state');
  if (!present.includes("card present")) fail(`reader state: ${present}`);
  const events = await page.textContent("#events");
  if (!events.includes("card inserted")) fail(`no card-inserted event on the page: ${events}`);
  console.log(`NAME ${name}`);
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  if (consoleErrors.length) fail(`console errors on the counter page: ${consoleErrors.join(" / ")}`);

  // 3. a page from an origin that is not on the list: refused
  const foreignServer = await serve(0);
  servers.push(foreignServer);
  const foreign = await browser.newPage();
  await foreign.goto(`http://127.0.0.1:${foreignServer.address().port}/`);
  const f = await foreign.evaluate(() => window.result);
  if (!f.fetch.error) fail(`foreign origin read the card: ${JSON.stringify(f)}`);
  if (f.ws.message) fail(`foreign origin got events: ${JSON.stringify(f)}`);
  console.log("FOREIGN refused");

  // 4. a page from an allowed origin: CORS lets it read
  const allowedServer = await serve(allowedPort);
  servers.push(allowedServer);
  const allowed = await browser.newPage();
  await allowed.goto(`http://127.0.0.1:${allowedPort}/`);
  const a = await allowed.evaluate(() => window.result);
  if (!a.fetch || a.fetch.status !== 200) fail(`allowed origin could not read: ${JSON.stringify(a)}`);
  if (a.ws.message !== "snapshot") fail(`allowed origin got no events: ${JSON.stringify(a)}`);
  console.log(`ALLOWED ${a.fetch.name}`);
} catch (e) {
  fail(String(e).split("\n")[0]);
} finally {
  servers.forEach((s) => s.close());
  await browser.close();
}
