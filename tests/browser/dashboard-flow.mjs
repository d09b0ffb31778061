// The dashboard in real headless Chromium (Debian's /usr/bin/chromium over
// the DevTools protocol, playwright-core) at a phone's width: the owner signs
// in, creates a credential (its description a stored-XSS attempt) and an
// agent, sees the agent's request arrive in the inbox, approves it, finds it
// in the audit browser and opens its timeline (the agent's <script> body
// shown as text), looks at the status page; then a viewer sees no button
// that changes anything and a forged POST from the viewer's session is
// refused. No dialog may open and no script error may occur on any page.
//
// The credential and agent are created on the dashboard's own pages when the
// proxy serves them (/dashboard/credentials, /dashboard/agents); a proxy
// without them (404) gets them through the admin API instead.
//
// Run by crates/tap-cli/tests/browser.rs against a real `tap serve`; every
// wait is bounded. Screenshots go to $TAP_SCREENSHOTS.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const env = (k) => {
  const v = process.env[k];
  if (!v) { throw new Error(`${k} is not set`); }
  return v;
};
const base = env("TAP_URL");
const email = env("TAP_EMAIL");
const password = env("TAP_PASSWORD");
const viewerEmail = env("TAP_VIEWER_EMAIL");
const viewerPassword = env("TAP_VIEWER_PASSWORD");
const upstream = env("TAP_UPSTREAM");
const secret = env("TAP_SECRET");
const shots = env("TAP_SCREENSHOTS");
mkdirSync(shots, { recursive: true });

const step = (s) => console.log(`dashboard: ${s}`);
const WAIT = 30_000;
const CREDENTIAL = "dash-vault";
const AGENT = "dash-bot";
const XSS_DESCRIPTION = `<script>window.__xss=1;alert("xss")</script><img src=x onerror="window.__xss=2;alert(2)">`;
const XSS_BODY = `{"memo":"<script>alert('body')</script>","amount":7}`;

async function adminToken() {
  const r = await fetch(`${base}/login`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email, password }),
  });
  const v = await r.json();
  if (r.status !== 200) { throw new Error(`login: ${r.status} ${JSON.stringify(v)}`); }
  return v.session_token;
}

