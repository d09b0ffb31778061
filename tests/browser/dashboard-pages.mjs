// The dashboard's management pages in real headless Chromium: sign in as the
// owner, open every page on a desktop and on a phone-sized screen (390 px),
// fail when a page scrolls sideways or a script errs, and save a screenshot
// of each. Then a viewer's pages: no form that posts anything but sign-out.
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
const shots = env("TAP_SCREENSHOTS");
mkdirSync(shots, { recursive: true });
const step = (s) => console.log(`browser: ${s}`);
const WAIT = 30_000;

const PAGES = [
  ["overview", "/dashboard"],
  ["credentials", "/dashboard/credentials"],
  ["credential", "/dashboard/credentials/echo"],
  ["credential-check", "/dashboard/credentials/echo/test?method=POST&target=https%3A%2F%2Fapi.example.com%2Fv1%2Fitems"],
  ["credential-delete", "/dashboard/credentials/echo/delete"],
  ["agents", "/dashboard/agents"],
  ["agent", "/dashboard/agents/bot"],
  ["roles", "/dashboard/roles"],
  ["role", "/dashboard/roles/readers"],
  ["policies", "/dashboard/policies"],
  ["policy", "/dashboard/policies/echo?method=DELETE&target=https%3A%2F%2Fapi.example.com%2Fadmin%2Fx"],
  ["grants", "/dashboard/grants"],
  ["members", "/dashboard/members"],
  ["links", "/dashboard/links"],
  ["channels", "/dashboard/channels"],
  ["tokens", "/dashboard/tokens"],
];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  timeout: WAIT,
});

async function signIn(context, email, password) {
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") { errors.push(m.text()); } });
  await page.goto(`${base}/login?next=/dashboard`);
  await page.fill('input[name="email"]', email);
  await page.fill('input[name="password"]', password);
  await page.click('button[type="submit"]');
  await page.waitForURL(/\/dashboard$/);
  return { page, errors };
}

async function visit(page, errors, path, shot) {
  const sep = path.includes("?") ? "&" : "?";
  const r = await page.goto(`${base}${path}${sep}team=default`);
  if (r.status() !== 200) { throw new Error(`${path}: HTTP ${r.status()}`); }
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  const view = page.viewportSize().width;
  if (width > view + 1) { throw new Error(`${path} scrolls sideways at ${view}px: ${width}px wide`); }
  await page.screenshot({ path: join(shots, `${shot}.png`), fullPage: true });
  if (errors.length) { throw new Error(`${path}: ${errors.join("; ")}`); }
}

try {
  for (const [label, viewport] of [["desktop", { width: 1280, height: 900 }], ["phone", { width: 390, height: 844 }]]) {
    step(`owner pages, ${label}`);
    const context = await browser.newContext({ viewport });
    const { page, errors } = await signIn(context, env("TAP_EMAIL"), env("TAP_PASSWORD"));
    for (const [name, path] of PAGES) {
      await visit(page, errors, path, `dashboard-${name}-${label}`);
    }
    await context.close();
  }

  step("a viewer's pages offer nothing that changes anything");
  const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
  const { page, errors } = await signIn(context, env("TAP_VIEWER_EMAIL"), env("TAP_VIEWER_PASSWORD"));
  for (const [name, path] of PAGES.filter(([n]) => n !== "tokens" && n !== "credential-delete")) {
    await visit(page, errors, path, `dashboard-viewer-${name}`);
    const posts = await page.$$eval('form[method="post"]', (fs) => fs.map((f) => f.getAttribute("action")));
    if (posts.length !== 1 || posts[0] !== "/logout") { throw new Error(`viewer ${path}: forms ${JSON.stringify(posts)}`); }
    if (name === "credentials") {
      const text = await page.locator("#credentials").innerText();
      if (!text.includes("<script>window.__xss=true</script>")) { throw new Error(`the stored description should show as text: ${text}`); }
    }
  }
  if (await page.evaluate(() => window.__xss === true)) { throw new Error("stored script ran"); }
  await context.close();
  step("done");
} finally {
  await browser.close();
}
