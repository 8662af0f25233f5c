// The counter page in headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core), against a running
// terminal-agent, as a clerk uses it. Run by terminal-agent/tests/browser.rs, which starts the agent, inserts and
// removes the cards, and answers on this script's stdin:
//
//   node counter.mjs AGENT_PORT ALLOWED_PORT SCREENSHOT [MODE]
//
// MODE `gen2` (default; the agent's page_idle_secs is 6):
//   READY → (the caller inserts the generation 2 card with the test photo)
//   NAME <name>, PHOTO <w>x<h>, FONT <family> (the platform font that drew the holder's name: a CJK font, not empty
//   boxes), NOSTORE (the page's /basic and /photo answers carry Cache-Control: no-store), ENTER (Enter read the card
//   again), LARGE (large text survives a reload), REMOVE → (the caller removes the card, then writes REMOVED)
//   CLEARED <ms> (fields and photo gone within a second of pcscd seeing the card out) → (the caller inserts the
//   generation 2 card without a photo) NOPHOTO, IDLE <s> (cleared after the idle timeout, not before),
//   FOREIGN refused, ALLOWED <name>.
// MODE `gen3` (the agent asks the key service):
//   READY → (the generation 3 card with the photo) NAME <name>, PHOTO <w>x<h>, FONT <family> → (the caller stops the
//   key service, then writes SERVICE-DOWN) UNREACHABLE <the clerk's message>.
// Any failure: a line `FAIL <why>` and exit code 1.
import { createServer } from "node:http";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const [agentPort, allowedPort, screenshot, mode = "gen2"] = process.argv.slice(2);
const agent = `http://127.0.0.1:${agentPort}`;
const stdin = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

function fail(why) {
  console.log(`FAIL ${why}`);
  process.exit(1);
}

