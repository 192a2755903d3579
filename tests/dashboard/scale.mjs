// The fleet page at scale, in Debian's Chromium, for tests/test_dashboard_scale.py and bench/dashboard.py
// (tests/fleet_scale.py builds the fleet and feeds it). Prints one JSON report; the callers assert.
//
// Input: the JSON config in $DASHBOARD_CONFIG: chromium, origin, account, token, count (connectors in
// the account), lastId (the greatest id), failId (a healthy connector the test will make fail),
// wakeId (a silent one it will wake), tunnelId (a healthy one whose tunnel will go down, or null when
// the server does not count tunnels), opensUnderFeed (times the page is opened while the feeder posts:
// at least 1, the last one is measured), rounds (of sort/filter measures).
// Protocol (as drive.mjs): at a pause the driver prints {"pause": NAME} and waits for one JSON line.
//   "feed": the feeder is to start; "fail": post a failure for failId; "wake": an event for wakeId;
//   "tunnel": a snapshot with a tunnel down for tunnelId;
//   "stop": the feeder is to stop (its answer: its figures).

import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const stdin = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function pause(name) {
  process.stdout.write(JSON.stringify({ pause: name }) + "\n");
  const { value, done } = await stdin.next();
  if (done) throw new Error(`no answer to pause ${name}`);
  return JSON.parse(value);
}

const config = JSON.parse(process.env.DASHBOARD_CONFIG);
const LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"];
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const report = { steps: [], consoleErrors: [], pageErrors: [], latencies: [] };

const counts = (page) =>
  page.evaluate(() =>
    Object.fromEntries([...document.querySelectorAll("#health-filter button")].map((b) => [b.dataset.health, Number(b.dataset.count)])),
  );

// What the table shows: how many rows it stands for, and the rows drawn.
const table = (page) =>
  page.evaluate(() => ({
    rowCount: Number(document.querySelector("#fleet-table").getAttribute("aria-rowcount")) - 1,
    rows: [...document.querySelectorAll("#fleet-table tbody tr[data-id]")].map((row) => ({
      id: row.dataset.id,
      health: row.dataset.health,
      index: Number(row.getAttribute("aria-rowindex")) - 2,
      text: row.innerText,
    })),
  }));

/**
 * One interaction timed in the page: from the input to the frame that drew its answer (markDirty's
 * animation frame runs before ours; the task after it runs once that frame is painted).
 */
async function timed(page, name, action) {
  const ms = await page.evaluate(async (action) => {
    const t0 = performance.now();
    if (action.click) document.querySelector(action.click).click();
    if (action.filter != null) {
      const input = document.querySelector("#fleet-filter");
      input.value = action.filter;
      input.dispatchEvent(new Event("input", { bubbles: true }));
    }
    await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
    return performance.now() - t0;
  }, action);
  const shown = await table(page);
  report.latencies.push({ name, ms: Math.round(ms * 10) / 10, rowCount: shown.rowCount, drawn: shown.rows.length });
  return shown;
}

/** A new tab on the fleet, once every row has its health: the page, and how long that took from the navigation's start. */
async function openFleet(browser) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  const requests = [];
  page.on("request", (request) => requests.push(`${request.method()} ${new URL(request.url()).pathname}`));
  page.on("console", (message) => {
    if (message.type() === "error") report.consoleErrors.push(message.text());
  });
  page.on("pageerror", (error) => report.pageErrors.push(String(error)));
  await page.goto(`${config.origin}/#token=${config.token}&account=${config.account}`);
  const ready = await page.waitForFunction(
    (count) => {
      const buttons = document.querySelectorAll("#health-filter button");
      if (!buttons.length || document.querySelector("#fleet").hidden) return false;
      const n = Object.fromEntries([...buttons].map((b) => [b.dataset.health, Number(b.dataset.count)]));
      const rows = document.querySelectorAll("#fleet-table tbody tr[data-id]");
      return n.all === count && n.failing + n.silent + n.healthy === count && rows.length > 0 &&
        !document.querySelector("#fleet-table tbody tr[data-health=unknown]") && performance.now();
    },
    config.count,
    { polling: "raf", timeout: 60000 },
  );
  return { context, page, requests, ms: Math.round(await ready.jsonValue()) };
}

