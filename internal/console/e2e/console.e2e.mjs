// The console in a real browser: cmd/sluice TestConsoleBrowser runs this
// with node against a demo gateway, a live ssh session and a finished one.
// Environment: BASE (https://ADDR), NAME, PASSWORD, LIVE
// (the live session's id), DONE (a finished session's id), SHOTS (if set, a
// folder for the screenshots), CHROMIUM (the browser's path). The TOTP
// code is asked for on stdout ("need code") when the form is filled, and
// read from stdin, since chromium may take longer to start than a code
// lives.
import { chromium } from "playwright-core";
import { createInterface } from "node:readline";

const stdin = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const totpCode = async () => {
  console.log("need code");
  const { value } = await stdin.next();
  return value.trim();
};

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const base = env("BASE");
const shots = process.env.SHOTS ?? "";
const t0 = Date.now();
const step = (what) => console.log(`step: ${what} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
const shoot = async (page, name, fullPage = false) => {
  if (shots) await page.screenshot({ path: `${shots}/${name}.png`, fullPage });
};

const browser = await chromium.launch({ executablePath: env("CHROMIUM"), args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
try {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  const cspErrors = [];
  page.on("console", (m) => {
    if (m.type() === "error") cspErrors.push(m.text());
  });
  // Generous: the test machine may be loaded, and chromium is slow to start there.
  page.setDefaultTimeout(90000);
  page.setDefaultNavigationTimeout(90000);

  step("log in");
  await page.goto(base + "/");
  await page.waitForURL(/\/login$/);
  await shoot(page, "login");
  await page.fill("input[name=name]", env("NAME"));
  await page.fill("input[name=password]", env("PASSWORD"));
  await page.fill("input[name=code]", await totpCode());
  await page.click("button[type=submit]");
  await page.waitForURL(base + "/");

  step("see the live session");
  const live = env("LIVE");
  const row = page.locator(`#live tr[data-session="${live}"]`);
  await row.waitFor();
  await shoot(page, "sessions", true);

  step("watch it live");
  await row.locator("a", { hasText: "Watch" }).click();
  const term = page.locator("#player .ap-term");
  await term.waitFor();
  // The output grows while we watch: a tick seen now, a later one after.
  const tickOf = async () => {
    const m = [...(await term.innerText()).matchAll(/tick (\d+)/g)];
    return m.length ? Number(m[m.length - 1][1]) : 0;
  };
  await page.waitForFunction(() => /tick \d+/.test(document.querySelector("#player .ap-term")?.innerText ?? ""));
  const first = await tickOf();
  await page.waitForFunction((n) => {
    const m = [...(document.querySelector("#player .ap-term")?.innerText ?? "").matchAll(/tick (\d+)/g)];
    return m.length && Number(m[m.length - 1][1]) > n + 1;
  }, first);
  console.log(`live: tick ${first} then ${await tickOf()}`);
  await shoot(page, "live");

  step("open a finished session's timeline");
  const done = env("DONE");
  await page.goto(`${base}/sessions/${encodeURIComponent(done)}`);
  await page.locator("#timeline").getByText("session.end").waitFor();
  await shoot(page, "timeline", true);

  step("replay it with seek");
  await page.locator("#channels a", { hasText: "Replay" }).first().click();
  await term.waitFor();
  // asciinema-player 3's getters return promises: the predicates await them.
  await page.waitForFunction(async () => window.sluicePlayer && (await window.sluicePlayer.getDuration()) > 0);
  const duration = await page.evaluate(() => window.sluicePlayer.getDuration());
  // Paused, then moved to 1.5 s with the page's seek control.
  await page.evaluate(() => window.sluicePlayer.pause());
  await page.fill("input[name=seek]", "1.5");
  await page.click("#seek-go");
  await page.waitForFunction(async () => Math.abs((await window.sluicePlayer.getCurrentTime()) - 1.5) < 0.3);
  // The screen at 1.5 s shows the second line and not yet the third.
  await page.waitForFunction(() => {
    const text = document.querySelector("#player .ap-term")?.innerText ?? "";
    return text.includes("two") && !text.includes("three");
  });
  console.log(`replay: at ${await page.evaluate(() => window.sluicePlayer.getCurrentTime())} s of ${duration} s`);
  await shoot(page, "replay");

  step("kill the live session");
  await page.goto(base + "/");
  page.once("dialog", (d) => d.accept());
  await page.locator(`#live tr[data-session="${live}"] button.danger`).click();
  await page.waitForURL(base + "/");
  await page.waitForFunction((id) => !document.querySelector(`#live tr[data-session="${id}"]`), live);

  step("search the audit");
  await page.goto(base + "/audit");
  await page.fill("#audit-search input[name=type]", "kill");
  await page.click("#audit-search button");
  await page.locator("#audit").getByText(live).first().waitFor();
  await page.locator("#audit").getByText(env("NAME")).first().waitFor();
  await shoot(page, "audit", true);
  const csv = await page.locator("#export-csv").getAttribute("href");
  const resp = await page.request.get(base + csv);
  if (!resp.ok() || !(await resp.text()).includes(live)) throw new Error(`CSV export: ${resp.status()}`);

  const csp = cspErrors.filter((e) => /Content Security Policy/i.test(e));
  if (csp.length) throw new Error(`CSP violations: ${csp.join("; ")}`);
  console.log("ok");
} finally {
  await browser.close();
  process.stdin.destroy();
}