async function expectLine(word) {
  const { value, done } = await stdin.next();
  if (done || value.trim() !== word) fail(`expected ${word} on stdin, got ${done ? "end of input" : value}`);
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

const holderShown = () => {
  const name = document.getElementById("holder-name").textContent;
  return name && name !== "—";
};

// The holder's name and photo on the page, and the font that drew the name.
async function holderAndPhoto(page) {
  await page.waitForFunction(holderShown, null, { timeout: 30000 });
  await page.waitForFunction(() => {
    const img = document.getElementById("photo");
    return !img.hidden && img.complete && img.naturalWidth > 0;
  }, null, { timeout: 15000 });
  console.log(`NAME ${await page.textContent("#holder-name")}`);
  const size = await page.evaluate(() => {
    const img = document.getElementById("photo");
    return `${img.naturalWidth}x${img.naturalHeight}`;
  });
  console.log(`PHOTO ${size}`);
  // what Chromium actually drew the name and the title with (CDP): a CJK font, every glyph
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("DOM.enable");
  await cdp.send("CSS.enable");
  const { root } = await cdp.send("DOM.getDocument", { depth: -1 });
  const families = new Set();
  for (const selector of ["#holder-name", "header h1", "#basic dt"]) {
    const { nodeId } = await cdp.send("DOM.querySelector", { nodeId: root.nodeId, selector });
    const { fonts } = await cdp.send("CSS.getPlatformFontsForNode", { nodeId });
    const cjk = fonts.filter((f) => /CJK/i.test(f.familyName));
    if (cjk.length === 0) fail(`${selector} drawn without a CJK font: ${JSON.stringify(fonts)}`);
    cjk.forEach((f) => families.add(f.familyName));
  }
  const check = await page.evaluate(() => document.fonts.check('15px "Noto Sans CJK SC"', "社会保障卡张三"));
  if (!check) fail("document.fonts.check says the page's CJK font is not available");
  console.log(`FONT ${[...families].join(", ")}`);
}

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const servers = [];
try {
  const page = await browser.newPage({ viewport: { width: 1180, height: 820 } });
  const consoleErrors = [];
  page.on("console", (m) => {
    // a refused photo or read is the page's own business (shown to the clerk), not an error of the page
    if (m.type() === "error" && !/Failed to load resource/.test(m.text())) consoleErrors.push(m.text());
  });
  await page.goto(`${agent}/`);
  await page.waitForSelector('#agent[data-state="connected"]', { timeout: 15000 });
  await page.waitForSelector('#readers li[data-reader="Virtual PCD 00 00"]', { timeout: 15000 });
  console.log("READY");

  // the caller inserts the card: the events socket says so, the page reads it and shows the holder and the photo
  await holderAndPhoto(page);
  const present = await page.textContent('#readers li[data-reader="Virtual PCD 00 00"] .state');
  if (!present.includes("card present")) fail(`reader state: ${present}`);
  const events = await page.textContent("#events");
  if (!events.includes("card inserted")) fail(`no card-inserted event on the page: ${events}`);
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });

  if (mode === "gen3") {
    await expectLine("SERVICE-DOWN");
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => /密钥服务/.test(document.getElementById("error").textContent), null,
      { timeout: 20000 });
    if ((await page.textContent("#holder-name")) !== "—") fail("the holder stayed on screen after a failed read");
    console.log(`UNREACHABLE ${await page.textContent("#error")}`);
  } else {
    // Cache-Control: no-store on what the page reads
    const cache = await page.evaluate(async () => {
      const out = {};
      for (const what of ["basic", "photo"]) {
        const r = await fetch(`/v1/readers/0/${what}`, { cache: "no-store" });
        out[what] = r.headers.get("cache-control");
      }
      return out;
    });
    if (cache.basic !== "no-store" || cache.photo !== "no-store") fail(`cache headers: ${JSON.stringify(cache)}`);
    console.log("NOSTORE");

    // Enter reads the card again
    const reads = () => page.evaluate(() => document.getElementById("events").textContent.split("读卡成功").length - 1);
    const before = await reads();
    await page.locator("body").press("Enter");
    await page.waitForFunction((n) =>
      document.getElementById("events").textContent.split("读卡成功").length - 1 > n, before, { timeout: 15000 });
    await page.waitForFunction(holderShown, null, { timeout: 15000 });
    console.log("ENTER");

    // large text, kept across a reload (local storage)
    await page.click("#large-text");
    if (!(await page.evaluate(() => document.documentElement.classList.contains("large")))) fail("no large text");
    await page.reload();
    await page.waitForSelector('#agent[data-state="connected"]', { timeout: 15000 });
    if (!(await page.evaluate(() => document.documentElement.classList.contains("large")))) {
      fail("large text lost on reload");
    }
    await page.waitForFunction(holderShown, null, { timeout: 30000 });
    await page.click("#large-text");
    console.log("LARGE");

    // the card is taken out: the holder's data and photo go within a second
    await page.waitForFunction(() => !document.getElementById("photo").hidden, null, { timeout: 15000 });
    console.log("REMOVE");
    await expectLine("REMOVED");
    const t0 = Date.now();
    await page.waitForFunction(() => {
      const img = document.getElementById("photo");
      return document.getElementById("holder-name").textContent === "—" && img.hidden && !img.getAttribute("src")
        && [...document.querySelectorAll("#basic dd")].every((dd) => dd.textContent === "—");
    }, null, { timeout: 1000, polling: 20 }).catch(() => fail("the holder's data stayed on screen after removal"));
    const cleared = Date.now() - t0;
    const why = await page.textContent("#error");
    if (!why.includes("Card removed")) fail(`cleared, but not for the removal: ${why}`);
    console.log(`CLEARED ${cleared}`);

    // a card without a photo says so; then, untouched, everything goes after the idle timeout
    await page.waitForFunction(holderShown, null, { timeout: 30000 });
    await page.waitForSelector('#photo-state[data-state="none"]', { timeout: 15000 });
    const noPhoto = await page.textContent("#photo-state");
    if (!noPhoto.includes("No photo")) fail(`no-photo state: ${noPhoto}`);
    console.log("NOPHOTO");
    const idle = await page.evaluate(() => parseFloat(document.querySelector('meta[name="sscard-idle-seconds"]').content));
    const shownAt = Date.now();
    await page.waitForTimeout(Math.max(0, idle * 1000 - 1500));
    if (!(await page.evaluate(holderShown))) fail("cleared before the idle timeout");
    await page.waitForFunction(() => document.getElementById("holder-name").textContent === "—", null,
      { timeout: 4000, polling: 50 }).catch(() => fail("not cleared after the idle timeout"));
    console.log(`IDLE ${Math.round((Date.now() - shownAt) / 100) / 10}`);

    // a page from an origin that is not on the list: refused
    const foreignServer = await serve(0);
    servers.push(foreignServer);
    const foreign = await browser.newPage();
    await foreign.goto(`http://127.0.0.1:${foreignServer.address().port}/`);
    const f = await foreign.evaluate(() => window.result);
    if (!f.fetch.error) fail(`foreign origin read the card: ${JSON.stringify(f)}`);
    if (f.ws.message) fail(`foreign origin got events: ${JSON.stringify(f)}`);
    console.log("FOREIGN refused");

    // a page from an allowed origin: CORS lets it read
    const allowedServer = await serve(allowedPort);
    servers.push(allowedServer);
    const allowed = await browser.newPage();
    await allowed.goto(`http://127.0.0.1:${allowedPort}/`);
    const a = await allowed.evaluate(() => window.result);
    if (!a.fetch || a.fetch.status !== 200) fail(`allowed origin could not read: ${JSON.stringify(a)}`);
    if (a.ws.message !== "snapshot") fail(`allowed origin got no events: ${JSON.stringify(a)}`);
    console.log(`ALLOWED ${a.fetch.name}`);
  }
  if (consoleErrors.length) fail(`console errors on the counter page: ${consoleErrors.join(" / ")}`);
} catch (e) {
  fail(String(e).split("\n")[0]);
} finally {
  servers.forEach((s) => s.close());
  await browser.close();
}
process.exit(0);