async function run(browser) {
  // 1. Open, with nothing arriving: every row with its health, in the page's own clock.
  const idle = await openFleet(browser);
  let page = idle.page;
  report.allRowsMs = idle.ms;
  report.loadRequests = idle.requests;
  report.counts = await counts(page);
  report.first = await table(page);
  report.steps.push("open");

  // 2. The whole fleet is reachable: sorted by id, the bottom of the page is the last connector.
  await timed(page, "sort id", { click: 'button[data-sort="id"]' });
  await page.evaluate(() => scrollTo(0, document.documentElement.scrollHeight));
  await page.waitForFunction((id) => document.querySelector(`#fleet-table tbody tr[data-id="${id}"]`), config.lastId, {
    timeout: 10000,
  });
  report.bottom = await table(page);
  await idle.context.close();
  report.steps.push("reachable");

  // 3. The feeder starts; the page is opened again (opensUnderFeed times) while it posts.
  await pause("feed");
  await sleep(2000); // the stream in full flow
  report.allRowsUnderFeedMs = [];
  let opened = null;
  for (let i = 0; i < config.opensUnderFeed; i++) {
    await opened?.context.close();
    opened = await openFleet(browser);
    report.allRowsUnderFeedMs.push(opened.ms);
    report.countsUnderFeed = await counts(opened.page);
  }
  page = opened.page;
  // Main-thread tasks over 50 ms from here on (what would make the page feel stuck).
  await page.evaluate(() => {
    window.longTasks = [];
    new PerformanceObserver((list) => window.longTasks.push(...list.getEntries().map((e) => e.duration))).observe({
      type: "longtask",
    });
  });
  await page.waitForTimeout(1000);
  report.steps.push("opened under feed");

  // 4. Sort and filter, each timed, `rounds` times, while the feeder posts.
  report.liveBefore = await page.evaluate(() => document.querySelector("#live").textContent);
  for (let round = 0; round < config.rounds; round++) {
    for (const key of ["health", "last", "version", "heartbeat", "id"]) {
      const shown = await timed(page, `sort ${key}`, { click: `button[data-sort="${key}"]` });
      if (key === "id") report.sortedById = shown.rows.slice(0, 5).map((row) => row.id);
    }
    for (const health of ["failing", "silent", "healthy", "all"]) {
      const shown = await timed(page, `filter ${health}`, { click: `#health-filter button[data-health="${health}"]` });
      if (round === 0) report[`filter-${health}`] = { rowCount: shown.rowCount, healths: [...new Set(shown.rows.map((r) => r.health))] };
    }
    const shown = await timed(page, "filter text", { filter: config.lastId });
    if (round === 0) report.textFilter = shown;
    await timed(page, "filter text cleared", { filter: "" });
    await page.waitForTimeout(1000); // the next round lands elsewhere among the stream's redraws
  }
  report.steps.push("measured");

  // 5. Live: a failure posted for a healthy connector turns its row failing (from the event itself,
  // or the server's health message), and an event wakes a silent one; the counts follow.
  await timed(page, "filter text", { filter: config.failId });
  const failed = await pause("fail");
  const failStart = Date.now();
  await page.waitForFunction((id) => document.querySelector(`#fleet-table tbody tr[data-id="${id}"]`)?.dataset.health === "failing", config.failId, {
    timeout: 15000,
  });
  report.failMs = Date.now() - failStart;
  report.failRow = (await table(page)).rows;
  report.failed = failed;
  await timed(page, "filter text", { filter: config.wakeId });
  await pause("wake");
  await page.waitForFunction((id) => document.querySelector(`#fleet-table tbody tr[data-id="${id}"]`)?.dataset.health === "healthy", config.wakeId, {
    timeout: 15000,
  });
  report.wakeRow = (await table(page)).rows;
  if (config.tunnelId) {
    // Only the server's `health` message on the stream can say this one: no event explains it.
    await timed(page, "filter text", { filter: config.tunnelId });
    await pause("tunnel");
    await page.waitForFunction((id) => document.querySelector(`#fleet-table tbody tr[data-id="${id}"]`)?.dataset.health === "failing", config.tunnelId, {
      timeout: 15000,
    });
    report.tunnelRow = (await table(page)).rows;
  }
  await timed(page, "filter text cleared", { filter: "" });
  report.countsAfter = await counts(page);
  report.steps.push("live");
  report.longTasks = await page.evaluate(() => window.longTasks.map(Math.round));
  report.feeder = await pause("stop");
  report.liveAfter = await page.evaluate(() => document.querySelector("#live").textContent);
  await opened.context.close();
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
