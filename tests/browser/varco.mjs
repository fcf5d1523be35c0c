// Starting varco and its back-ends for the browser tests, on free loopback ports, and a headless
// Debian Chromium driven by Playwright. Every process started here is stopped by its PID.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, cpSync, readFileSync, writeFileSync, readdirSync, mkdirSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import { afterEach } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const root = resolve(here, "../..");
const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

/** The varco binary: VARCO_BIN, or the debug build `cargo test` made. */
export const varcoBin = process.env.VARCO_BIN ?? join(root, "target/debug/varco");

/** A TCP port that was free a moment ago. */
export function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.unref();
    s.on("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

const children = [];

/** Starts a process; its output goes to `log` lines kept for failure messages. */
function start(cmd, args, cwd) {
  const child = spawn(cmd, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
  child.log = [];
  const keep = (d) => {
    child.log.push(...d.toString().split("\n"));
    if (child.log.length > 200) child.log.splice(0, child.log.length - 200);
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  children.push(child);
  return child;
}

/** Stops every process started here. */
export function stopAll() {
  for (const c of children.splice(0)) {
    if (c.exitCode === null) c.kill("SIGTERM");
  }
}

async function waitFor(url, child, seconds = 20) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    try {
      const r = await fetch(url);
      if (r.ok) return;
    } catch {
      // not up yet
    }
    if (child.exitCode !== null) {
      throw new Error(`exited with ${child.exitCode}:\n${child.log.join("\n")}`);
    }
    if (Date.now() > deadline) throw new Error(`${url} did not answer:\n${child.log.join("\n")}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * The example configuration (three comuni of the Provincia di Lucca) on free ports, trusting the
 * spid-sp-test IdP, with its echo back-ends. With `pki` (a directory that pki.sh wrote), varco
 * also terminates HTTPS, its portal is https://portal.localhost:<tlsPort>, and the CNS login is on
 * cns.portal.localhost. Returns { portal, port, tlsPort, dir }.
 */
export async function startExamples({ pki } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "varco-browser-"));
  cpSync(join(root, "examples"), dir, { recursive: true });
  const [port, admin, tlsPort, ...backs] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort(), freePort()]);
  const idp = join(root, "idp-bridge/test_vectors/spid-sp-test-idp.xml");
  let main = readFileSync(join(dir, "varco.toml"), "utf8")
    .replaceAll("127.0.0.1:8080", `127.0.0.1:${port}`)
    .replaceAll("127.0.0.1:9090", `127.0.0.1:${admin}`);
  main += `\n[[idp]]\nmetadata = "${idp}"\nkind = "spid"\n`;
  if (pki) {
    main = main.replace(`public_url = "http://127.0.0.1:${port}"`, `public_url = "https://portal.localhost:${tlsPort}"`);
    main += `\n[server.tls]\nlisten = "127.0.0.1:${tlsPort}"\ndefault = { cert = "${pki}/server.pem", key = "${pki}/server.key" }\n`;
    main += `\n[cns]\nhost = "cns.portal.localhost"\nca = ["${pki}/cns-ca.pem"]\ncrl = ["${pki}/cns-ca.crl"]\nlevel = "SpidL2"\n`;
  }
  writeFileSync(join(dir, "varco.toml"), main);
  const names = ["capannori", "lucca", "porcari"];
  for (const f of readdirSync(join(dir, "policies"))) {
    const p = join(dir, "policies", f);
    let text = readFileSync(p, "utf8");
    [9101, 9102, 9103].forEach((old, i) => {
      text = text.replaceAll(`127.0.0.1:${old}`, `127.0.0.1:${backs[i]}`);
    });
    writeFileSync(p, text);
  }
  for (const [i, b] of backs.entries()) {
    const echo = start(varcoBin, ["echo", "--listen", `127.0.0.1:${b}`, "--name", names[i]], dir);
    await waitFor(`http://127.0.0.1:${b}/`, echo);
  }
  const varco = start(varcoBin, ["run", "--config", join(dir, "varco.toml")], dir);
  await waitFor(`http://127.0.0.1:${admin}/readyz`, varco);
  const portal = pki ? `https://portal.localhost:${tlsPort}` : `http://127.0.0.1:${port}`;
  return { portal, port, tlsPort, dir };
}

/** The 273 comuni of Tuscany with `services` services each, on free ports. */
export async function startTuscany(services = 40) {
  const dir = mkdtempSync(join(tmpdir(), "varco-tuscany-"));
  const [port, admin] = await Promise.all([freePort(), freePort()]);
  const gen = process.env.TUSCANY_CONFIG_BIN ?? join(root, "target/debug/tuscany-config");
  const main = execFileSync(gen, [dir, String(services), "http://127.0.0.1:9", `127.0.0.1:${port}`, `127.0.0.1:${admin}`])
    .toString()
    .trim();
  mkdirSync(join(dir, "audit"), { recursive: true });
  const varco = start(varcoBin, ["run", "--config", main], dir);
  await waitFor(`http://127.0.0.1:${admin}/readyz`, varco, 60);
  return { portal: `http://127.0.0.1:${port}`, port, dir };
}

/**
 * `varco demo` with its state in `state`, on the given loopback ports. Returns the portal's and
 * Capannori's origins.
 */
export async function startDemo(state, { listen, admin, idp, backends }) {
  const demo = start(varcoBin, [
    "demo",
    "--state", state,
    "--listen", `127.0.0.1:${listen}`,
    "--admin", `127.0.0.1:${admin}`,
    "--idp", `127.0.0.1:${idp}`,
    "--backends", backends.map((b) => `127.0.0.1:${b}`).join(","),
  ], state);
  await waitFor(`http://127.0.0.1:${admin}/readyz`, demo, 60);
  return { portal: `http://127.0.0.1:${listen}`, capannori: `http://capannori.localhost:${listen}` };
}

/** Headless Debian Chromium; `*.localhost` and `*.toscana.test` resolve to 127.0.0.1. */
export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--host-resolver-rules=MAP *.toscana.test 127.0.0.1, MAP *.localhost 127.0.0.1",
    ],
  });
}

