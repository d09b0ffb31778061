// The member pages in real headless Chromium (Debian's /usr/bin/chromium,
// driven over the DevTools protocol by playwright-core): a failed sign-in,
// sign-in, a passkey registered with the DevTools virtual authenticator, a
// pending request arriving in the inbox without a reload, and a
// require_passkey request approved on its page and forwarded.
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
const agentKey = env("TAP_AGENT_KEY");
const target = env("TAP_TARGET");
const shots = env("TAP_SCREENSHOTS");
mkdirSync(shots, { recursive: true });

const step = (s) => console.log(`browser: ${s}`);
const WAIT = 30_000;

async function forward() {
  const r = await fetch(`${base}/forward`, {
    method: "POST",
    headers: {
      "X-TAP-Key": agentKey,
      "X-TAP-Credential": "vault",
      "X-TAP-Target": target,
      "X-TAP-Method": "POST",
      "Prefer": "respond-async",
      "Content-Type": "application/json",
    },
    body: JSON.stringify({ amount: 42, memo: "<b>from the browser test</b>" }),
  });
  const v = await r.json();
  if (r.status !== 202) { throw new Error(`forward: ${r.status} ${JSON.stringify(v)}`); }
  return v.txn_id;
}

async function pollUntil(txn, status) {
  const until = Date.now() + WAIT;
  let last = null;
  while (Date.now() < until) {
    const r = await fetch(`${base}/agent/approvals/${txn}`, { headers: { "X-TAP-Key": agentKey } });
    last = await r.json();
    if (last.status === status) { return last; }
    await new Promise((ok) => setTimeout(ok, 200));
  }
  throw new Error(`${txn} never became ${status}: ${JSON.stringify(last)}`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  timeout: WAIT,
});
let page;
try {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
  page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  // Script errors fail the test; a 401 page (the failed sign-in) logs a
  // "Failed to load resource" line, which is not one.
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) { errors.push(m.text()); }
  });

  step("/ sends a stranger to the sign-in form");
  await page.goto(`${base}/`);
  await page.waitForURL(/\/login$/);
  await page.screenshot({ path: join(shots, "login.png"), fullPage: true });

  step("a wrong password shows the form again");
  await page.fill('input[name="email"]', email);
  await page.fill('input[name="password"]', "not-the-password");
  await page.click('button[type="submit"]');
  await page.waitForSelector("text=Wrong e-mail or password");
  if (await page.locator('form[action="/login"]').count() !== 1) { throw new Error("no form after a failed sign-in"); }
  await page.screenshot({ path: join(shots, "login-failed.png"), fullPage: true });

  step("sign in");
  await page.fill('input[name="password"]', password);
  await page.click('button[type="submit"]');
  await page.waitForURL(/\/inbox$/);
  await page.waitForSelector("text=Nothing is waiting");

  step("register a passkey with the virtual authenticator");
  const cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  await page.goto(`${base}/passkeys`);
  await page.fill('#passkey-register input[name="name"]', "virtual");
  await page.click('#passkey-register button[type="submit"]');
  await page.waitForSelector("#passkeys >> text=virtual");
  await page.screenshot({ path: join(shots, "passkeys.png"), fullPage: true });

  step("a pending request arrives in the open inbox");
  await page.goto(`${base}/inbox`);
  await page.waitForSelector("text=Nothing is waiting");
  const txn = await forward();
  await page.waitForSelector(`li[data-txn="${txn}"]`, { timeout: WAIT });
  await page.screenshot({ path: join(shots, "inbox.png"), fullPage: true });

  step("approve it with the passkey on its page");
  await page.click(`li[data-txn="${txn}"] a`);
  await page.waitForURL(new RegExp(`/approve/${txn}$`));
  await page.waitForSelector("text=passkey required");
  await page.screenshot({ path: join(shots, "approval.png"), fullPage: true });
  await page.click(`button[data-passkey-approve="${txn}"]`);
  const done = await pollUntil(txn, "forwarded");
  if (done.response?.status !== 200) { throw new Error(`forwarded answer: ${JSON.stringify(done)}`); }
  await page.goto(`${base}/approve/${txn}`);
  await page.waitForSelector("text=via passkey");
  await page.screenshot({ path: join(shots, "approved.png"), fullPage: true });

  step("sign out, then sign in with the passkey instead of the password");
  await page.click('form[action="/logout"] button');
  await page.waitForURL(/\/login$/);
  await page.fill('input[name="email"]', email);
  await page.click("#passkey-signin");
  await page.waitForURL(/\/inbox$/);
  if (errors.length) { throw new Error(`page errors: ${errors.join("; ")}`); }
  console.log(JSON.stringify({ ok: true, txn }));
} catch (e) {
  if (page) { await page.screenshot({ path: join(shots, "failure.png"), fullPage: true }).catch(() => {}); }
  console.error(`browser test failed: ${e && e.stack ? e.stack : e}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
