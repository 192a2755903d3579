// Drives the dashboard in Debian's Chromium (never a downloaded browser) for
// tests/test_dashboard.py, and prints one JSON report of what the page showed.
// The Python test does all the ingesting and asserts on the report.
//
// Input: the JSON config in $DASHBOARD_CONFIG (see test_dashboard.py).
// Protocol: at a pause the driver prints {"pause": NAME} on a line and waits
// for one JSON line on stdin (the test's answer); its last line is the report.

import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const stdin = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function pause(name) {
  process.stdout.write(JSON.stringify({ pause: name }) + "\n");
  const { value, done } = await stdin.next();
  if (done) throw new Error(`no answer to pause ${name}`);
  return JSON.parse(value);
}
const rowsPresent = (page, keys, timeout = 15000) =>
  page.waitForFunction(
    (keys) => keys.every((key) => document.querySelector(`#events-table tbody tr[data-key="${key}"]`)),
    keys,
    { polling: 100, timeout },
  );

const config = JSON.parse(process.env.DASHBOARD_CONFIG);
const LAUNCH_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const report = { steps: [], requests: [], consoleErrors: [], pageErrors: [] };
const step = (name) => report.steps.push(name);

function watch(page) {
  page.on("request", (request) =>
    report.requests.push({
      url: request.url(),
      method: request.method(),
      authorization: request.headers()["authorization"] ?? null,
      lastEventId: request.headers()["last-event-id"] ?? null,
    }),
  );
  page.on("console", (message) => {
    if (message.type() === "error") report.consoleErrors.push(message.text());
  });
  page.on("pageerror", (error) => report.pageErrors.push(String(error)));
}

const fleetRows = (page) =>
  page.$$eval("#fleet-table tbody tr[data-id]", (rows) =>
    rows.map((row) => ({
      id: row.dataset.id,
      health: row.dataset.health,
      text: row.innerText,
      version: row.querySelector(".version-cell").textContent,
    })),
  );

async function waitFleetSettled(page, count) {
  await page.waitForFunction(
    (count) =>
      document.querySelectorAll("#fleet-table tbody tr[data-id]").length === count &&
      !document.querySelector("#fleet-table tbody tr[data-health=unknown]") &&
      document.querySelector("#fleet-progress").textContent === "",
    count,
    { polling: 100, timeout: 20000 },
  );
}

// The timeline's SVG is redrawn whenever the view updates: a box measured just as it is replaced
// comes back null, so measure again until the current one answers.
async function timelineBox(page) {
  const svg = page.locator("#timeline svg");
  for (let attempt = 0; attempt < 50; attempt++) {
    await svg.waitFor({ state: "visible" });
    const box = await svg.boundingBox();
    if (box) return box;
    await page.waitForTimeout(100);
  }
  throw new Error("the timeline never held still long enough to be measured");
}

async function timelineFacts(page) {
  return page.evaluate(() => ({
    status: document.querySelector("#timeline-status").textContent,
    spans: [...document.querySelectorAll("#timeline g.span")].map((g) => ({
      classes: g.getAttribute("class"),
      key: g.dataset.key,
      title: g.querySelector("title").textContent,
    })),
    spanLabels: [...document.querySelectorAll("#timeline .span-label")].map((t) => t.textContent),
    marks: [...document.querySelectorAll("#timeline circle.mark")].map((c) => ({
      key: c.dataset.key,
      failure: c.classList.contains("failure"),
      fill: c.getAttribute("fill"),
    })),
    rows: [...document.querySelectorAll("#events-table tbody tr")].map((tr) => ({
      key: tr.dataset.key,
      failure: tr.classList.contains("failure"),
      text: tr.innerText,
    })),
    health: document.querySelector("#connector-health").innerText,
  }));
}