/**
 * Runs axe-core (WCAG 2.0/2.1 A and AA rules) on the page; returns the serious and critical
 * violations, each as "rule: target" lines.
 */
export async function seriousViolations(page) {
  return (await violations(page)).filter((v) => / \((serious|critical)\):/.test(v));
}

/**
 * Every axe-core violation on the page, of any impact, under WCAG 2.1 A/AA and axe's best
 * practices (landmarks, headings, regions).
 */
export async function violations(page) {
  // Evaluated through the DevTools protocol, which the page's Content Security Policy does not
  // govern: the page keeps the CSP a citizen's browser enforces, switched on, and axe still runs.
  await page.evaluate(axeSource);
  const result = await page.evaluate(() =>
    // eslint-disable-next-line no-undef
    axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] } }),
  );
  return result.violations.map(
    (v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).slice(0, 3).join(", ")}`,
  );
}

/**
 * Moves the focus with Tab only (at most `limit` presses) until the focused element's text or
 * label matches `name`; fails if it never does. Checks on the way that the focus is visible.
 */
export async function tabTo(page, name, limit = 60) {
  for (let i = 0; i < limit; i++) {
    await page.keyboard.press("Tab");
    const focused = await page.evaluate(() => {
      const el = document.activeElement;
      if (!el || el === document.body) return null;
      const label = el.labels && el.labels.length ? el.labels[0].innerText : "";
      const style = getComputedStyle(el);
      return {
        text: `${el.innerText || ""} ${el.getAttribute("aria-label") || ""} ${label} ${el.value || ""}`.trim(),
        visible: style.outlineStyle !== "none" && style.outlineWidth !== "0px" || style.boxShadow !== "none",
      };
    });
    if (focused && name.test(focused.text)) {
      if (!focused.visible) throw new Error(`the focus on "${focused.text}" is not visible`);
      return;
    }
  }
  throw new Error(`${limit} presses of Tab never reached ${name}`);
}

/**
 * A browser context as a citizen's: the pages' Content Security Policy stays on, and every error
 * the browser reports (a CSP violation, a resource that failed to load, a script error) is
 * collected in `context.consoleErrors` (a test asserts there is none). The status of an error page
 * itself (a 404 page answering a 404) is what that page is for, not an error of it.
 */
export async function citizenContext(browser, options = {}) {
  // A citizen's browser enforces the pages' CSP: a test that switched it off could pass on a page
  // that is broken for everybody (axe runs through the DevTools protocol, see `violations`).
  if ("bypassCSP" in options) throw new Error("browser tests keep the pages' Content Security Policy on");
  const context = await browser.newContext({ locale: "it-IT", ...options });
  context.consoleErrors = [];
  context.on("page", (page) => watchConsole(context, page));
  return context;
}

/**
 * The list a test file puts the contexts of its tests in: after each test they are closed, and
 * the test fails if the browser reported an error in one of them (a violation of the page's CSP
 * included). Call it at the top of the file.
 */
export function checkedContexts() {
  const contexts = [];
  afterEach(async () => {
    const errors = contexts.flatMap((c) => c.consoleErrors);
    for (const c of contexts.splice(0)) await c.close();
    assert.deepEqual(errors, [], "the browser reported errors (a CSP violation, a failed load, a script error)");
  });
  return contexts;
}

function watchConsole(context, page) {
  page.on("console", (msg) => {
    if (msg.type() !== "error") return;
    const own = msg.text().startsWith("Failed to load resource") && msg.location().url === page.url();
    if (!own) context.consoleErrors.push(`${page.url()}: ${msg.text()}`);
  });
  page.on("pageerror", (e) => context.consoleErrors.push(`${page.url()}: ${e.message}`));
}
