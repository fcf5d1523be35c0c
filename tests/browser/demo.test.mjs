// `varco demo` end to end in headless Chromium: the catalog, a SPID level 2 service, a login
// through the DEMO IdP (SAML) and through the DEMO OpenID provider, the comune's back-end showing
// the identity and the verified JWT; logout, after which the service asks for login again; and
// the simulated errors of both.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, citizenContext, launch, violations, startDemo, stopAll, tabTo, root, checkedContexts } from "./varco.mjs";

// Every page runs with its own Content Security Policy on, as in a citizen's browser: a test
// fails if the browser reported any error (a violation of that policy included).
const contexts = checkedContexts();

let browser;
let demo;

before(async () => {
  const [listen, admin, idp, b1, b2, b3] = await Promise.all(Array.from({ length: 6 }, freePort));
  demo = await startDemo(mkdtempSync(join(tmpdir(), "varco-demo-")), { listen, admin, idp, backends: [b1, b2, b3] });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  stopAll();
});

async function newPage() {
  const context = await citizenContext(browser);
  contexts.push(context);
  return context.newPage();
}

/** From the catalog to the DEMO IdP's page for the TARI of Capannori (SPID level 2). */
async function toTheDemoIdp(page) {
  await page.goto(`${demo.portal}/`);
  assert.match(await page.locator("main").innerText(), /servizi on-line di 3 comuni/);
  await page.getByLabel("Cerca un servizio").fill("TARI");
  await Promise.all([page.waitForURL(/\/catalog\?q=TARI/), page.keyboard.press("Enter")]);
  await Promise.all([page.waitForURL(/\/\.sso\/login\?/), page.getByRole("link", { name: "Pagamento TARI", exact: true }).click()]);
  await page.getByText("Entra con SPID").click();
  await Promise.all([
    page.waitForURL(/\/demo\/spid\/sso\?SAMLRequest=/),
    page.getByRole("list", { name: "Gestori di identità SPID" }).getByRole("link", { name: "DEMO (non valido)" }).click(),
  ]);
  assert.match(await page.locator("main").innerText(), /SPID livello 2/);
}