async function api(token, method, path, body) {
  const r = await fetch(`${base}${path}`, {
    method,
    headers: { "Authorization": `Bearer ${token}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  if (r.status >= 300) { throw new Error(`${method} ${path}: ${r.status} ${text}`); }
  return text ? JSON.parse(text) : null;
}

// Fills the first field of `form` named one of `names`, if the form has one.
async function fill(form, names, value) {
  for (const n of names) {
    const f = form.locator(`[name="${n}"]`);
    if (await f.count() > 0) { await f.first().fill(value); return true; }
  }
  return false;
}

// Creates the credential on /dashboard/credentials. Returns how it was created.
async function createCredential(page, token) {
  const resp = await page.goto(`${base}/dashboard/credentials`);
  if (!resp || resp.status() !== 200) { throw new Error(`/dashboard/credentials: ${resp && resp.status()}`); }
  const form = page.locator('form[method="post"]:has([name="name"])').first();
  await fill(form, ["name"], CREDENTIAL);
  await fill(form, ["description"], XSS_DESCRIPTION);
  await fill(form, ["allowed_hosts", "allowed_host", "hosts"], upstream);
  await fill(form, ["value", "secret"], secret);
  await form.locator('button[type="submit"]').first().click();
  await page.waitForLoadState("load");
  await page.goto(`${base}/dashboard/credentials`);
  await page.waitForSelector(`text=${CREDENTIAL}`);
  return "dashboard";
}

// Creates the agent on /dashboard/agents; its key, shown once.
async function createAgent(page, token) {
  const resp = await page.goto(`${base}/dashboard/agents`);
  if (!resp || resp.status() !== 200) { throw new Error(`/dashboard/agents: ${resp && resp.status()}`); }
  const form = page.locator('form[method="post"]:has([name="id"])').first();
  await fill(form, ["id"], AGENT);
  // Credentials are granted by ticking their box.
  await form.locator(`input[type="checkbox"][name="credential"][value="${CREDENTIAL}"]`).check();
  await form.locator('button[type="submit"]').first().click();
  await page.waitForLoadState("load");
  // The key is shown once, in an element marked for it.
  const key = (await page.locator("#once-value").first().textContent()).trim();
  return { how: "dashboard", key };
}

async function forward(key) {
  const r = await fetch(`${base}/forward`, {
    method: "POST",
    headers: {
      "X-TAP-Key": key,
      "X-TAP-Credential": CREDENTIAL,
      "X-TAP-Target": `${upstream}/orders`,
      "X-TAP-Method": "POST",
      "Prefer": "respond-async",
      "Content-Type": "application/json",
    },
    body: XSS_BODY,
  });
  const v = await r.json();
  if (r.status !== 202) { throw new Error(`forward: ${r.status} ${JSON.stringify(v)}`); }
  return v.txn_id;
}

async function pollUntil(key, txn, status) {
  const until = Date.now() + WAIT;
  let last = null;
  while (Date.now() < until) {
    const r = await fetch(`${base}/agent/approvals/${txn}`, { headers: { "X-TAP-Key": key } });
    last = await r.json();
    if (last.status === status) { return last; }
    await new Promise((ok) => setTimeout(ok, 200));
  }
  throw new Error(`${txn} never became ${status}: ${JSON.stringify(last)}`);
}

async function signIn(page, who, pw) {
  await page.goto(`${base}/login`);
  await page.fill('input[name="email"]', who);
  await page.fill('input[name="password"]', pw);
  await page.click('form[action="/login"] button[type="submit"]');
  await page.waitForURL(/\/inbox$/);
}

// The page is no wider than the phone: wide tables scroll in their wrapper.
async function fitsThePhone(page, what) {
  const w = await page.evaluate(() => document.documentElement.scrollWidth);
  if (w > 392) { throw new Error(`${what} is ${w}px wide at a 390px viewport`); }
}

// Forms that change anything: every POST form but the header's sign-out.
async function mutatingControls(page) {
  return page.evaluate(() => {
    const forms = [...document.querySelectorAll("form")]
      .filter((f) => (f.getAttribute("method") || "get").toLowerCase() !== "get")
      .filter((f) => f.getAttribute("action") !== "/logout");
    const buttons = [...document.querySelectorAll("button")]
      .filter((b) => !b.closest('form[action="/logout"]'))
      .filter((b) => { const f = b.closest("form"); return !f || (f.getAttribute("method") || "get").toLowerCase() !== "get"; });
    return forms.length + buttons.length;
  });
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  timeout: WAIT,
});
let page;
try {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, acceptDownloads: true });
  page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  const errors = [];
  const dialogs = [];
  page.on("dialog", async (d) => { dialogs.push(d.message()); await d.dismiss(); });
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) { errors.push(m.text()); }
  });
  const inert = async (where) => {
    const xss = await page.evaluate(() => window.__xss);
    if (dialogs.length || xss !== undefined) {
      throw new Error(`script ran on ${where}: dialogs ${JSON.stringify(dialogs)}, __xss ${xss}`);
    }
  };

  step("sign in as the owner");
  await signIn(page, email, password);
  const token = await adminToken();

  step("create a credential whose description is a stored-XSS attempt");
  const credHow = await createCredential(page, token);
  await inert("the credentials page");
  step(`credential created via ${credHow}`);

  step("create an agent");
  const agent = await createAgent(page, token);
  await inert("the agents page");
  step(`agent created via ${agent.how}`);

  step("the agent's request arrives in the open inbox");
  await page.goto(`${base}/inbox`);
  const txn = await forward(agent.key);
  await page.waitForSelector(`li[data-txn="${txn}"]`);
  await page.screenshot({ path: join(shots, "dashboard-inbox.png"), fullPage: true });

  step("approve it on its page");
  await page.click(`li[data-txn="${txn}"] a`);
  await page.waitForURL(new RegExp(`/approve/${txn}$`));
  await inert("the approval page");
  await page.click(`form[action="/approve/${txn}/approve"] button[type="submit"]`);
  await page.waitForLoadState("load");
  const done = await pollUntil(agent.key, txn, "forwarded");
  if (done.response?.status !== 200) { throw new Error(`forwarded answer: ${JSON.stringify(done)}`); }

  step("find it in the audit browser");
  await page.goto(`${base}/dashboard/audit`);
  await page.waitForSelector(`tr[data-request="${txn}"]`);
  await page.waitForSelector("#chain.ok");
  await fitsThePhone(page, "the audit list");
  await inert("the audit list");
  await page.screenshot({ path: join(shots, "dashboard-audit.png"), fullPage: true });

  step("filter by agent");
  await page.fill('#audit-filters input[name="agent"]', AGENT);
  await page.click('#audit-filters button[type="submit"]');
  await page.waitForURL(/agent=dash-bot/);
  const others = await page.locator(`#audit-rows tbody tr:not([data-request="${txn}"])`).count();
  if (others !== 0) { throw new Error(`the agent filter left ${others} other rows`); }
  await page.screenshot({ path: join(shots, "dashboard-audit-filtered.png"), fullPage: true });

  step("export the filtered rows");
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#export")]);
  const lines = (await new Response(await download.createReadStream()).text()).trim().split("\n");
  if (!lines.some((l) => JSON.parse(l).request_id === txn)) { throw new Error(`export lacks ${txn}: ${lines}`); }

  step("open its timeline");
  await page.click(`tr[data-request="${txn}"] a`);
  await page.waitForURL(new RegExp(`/dashboard/audit/${txn}`));
  await page.waitForSelector(`#timeline >> text=approved by ${email}`);
  await page.waitForSelector("#timeline >> text=HTTP 200");
  const body = await page.locator("#request-body").textContent();
  if (!body.includes("<script>alert('body')</script>")) { throw new Error(`body not shown as text: ${body}`); }
  if (await page.locator("#request-body script").count() !== 0) { throw new Error("the body became markup"); }
  await fitsThePhone(page, "the timeline");
  await inert("the timeline");
  await page.screenshot({ path: join(shots, "dashboard-timeline.png"), fullPage: true });

  step("the status page");
  await page.goto(`${base}/dashboard/status`);
  await page.waitForSelector("#per-minute rect.bar");
  const ok = Number(await page.locator("#total-ok").textContent());
  if (!(ok >= 1)) { throw new Error(`status shows ${ok} ok requests`); }
  await fitsThePhone(page, "the status page");
  await page.screenshot({ path: join(shots, "dashboard-status.png"), fullPage: true });

  step("a viewer sees nothing that changes anything");
  await page.click('form[action="/logout"] button');
  await page.waitForURL(/\/login$/);
  await signIn(page, viewerEmail, viewerPassword);
  for (const path of ["/dashboard/audit", `/dashboard/audit/${txn}`, "/dashboard/status"]) {
    await page.goto(`${base}${path}`);
    const n = await mutatingControls(page);
    if (n !== 0) { throw new Error(`${path} offers a viewer ${n} mutating controls`); }
  }
  await page.goto(`${base}/dashboard/audit`);
  await page.waitForSelector(`tr[data-request="${txn}"]`);
  await page.screenshot({ path: join(shots, "dashboard-audit-viewer.png"), fullPage: true });

  step("a forged POST from the viewer's session is refused");
  const forged = await page.evaluate(async (cred) => {
    const out = [];
    for (const [url, type, body] of [
      ["/team/credentials", "application/json", JSON.stringify({ name: "forged", allowed_hosts: ["example.com"], value: "x" })],
      ["/dashboard/credentials", "application/x-www-form-urlencoded", "name=forged&allowed_hosts=example.com&value=x"],
      [`/team/credentials/${cred}`, "application/json", "{}"],
    ]) {
      const r = await fetch(url, { method: "POST", credentials: "same-origin", redirect: "manual", headers: { "Content-Type": type }, body });
      out.push({ url, status: r.status, type: r.type });
    }
    return out;
  }, CREDENTIAL);
  for (const f of forged) {
    if (f.status >= 200 && f.status < 300) {
      throw new Error(`forged POST accepted: ${JSON.stringify(forged)}`);
    }
  }
  const list = await api(token, "GET", "/team/credentials");
  if (JSON.stringify(list).includes("forged")) { throw new Error(`a forged POST created a credential: ${JSON.stringify(list)}`); }

  await inert("every page");
  if (errors.length) { throw new Error(`page errors: ${errors.join("; ")}`); }
  console.log(JSON.stringify({ ok: true, txn, credential: credHow, agent: agent.how }));
} catch (e) {
  if (page) { await page.screenshot({ path: join(shots, "dashboard-failure.png"), fullPage: true }).catch(() => {}); }
  console.error(`dashboard browser test failed: ${e && e.stack ? e.stack : e}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