async function chartFacts(page) {
  return page.evaluate(() => ({
    status: document.querySelector("#charts-status").textContent,
    charts: [...document.querySelectorAll("#charts svg.chart")].map((c) => ({
      name: c.dataset.chart,
      series: [...c.querySelectorAll("path.line")].map((path) => ({
        name: path.dataset.series,
        points: (path.getAttribute("d").match(/[ML]/g) || []).length,
      })),
      health: [...c.querySelectorAll("rect.health")].map((r) => r.getAttribute("class").split(" ")[1]),
    })),
  }));
}

async function run(browser) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  watch(page);

  // 1. No fragment: the sign-in form; a refused token is explained; the right one opens the fleet.
  await page.goto(`${config.origin}/`);
  await page.waitForSelector("#signin:not([hidden])");
  await page.fill("#signin-account", config.account);
  await page.fill("#signin-token", config.badToken);
  await page.click("#signin button[type=submit]");
  await page.waitForFunction(() => /HTTP 401/.test(document.querySelector("#signin-error").textContent), null, {
    timeout: 10000,
  });
  report.signinError = await page.textContent("#signin-error");
  step("signin refused");
  await page.fill("#signin-token", config.token);
  await page.click("#signin button[type=submit]");
  await waitFleetSettled(page, config.connectorCount);
  step("signin form");
  // The session is remembered (this tab): a reload opens the fleet again.
  await page.reload();
  await waitFleetSettled(page, config.connectorCount);
  report.afterReload = { signinHidden: await page.isHidden("#signin") };
  step("reload");
  await context.close();

  // 2. The fragment way, in a fresh tab.
  const tab = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const p = await tab.newPage();
  watch(p);
  const t0 = Date.now();
  const loadFrom = report.requests.length;
  await p.goto(`${config.origin}/#token=${config.token}&account=${config.account}`);
  await waitFleetSettled(p, config.connectorCount);
  report.fleetMs = Date.now() - t0;
  report.fleetLoadRequests = report.requests.slice(loadFrom).map((r) => `${r.method} ${new URL(r.url).pathname}`);
  report.fleet = await fleetRows(p);
  report.hashAfterLoad = await p.evaluate(() => location.hash);
  report.live = await p.textContent("#live");
  report.kinds = await p.evaluate(async (kinds) => {
    const { familyOf, isFailure } = await import("/assets/kinds.js");
    return Object.fromEntries(kinds.map((kind) => [kind, { family: familyOf(kind).id, failure: isFailure(kind) }]));
  }, config.kinds);
  const bottom = await p.evaluate(() => document.querySelector("#fleet").getBoundingClientRect().bottom);
  await p.screenshot({ path: config.screenshots.fleet, clip: { x: 0, y: 0, width: 1400, height: Math.min(900, bottom + 24) } });
  step("fleet");

  // 3. A connector's timeline.
  await p.click(`#fleet-table tbody tr[data-id="${config.open}"] a`);
  await p.waitForFunction(
    () => /events, \d+ spans/.test(document.querySelector("#timeline-status").textContent),
    null,
    { timeout: 15000 },
  );
  report.url = p.url();
  report.timeline = await timelineFacts(p);
  step("timeline");

  // 4. An event: what Get Event returns, and a curl for it.
  await p.click(`#events-table button.kind[data-key="${config.select}"]`);
  await p.waitForFunction(() => /^HTTP /.test(document.querySelector("#detail-status").textContent), null, {
    timeout: 10000,
  });
  report.detail = {
    title: await p.textContent("#detail-title"),
    request: await p.textContent("#detail-request"),
    pretty: await p.textContent("#detail-json"),
    curl: await p.textContent("#detail-curl"),
    focused: await p.evaluate(() => document.activeElement?.id),
  };
  await p.uncheck("#detail-pretty");
  report.detail.raw = await p.textContent("#detail-json");
  await p.check("#detail-pretty");
  report.injected = await p.evaluate(() => ({
    images: document.querySelectorAll("img").length,
    pwned: document.body.dataset.pwned ?? null,
  }));
  await p.screenshot({ path: config.screenshots.connector });
  step("detail");
  await p.keyboard.press("Escape");
  report.detailHiddenAfterEscape = await p.isHidden("#detail");

  // 4b. Metrics: the charts under the timeline, values on hover, a click opens Get Snapshot.
  await p.waitForFunction(
    () => document.querySelectorAll("#charts svg.chart").length === 5 && /charted/.test(document.querySelector("#charts-status").textContent),
    null,
    { timeout: 30000 },
  );
  report.charts = await chartFacts(p);
  const cpu = p.locator('#charts svg[data-chart="cpu"]');
  await cpu.scrollIntoViewIfNeeded();
  const cpuBox = await cpu.boundingBox();
  const timeline = await timelineBox(p);
  report.chartAlignment = { timeline: [timeline.x, timeline.width], cpu: [cpuBox.x, cpuBox.width] };
  const hoverX = cpuBox.x + 130 + (cpuBox.width - 144) * 0.8;
  await p.mouse.move(hoverX, cpuBox.y + 50);
  await p.waitForFunction(() => !/latest/.test(document.querySelector('#charts svg[data-chart="cpu"]').dataset.readout));
  // The screenshot: the window picker, the timeline and the charts, hovered.
  await p.evaluate(() => scrollTo(0, document.querySelector("#connector .toolbar").getBoundingClientRect().top + scrollY - 48));
  const hoverBox = await cpu.boundingBox();
  await p.mouse.move(hoverBox.x + 130 + (hoverBox.width - 144) * 0.8, hoverBox.y + 50);
  await p.waitForFunction(() => !/latest/.test(document.querySelector('#charts svg[data-chart="cpu"]').dataset.readout));
  await p.screenshot({ path: config.screenshots.metrics });
  report.hover = await p.evaluate(() =>
    Object.fromEntries([...document.querySelectorAll("#charts svg.chart")].map((c) => [c.dataset.chart, c.dataset.readout])),
  );
  await p.mouse.click(hoverBox.x + 130 + (hoverBox.width - 144) * 0.8, hoverBox.y + 50);
  await p.waitForFunction(() => /^HTTP /.test(document.querySelector("#detail-status").textContent), null, {
    timeout: 10000,
  });
  await p.uncheck("#detail-pretty");
  report.snapshotDetail = {
    title: await p.textContent("#detail-title"),
    operation: await p.textContent("#detail-operation"),
    request: await p.textContent("#detail-request"),
    raw: await p.textContent("#detail-json"),
    curl: await p.textContent("#detail-curl"),
    selectedLines: await p.evaluate(() => document.querySelectorAll("#charts .selected-t").length),
  };
  await p.check("#detail-pretty");
  report.rates = await p.evaluate(async () => {
    const { counterRate } = await import("/assets/charts.js");
    const at = (t, btime, bytes) => ({ t, kernel_btime: btime, uptime_total_ms: (t - btime) * 1000, bytes });
    const get = (s) => s.bytes;
    return {
      steady: counterRate(at(1000, 0, 5000), at(1060, 0, 11000), get),
      reset: counterRate(at(1000, 0, 5000), at(1060, 1040, 400), get),
      first: counterRate(undefined, at(1060, 1000, 600), get),
    };
  });
  await p.keyboard.press("Escape");
  await p.evaluate(() => scrollTo(0, 0));
  step("metrics");

  // 5. Zoom: drag across the last 3% of the plot (the last 45 minutes of the day).
  const box = await timelineBox(p);
  const plotRight = box.x + box.width - 14;
  await p.mouse.move(plotRight - (box.width - 144) * 0.03, box.y + 60);
  await p.mouse.down();
  await p.mouse.move(plotRight, box.y + 80, { steps: 5 });
  await p.mouse.up();
  await p.waitForFunction(() => /zoomed/.test(document.querySelector("#timeline-status").textContent));
  report.zoomed = await timelineFacts(p);
  report.zoomedSpanWidth = await p.evaluate(
    (key) => Number(document.querySelector(`#timeline g.span[data-key="${key}"] rect`)?.getAttribute("width")),
    config.select,
  );
  await p.click("#timeline-reset");
  await p.waitForFunction(() => !/zoomed/.test(document.querySelector("#timeline-status").textContent));
  step("zoom");

  // 6. Live: the test ingests; the events, their span and the health follow through the stream.
  const live = await pause("live");
  const before = Date.now();
  await rowsPresent(p, live.keys);
  report.liveMs = Date.now() - before;
  await p.waitForFunction(() => /healthy/.test(document.querySelector("#connector-health").innerText), null, {
    timeout: 5000,
  });
  report.timelineAfterLive = await timelineFacts(p);
  step("live timeline");

  // 7. The server restarts, and an event lands before the page is back: it resumes with no gap.
  const resumed = await pause("restart");
  await rowsPresent(p, resumed.keys, 30000); // reconnecting backs off: 1 s, 2 s, 4 s…
  await p.waitForFunction(() => document.querySelector("#live").textContent === "live");
  report.resumeStreamRequests = report.requests.filter((r) => r.url.endsWith("/telemetry/events/stream")).length;
  step("resume");

  // The read-only token: the connector's operations are shown, no controls offered.
  await p.waitForSelector('#operation-controls:not([data-permission="unknown"])', { state: "attached" });
  report.readOnlyOperations = {
    permission: await p.getAttribute("#operation-controls", "data-permission"),
    controlsHidden: await p.isHidden("#operation-controls"),
    status: await p.textContent("#operation-status"),
  };
  await p.click("text=← All connectors");
  await p.waitForSelector("#fleet:not([hidden])");
  await p.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve))));
  await waitFleetSettled(p, config.connectorCount);
  report.fleetAfterLive = await fleetRows(p);
  step("live fleet");

  report.session = await p.evaluate(() => ({
    token: sessionStorage.getItem("conntel.token") !== null,
    account: sessionStorage.getItem("conntel.account"),
  }));
  await tab.close();

  // 8. Operations with a Write token: reboot behind a confirmation; pending until the connector reports it.
  const ops = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const w = await ops.newPage();
  watch(w);
  await w.goto(`${config.origin}/#token=${config.writeToken}&account=${config.account}&connector=${config.operate}`);
  await w.waitForSelector('#operation-controls[data-permission="write"]:not([hidden])', { timeout: 15000 });
  await w.waitForFunction(() => document.querySelector("#operation-status").dataset.state === "none");
  report.operations = { before: await w.textContent("#operation-status") };
  await w.click('#operation-controls button[data-action="reboot"]');
  await w.waitForSelector("#operation-confirm:not([hidden])");
  report.operations.question = await w.textContent("#operation-question");
  await w.click("#operation-no");
  // Drawn at the next animation frame: wait for it.
  report.operations.cancelHides = await w
    .waitForSelector("#operation-confirm", { state: "hidden", timeout: 5000 })
    .then(() => true, () => false);
  report.operations.afterCancel = await pause("cancelled");
  await w.check("#operation-purge");
  await w.click('#operation-controls button[data-action="reboot"]');
  await w.waitForSelector("#operation-confirm:not([hidden])");
  report.operations.purgeQuestion = await w.textContent("#operation-question");
  report.operations.confirmLabel = await w.textContent("#operation-yes");
  await w.click("#operation-yes");
  await w.waitForFunction(() => document.querySelector("#operation-status").dataset.state === "pending", null, {
    timeout: 10000,
  });
  report.operations.pending = await w.textContent("#operation-status");
  report.operations.buttonsDisabledWhilePending = await w.isDisabled('#operation-controls button[data-action="restart"]');
  await pause("executed");
  await w.waitForFunction(() => document.querySelector("#operation-status").dataset.state === "executed", null, {
    timeout: 15000,
  });
  report.operations.executed = await w.textContent("#operation-status");
  report.operations.buttonsEnabledAfter = await w.isEnabled('#operation-controls button[data-action="restart"]');
  step("operations");
  await ops.close();
}

const browser = await chromium.launch({ executablePath: config.chromium, args: LAUNCH_ARGS });
try {
  await run(browser);
} catch (error) {
  report.error = String(error.stack || error);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(report) + "\n");