test("log in through the DEMO IdP, see the identity at the back-end, log out", async () => {
  const page = await newPage();
  await toTheDemoIdp(page);
  await assertNoViolations(page, "DEMO IdP page");
  await page.screenshot({ path: join(root, "target/browser/demo-idp.png"), fullPage: true });
  // As a citizen does: the kit draws the radio in its label, which takes the click.
  await page.locator("label", { hasText: "Giulia Bianchi" }).click();
  assert.ok(await page.getByLabel(/Giulia Bianchi/).isChecked());
  await Promise.all([page.waitForURL(/capannori\.localhost:\d+\/tari\//), page.getByRole("button", { name: "Accedi" }).click()]);

  const main = await page.locator("main").innerText();
  assert.match(main, /x-varco-fiscal-number\s+BNCGLI92L54E715/);
  assert.match(main, /x-varco-name\s+Giulia/);
  assert.match(main, /x-varco-family-name\s+Bianchi/);
  assert.match(main, /x-varco-email\s+giulia\.bianchi@example\.org/);
  assert.match(main, /x-varco-level\s+SpidL2/);
  assert.match(main, /x-varco-comune\s+c_b648/);
  assert.match(main, /x-cf\s+BNCGLI92L54E715/);
  assert.match(await page.locator("#jwt-status").innerText(), /Firma verificata .* destinatario c_b648\/tari/);
  const claims = JSON.parse(await page.locator("pre").innerText());
  assert.deepEqual(Object.keys(claims.attributes).sort(), ["email", "familyName", "fiscalNumber", "name"], "only what TARI's policy lists");
  await assertNoViolations(page, "demo back-end page");
  await page.screenshot({ path: join(root, "target/browser/demo-backend.png"), fullPage: true });

  // Another service of another comune at the same level: no second login.
  await page.goto(`${demo.portal}/catalog?q=certificati`);
  await Promise.all([page.waitForURL(/lucca\.localhost:\d+\/certificati\//), page.getByRole("link", { name: "Certificati anagrafici" }).click()]);
  assert.match(await page.locator("main").innerText(), /x-varco-comune\s+c_e715/);

  // Logout (SAML single logout with the DEMO IdP), then the service asks for login again.
  await Promise.all([page.waitForURL(/\/\.sso\/slo\?/), page.getByRole("link", { name: "Esci" }).click()]);
  assert.match(await page.locator("h1").innerText(), /Sei uscito/);
  await page.goto(`${demo.capannori}/tari/`);
  assert.match(page.url(), /\/\.sso\/login\?/);
  assert.match(await page.locator("main").innerText(), /Entra con SPID/);
});

test("every simulated SPID error ends on its own page", async () => {
  const titles = {
    19: /Troppi tentativi di accesso/,
    20: /Credenziali non adatte/,
    21: /Tempo scaduto/,
    22: /Consenso negato/,
    23: /Identità sospesa o revocata/,
    25: /Accesso annullato/,
  };
  for (const [code, title] of Object.entries(titles)) {
    const page = await newPage();
    await toTheDemoIdp(page);
    await page.selectOption("#error", code);
    await Promise.all([page.waitForURL(/\/\.sso\/acs/), page.getByRole("button", { name: "Simula l'errore" }).click()]);
    const main = await page.locator("main").innerText();
    assert.match(main, title, `nr${code}`);
    assert.match(main, new RegExp(`nr${code}`));
    await assertNoViolations(page, `nr${code} page`);
  }
});

test("the whole login with the keyboard alone, the focus always visible", async () => {
  const page = await newPage();
  await page.goto(`${demo.portal}/`);
  await tabTo(page, /Cerca un servizio/);
  await page.keyboard.type("TARI");
  await Promise.all([page.waitForURL(/\/catalog\?q=TARI/), page.keyboard.press("Enter")]);
  await tabTo(page, /^Pagamento TARI$/);
  await Promise.all([page.waitForURL(/\/\.sso\/login\?/), page.keyboard.press("Enter")]);
  await tabTo(page, /Entra con SPID/);
  await page.keyboard.press("Enter");
  await tabTo(page, /DEMO \(non valido\)/);
  await Promise.all([page.waitForURL(/\/demo\/spid\/sso\?/), page.keyboard.press("Enter")]);
  // Tab reaches the group of citizens; the arrow keys move (and check) within it.
  await tabTo(page, /[A-Z]{6}\d{2}[A-Z]\d{2}[A-Z]\d{3}[A-Z]/);
  for (let i = 0; i < 10 && !(await page.getByLabel(/Giulia Bianchi/).isChecked()); i++) {
    await page.keyboard.press("ArrowDown");
  }
  assert.ok(await page.getByLabel(/Giulia Bianchi/).isChecked());
  await tabTo(page, /^Accedi\b/);
  await Promise.all([page.waitForURL(/capannori\.localhost:\d+\/tari\//), page.keyboard.press("Enter")]);
  assert.match(await page.locator("main").innerText(), /x-varco-fiscal-number\s+BNCGLI92L54E715/);
});

test("log in through the DEMO OpenID provider: the same identity, headers and JWT", async () => {
  const page = await newPage();
  await page.goto(`${demo.capannori}/tari/`);
  assert.match(page.url(), /\/\.sso\/login\?/);
  await Promise.all([
    page.waitForURL(/\/demo\/oidc\/authorize\?/),
    page.getByRole("link", { name: "Entra con DEMO OpenID (non valido)" }).click(),
  ]);
  const asked = await page.locator("main").innerText();
  assert.match(asked, /livello 2/);
  assert.match(asked, /il codice fiscale/);
  await assertNoViolations(page, "DEMO OpenID provider page");
  await page.locator("label", { hasText: "Giulia Bianchi" }).click();
  await Promise.all([page.waitForURL(/capannori\.localhost:\d+\/tari\//), page.getByRole("button", { name: "Accedi" }).click()]);
  const main = await page.locator("main").innerText();
  assert.match(main, /x-varco-fiscal-number\s+BNCGLI92L54E715/);
  assert.match(main, /x-varco-email\s+giulia\.bianchi@example\.org/);
  assert.match(main, /x-varco-level\s+SpidL2/);
  assert.match(main, /x-varco-idp\s+http:\/\/127\.0\.0\.1:\d+\/demo\/oidc/);
  assert.match(await page.locator("#jwt-status").innerText(), /Firma verificata .* destinatario c_b648\/tari/);
  const claims = JSON.parse(await page.locator("pre").innerText());
  assert.equal(claims.protocol, "oidc");
  assert.match(claims.attributes.fiscalNumber, /^BNCGLI92L54E715[A-Z]$/);

  // Logout: varco ends the session, the provider ends its own and sends the citizen back.
  await Promise.all([page.waitForURL(/\/\.sso\/oidc\/logged-out/), page.getByRole("link", { name: "Esci" }).click()]);
  assert.match(await page.locator("h1").innerText(), /Sei uscito/);
  await page.goto(`${demo.capannori}/tari/`);
  assert.match(page.url(), /\/\.sso\/login\?/);

  // The citizen declines at the provider: varco's own page, no session.
  await Promise.all([
    page.waitForURL(/\/demo\/oidc\/authorize\?/),
    page.getByRole("link", { name: "Entra con DEMO OpenID (non valido)" }).click(),
  ]);
  await page.selectOption("#error", "access_denied");
  await Promise.all([page.waitForURL(/\/\.sso\/oidc\/callback\?/), page.getByRole("button", { name: "Simula l'errore" }).click()]);
  assert.match(await page.locator("main").innerText(), /Accesso negato/);
  await assertNoViolations(page, "access_denied page");
});

async function assertNoViolations(page, what) {
  assert.deepEqual(await violations(page), [], `${what}: axe-core found violations`);
}

test("CIE through the DEMO IdP: level 3 and CIE's attributes only", async () => {
  const page = await newPage();
  await page.goto(`${demo.portal}/catalog?q=certificati`);
  await Promise.all([page.waitForURL(/\/\.sso\/login\?/), page.getByRole("link", { name: "Certificati anagrafici" }).click()]);
  await Promise.all([page.waitForURL(/\/demo\/cie\/sso\?/), page.getByRole("link", { name: "Entra con CIE" }).click()]);
  assert.equal(await page.getByRole("radio", { name: /livello/ }).count(), 1, "CIE grants level 3 only");
  await Promise.all([page.waitForURL(/lucca\.localhost:\d+\/certificati\//), page.getByRole("button", { name: "Accedi" }).click()]);
  const main = await page.locator("main").innerText();
  assert.match(main, /x-varco-level\s+SpidL3/);
  assert.match(main, /x-varco-idp\s+http:\/\/127\.0\.0\.1:\d+\/demo\/cie/);
  assert.match(main, /x-varco-fiscal-number\s+RSSMRA80A01H501U/);
  // A service that needs an e-mail cannot be reached with CIE: only SPID is offered.
  await page.goto(`${demo.portal}/catalog?q=ztl`);
  assert.match(await page.locator("ol.results").innerText(), /Ti chiederà di accedere di nuovo per altri dati/);
  await Promise.all([page.waitForURL(/\/\.sso\/login\?/), page.getByRole("link", { name: "Permessi ZTL", exact: true }).click()]);
  assert.equal(await page.getByText("Entra con CIE").count(), 0);
  assert.equal(await page.getByText("Entra con SPID").count(), 1);
  // The text promises only what the page offers, and says in one line why CIE is not there.
  const choice = await page.locator("main").innerText();
  assert.match(choice, /serve l'accesso con SPID livello \d( o superiore)? oppure DEMO OpenID \(non valido\)\./);
  assert.doesNotMatch(choice, /oppure CIE/);
  assert.match(choice, /L'accesso con CIE non è disponibile per questo servizio: richiede .*l'indirizzo email.*, che la CIE non fornisce\./);
});
