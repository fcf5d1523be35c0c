// CNS login in headless Chromium: the choice page offers the card where the service allows it,
// a good card reaches the service with its holder's identity, a revoked card and a browser with
// no card read why on the portal, and every page is accessible with its own CSP on.
//
// Playwright presents a card through its client-certificate proxy, which stands between Chromium
// and the card's host: for a context with client certificates it has Chromium accept any server
// certificate, and verifies varco's itself (against the test CA that browser.sh puts in
// NODE_EXTRA_CA_CERTS). The proxy resolves host names in this process: *.localhost is loopback
// here, as Chromium's --host-resolver-rules map it.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import dns from "node:dns";
import { join } from "node:path";
import { citizenContext, launch, violations, startExamples, stopAll, tabTo, checkedContexts } from "./varco.mjs";

const pki = process.env.VARCO_TEST_PKI;
const realLookup = dns.promises.lookup.bind(dns.promises);
dns.promises.lookup = (host, options = {}) => {
  if (!/(^|\.)localhost$/i.test(host)) return realLookup(host, options);
  const v4 = { address: "127.0.0.1", family: 4 };
  if (options.all) return Promise.resolve(options.family === 6 ? [] : [v4]);
  return Promise.resolve(v4);
};

// Every page runs with its own Content Security Policy on, as in a citizen's browser: a test
// fails if the browser reported any error (a violation of that policy included).
const contexts = checkedContexts();

let browser;
let examples;

before(async () => {
  assert.ok(pki, "VARCO_TEST_PKI: run through tests/browser.sh, which writes the certificates");
  examples = await startExamples({ pki });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  stopAll();
});

/** A page in a citizen's context that presents `card` (a pki.sh name; none: no card). */
async function pageWithCard(card) {
  const origin = card ? `https://cns.portal.localhost:${examples.tlsPort}` : "https://no-card.localhost:1";
  const context = await citizenContext(browser, {
    clientCertificates: [
      {
        origin,
        certPath: join(pki, `${card ?? "card-good"}.pem`),
        keyPath: join(pki, `${card ?? "card-good"}.key`),
      },
    ],
  });
  contexts.push(context);
  return context.newPage();
}

const service = (path) => `https://capannori.localhost:${examples.tlsPort}${path}`;

test("a citizen logs in with the CNS card and the service gets the card's holder", async () => {
  const page = await pageWithCard("card-good");
  await page.goto(service("/mensa/"));
  await page.waitForURL(/\/\.sso\/login\?/);
  assert.deepEqual(await violations(page), [], "the choice page: axe-core found violations");
  const link = page.getByRole("link", { name: "Entra con Carta Nazionale dei Servizi (CNS)" });
  assert.equal(await link.count(), 1);
  await tabTo(page, /Carta Nazionale dei Servizi/);
  await Promise.all([page.waitForURL(/capannori\.localhost:\d+\/mensa\//), page.keyboard.press("Enter")]);
  const body = await page.locator("body").innerText();
  assert.match(body, /RSSMRA80A01H501U/, body);
  assert.match(body, /MARIO/, body);
});

test("a revoked card and a browser without a card end on a page that says why", async () => {
  for (const [card, title] of [
    ["card-revoked", "Carta revocata o sospesa"],
    [null, "Carta non trovata"],
  ]) {
    const page = await pageWithCard(card);
    await page.goto(service("/mensa/"));
    await page.waitForURL(/\/\.sso\/login\?/);
    await Promise.all([
      page.waitForURL(/portal\.localhost:\d+\/\.sso\/cns\/callback/),
      page.getByRole("link", { name: "Entra con Carta Nazionale dei Servizi (CNS)" }).click(),
    ]);
    assert.equal(await page.locator("h1").innerText(), title);
    assert.deepEqual(await violations(page), [], `${title}: axe-core found violations`);
    // The page leads back to a new login.
    assert.equal(await page.getByRole("link", { name: "Riprova ad accedere" }).count(), 1);
  }
});

test("a service above the card's level does not offer it", async () => {
  const page = await pageWithCard("card-good");
  await page.goto(service("/uffici/"));
  await page.waitForURL(/\/\.sso\/login\?/);
  assert.match(await page.locator("body").innerText(), /SPID livello 3/);
  assert.equal(await page.getByRole("link", { name: /Carta Nazionale dei Servizi/ }).count(), 0);
});
