// The catalog and the login choice page in headless Chromium: search, follow a service, keyboard
// use, a phone-sized screen, reflow at 320 CSS px and at 200 % zoom, and axe-core with no
// violation of any impact; then the whole of Tuscany (273 comuni × 40 services).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { citizenContext, launch, violations, startExamples, startTuscany, stopAll, root, checkedContexts } from "./varco.mjs";

// Every page runs with its own Content Security Policy on, as in a citizen's browser: a test
// fails if the browser reported any error (a violation of that policy included).
const contexts = checkedContexts();

let browser;
let examples;
let tuscany;
const shots = join(root, "target/browser");

before(async () => {
  mkdirSync(shots, { recursive: true });
  [examples, tuscany] = await Promise.all([startExamples(), startTuscany(40)]);
  browser = await launch();
});

after(async () => {
  await browser?.close();
  stopAll();
});

async function newPage(options = {}) {
  const context = await citizenContext(browser, options);
  contexts.push(context);
  return context.newPage();
}

async function assertAccessible(page, what) {
  assert.deepEqual(await violations(page), [], `${what}: axe-core found violations`);
}

test("a citizen searches the catalog, opens a service, and every page is accessible", async () => {
  const page = await newPage();
  await page.goto(`${examples.portal}/`);
  assert.equal(await page.getAttribute("html", "lang"), "it");
  await assertAccessible(page, "home");

  // Search without JavaScript: a plain GET form.
  await page.getByLabel("Cerca un servizio").fill("rifiuti");
  await Promise.all([page.waitForURL(/\/catalog\?q=rifiuti/), page.keyboard.press("Enter")]);
  await assertAccessible(page, "results");
  const results = page.locator("ol.results > li");
  assert.equal(await results.count(), 2, "TARI (keyword) and Porcari's reports (description)");
  assert.match(await results.first().innerText(), /Pagamento TARI/);
  // TARI needs the e-mail, which CIE does not release: the label promises SPID only.
  assert.match(await results.first().innerText(), /Accesso con SPID livello 2 o superiore/);
  assert.doesNotMatch(await results.first().innerText(), /oppure CIE/);
  await page.screenshot({ path: join(shots, "catalog-search.png"), fullPage: true });

  // Browse by comune with the filter form, then follow a public service to its back-end.
  await page.goto(`${examples.portal}/catalog`);
  await page.selectOption("#comune", "c_b648");
  await Promise.all([page.waitForURL(/comune=c_b648/), page.getByRole("button", { name: "Cerca" }).click()]);
  assert.equal(await page.locator("ol.results > li").count(), 3, "Capannori lists 3 services (one is unlisted)");
  await Promise.all([page.waitForURL(/capannori\.localhost:\d+\/bandi\//), page.getByRole("link", { name: "Bandi di gara e contratti" }).click()]);
  const echoed = JSON.parse(await page.locator("body").innerText());
  assert.equal(echoed.path, "/bandi/");

  // A protected service leads to the choice page: keyboard opens the SPID list.
  await page.goto(`${examples.portal}/catalog?q=tari`);
  await Promise.all([page.waitForURL(/\/\.sso\/login\?/), page.getByRole("link", { name: "Pagamento TARI", exact: true }).click()]);
  assert.match(await page.locator("main").innerText(), /Per usare Pagamento TARI serve l'accesso con SPID livello 2/);
  await assertAccessible(page, "choice page (closed)");
  await page.locator("summary.btn-access").focus();
  await page.keyboard.press("Enter");
  assert.equal(await page.locator("details.idp-menu").getAttribute("open"), "");
  const idps = page.getByRole("list", { name: "Gestori di identità SPID" }).getByRole("link");
  assert.equal(await idps.count(), 1);
  await assertAccessible(page, "choice page (open)");
  await page.screenshot({ path: join(shots, "login-choice.png"), fullPage: true });
});

test("on a phone-sized screen nothing scrolls sideways and targets are large enough", async () => {
  const page = await newPage({ viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true });
  for (const path of ["/", "/catalog?q=permessi", "/.sso/login?level=SpidL2"]) {
    await page.goto(`${examples.portal}${path}`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `${path}: ${overflow}px of horizontal scroll`);
    await assertAccessible(page, `${path} on a phone`);
  }
  const button = await page.locator("summary.btn-access").boundingBox();
  assert.ok(button.height >= 44, `the SPID button is ${button.height}px high`);
});

test("every page reflows at 320 CSS px and at 200 % zoom, and every state is accessible", async () => {
  const paths = [
    "/",
    "/catalog",
    "/catalog?q=nulla-del-genere",
    "/catalog?q=servizi&comune=c_zzzz",
    "/catalog?q=tari",
    "/.sso/login?level=SpidL2",
    "/.sso/logout",
    "/non-esiste",
    "/%2e%2e/x",
  ];
  // 320 CSS px (WCAG 1.4.10), and a 1280-px window at 200 % zoom (640 CSS px).
  for (const viewport of [{ width: 320, height: 640 }, { width: 640, height: 400, deviceScaleFactor: 2 }]) {
    const page = await newPage({ viewport: { width: viewport.width, height: viewport.height }, deviceScaleFactor: viewport.deviceScaleFactor ?? 1 });
    for (const path of paths) {
      await page.goto(`${examples.portal}${path}`);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `${path} at ${viewport.width}px: ${overflow}px of horizontal scroll`);
      await assertAccessible(page, `${path} at ${viewport.width}px`);
    }
    // The choice page with its list open.
    await page.goto(`${examples.portal}/.sso/login?level=SpidL2`);
    await page.locator("summary.btn-access").first().click();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the open choice page at ${viewport.width}px: ${overflow}px of horizontal scroll`);
    await assertAccessible(page, `the open choice page at ${viewport.width}px`);
  }
});

test("the catalog on a phone and on a desktop, side by side (docs/catalog-phone-desktop.png)", async () => {
  const phone = await newPage({ viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  await phone.goto(`${examples.portal}/catalog`);
  await phone.screenshot({ path: join(shots, "catalog-phone.png") });
  const desktop = await newPage({ viewport: { width: 1280, height: 740 } });
  await desktop.goto(`${examples.portal}/catalog`);
  await desktop.screenshot({ path: join(shots, "catalog-desktop.png") });
  const png = (name) => `data:image/png;base64,${readFileSync(join(shots, name)).toString("base64")}`;
  // Composed in a blank page of the test's own (not one of varco's: their CSP allows no data: here).
  const sheet = await browser.newPage({ viewport: { width: 1720, height: 800 } });
  await sheet.setContent(`<body style="margin:0;display:flex;gap:20px;align-items:flex-start;background:#e6e9f2;padding:20px">
<img src="${png("catalog-phone.png")}" style="width:360px;border:1px solid #999">
<img src="${png("catalog-desktop.png")}" style="width:1280px;border:1px solid #999"></body>`);
  await sheet.screenshot({ path: join(shots, "catalog-phone-desktop.png"), fullPage: true });
  await sheet.close();
});

test("the whole of Tuscany: 273 comuni, search and pages stay usable and accessible", async () => {
  const page = await newPage();
  const started = Date.now();
  await page.goto(`${tuscany.portal}/`);
  const loaded = Date.now() - started;
  assert.equal(await page.locator("#per-comune ~ ul li, #per-comune ~ ul.columns li").count() > 0, true);
  assert.equal(await page.locator("ul.columns li").count(), 273);
  await assertAccessible(page, "Tuscany home");
  assert.ok(loaded < 5000, `the home took ${loaded} ms`);

  await page.getByLabel("Cerca un servizio").fill("permesso ztl");
  await Promise.all([page.waitForURL(/q=permesso/), page.keyboard.press("Enter")]);
  assert.match(await page.getByRole("status").first().innerText(), /546 servizi trovati, pagina 1 di 28\./);
  assert.equal(await page.locator("ol.results > li").count(), 20);
  await Promise.all([page.waitForURL(/page=2/), page.getByRole("link", { name: "Pagina successiva" }).click()]);
  assert.match(await page.getByRole("status").first().innerText(), /pagina 2 di 28/);
  await assertAccessible(page, "Tuscany results page 2");
  await page.screenshot({ path: join(shots, "catalog-tuscany.png") });

  await page.goto(`${tuscany.portal}/catalog?comune=c_b648&category=educazione-e-formazione`);
  const names = await page.locator("ol.results h2").allInnerTexts();
  assert.deepEqual(names.slice(0, 2), ["Iscrizione al nido", "Iscrizione al nido (2)"]);
});
