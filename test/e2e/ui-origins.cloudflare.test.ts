import { createServer } from "node:net";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchChromium } from "../helpers/chromium.ts";
import { runCli } from "../helpers/cli.ts";
import { type E2EEnv, fetchLink, makeEnv, waitFor } from "./env.ts";
import { PREVIEW_APP } from "./fixtures/preview-app.ts";
import { providerUnderTest } from "./providers.ts";

/**
 * Two sandbox UIs side by side in one Chromium, through `alpine cloud dev`:
 * each sandbox's UI has its own origin (`<name>.localhost:<port>`, which
 * Chromium resolves to the loopback), so signing into one does not sign the
 * other out, and each tab keeps talking to its own sandbox. The first sandbox's repo declares a
 * devcontainer start command serving an app on a port (fixtures/preview-app.ts): its preview is at
 * `side-a--p<port>.localhost:<port>`, opened through a one-time link in the same browser.
 */
const p = providerUnderTest("cloudflare");
const NAMES = ["side-a", "side-b"] as const;
const UI_READY_SELECTOR = '[data-component="prompt-input"]';
let e: E2EEnv;
let browser: Browser | null = null;
/** The port the first sandbox's start command serves its app on. */
let appPort = 0;
let appRepoUrl = "";

/** A TCP port free on the loopback now (the start command binds it on sandboxd's loopback). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

const alpine = (...args: string[]) => runCli(args, { env: e.env, cwd: e.cwd, timeoutMs: 90_000 });

beforeAll(async () => {
  e = await makeEnv({ yaml: p.yaml });
  Object.assign(e.env, p.env);
  appPort = await freePort();
  appRepoUrl = await e.git.createRepo("previewapp", {
    "README.md": "# preview app\n",
    "app.js": PREVIEW_APP,
    ".devcontainer/devcontainer.json": JSON.stringify({
      postStartCommand: "node app.js",
      forwardPorts: [appPort],
      containerEnv: { PREVIEW_PORT: String(appPort) },
    }),
  });
  await p.start?.(e);
  for (const name of NAMES) {
    const repo = name === NAMES[0] ? appRepoUrl : e.repoUrl;
    const r = await alpine("launch", name, "--repo", repo, "--json");
    expect(r.code, r.stdout + r.stderr).toBe(0);
  }
}, 300_000);

afterAll(async () => {
  await browser?.close();
  if (!e) return;
  for (const name of NAMES) await alpine("teardown", name, "--force", "--json").catch(() => {});
  await p.stop?.();
  await e.close();
}, 120_000);

/** What a page's own origin says about its sandbox: OpenCode's health, asked by the app's origin. */
const healthFrom = (page: Page) =>
  page.evaluate(async () => {
    const res = await fetch("/global/health");
    return { status: res.status, origin: location.origin };
  });

describe("sandbox web UIs, each at its own origin", () => {
  it("alpine open prints the sandbox's own origin; two UIs work side by side in one browser", async () => {
    const links: string[] = [];
    for (const name of NAMES) {
      const r = await alpine("open", name, "--print", "--json");
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const link = r.json().web_url as string;
      expect(link).toMatch(new RegExp(`^http://${name}\\.localhost:\\d+/auth/\\S+$`));
      links.push(link);
    }
    browser = await launchChromium();
    const context = await browser.newContext();
    const pages: Page[] = [];
    // Sign into A, then into B in the same browser: B's login must not take A's tab over.
    for (const link of links) {
      const page = await context.newPage();
      const resp = await page.goto(link, { timeout: 30_000 });
      expect(resp?.status()).toBeLessThan(400);
      await page.waitForSelector(UI_READY_SELECTOR, { timeout: 60_000 });
      pages.push(page);
    }
    const [a, b] = [await healthFrom(pages[0]!), await healthFrom(pages[1]!)];
    expect(a).toEqual({ status: 200, origin: new URL(links[0]!).origin });
    expect(b).toEqual({ status: 200, origin: new URL(links[1]!).origin });
    // A reload of the first tab still shows its own sandbox's app.
    await pages[0]!.reload();
    await pages[0]!.waitForSelector(UI_READY_SELECTOR, { timeout: 60_000 });
    // alpine's cookies: one session per sandbox origin, host-only and HttpOnly; no routing cookie.
    const ours = (await context.cookies()).filter((c) => c.name.startsWith("alpine"));
    expect(ours.map((c) => c.domain).sort()).toEqual(NAMES.map((n) => `${n}.localhost`));
    expect(ours.every((c) => c.name.startsWith("alpine_session_") && c.httpOnly)).toBe(true);
  });
});

describe("a preview of a port through the control plane", () => {
  it("status lists the start command's port; its one-time link opens the app at `/` of its own origin in Chromium, with its event stream and WebSocket; the used link is refused", async () => {
    const [name] = NAMES;
    const ports = await waitFor(
      `port ${appPort} listening`,
      async () => {
        const s = (await alpine("status", name, "--json")).json();
        const entry = (s.runtime?.ports ?? []).find((x: { port: number }) => x.port === appPort);
        return entry?.listening ? s.runtime.ports : null;
      },
      { timeoutMs: 30_000, intervalMs: 500 },
    );
    expect(ports).toContainEqual({ port: appPort, declared: true, listening: true });
    const r = await alpine("open", name, "--port", String(appPort), "--print", "--json");
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const link = r.json().web_url as string;
    expect(link).toMatch(new RegExp(`^http://${name}--p${appPort}\\.localhost:\\d+/__alpine/auth/\\S+$`));
    const origin = new URL(link).origin;
    browser ??= await launchChromium();
    const context = await browser.newContext();
    const page = await context.newPage();
    const resp = await page.goto(link, { timeout: 30_000 });
    expect(resp?.status()).toBe(200);
    expect(page.url()).toBe(`${origin}/`);
    expect(await page.textContent("#app")).toBe(`served by start on ${appPort}`);
    // From the app's own origin: its event stream and a WebSocket echo, through Worker → object → sandboxd.
    const live = await page.evaluate(async () => {
      const events = await new Promise<string[]>((resolve, reject) => {
        const got: string[] = [];
        const es = new EventSource("/events");
        es.onmessage = (m) => {
          got.push(m.data);
          if (got.length === 2) {
            es.close();
            resolve(got);
          }
        };
        es.onerror = () => reject(new Error("event stream failed"));
      });
      const echo = await new Promise<string>((resolve, reject) => {
        const ws = new WebSocket(`${location.origin.replace(/^http/, "ws")}/ws`);
        ws.onopen = () => ws.send("hello-preview");
        ws.onmessage = (m) => {
          resolve(String(m.data));
          ws.close();
        };
        ws.onerror = () => reject(new Error("websocket failed"));
      });
      return { events, echo };
    });
    expect(live).toEqual({ events: ["tick-0", "tick-1"], echo: "echo:hello-preview" });
    // Cookies: the preview's session (HttpOnly, host-only on that hostname) and the app's own;
    // neither the app's `alpine_…` cookie nor its Domain cookie.
    const cookies = await context.cookies();
    expect(cookies.filter((c) => c.name.startsWith("alpine_"))).toHaveLength(1);
    expect(cookies.filter((c) => !c.name.startsWith("alpine_preview_")).map((c) => c.name)).toEqual([
      "app_pref",
    ]);
    const session = cookies.find((c) => c.name.startsWith("alpine_preview_"))!;
    expect(session).toMatchObject({
      domain: `${name}--p${appPort}.localhost`,
      httpOnly: true,
      sameSite: "Strict",
    });
    // The used link is refused; the UI of that sandbox does not take the preview's cookie.
    const again = await fetchLink(link, { redirect: "manual" });
    expect(again.status).toBe(401);
    expect(await again.text()).toContain(`alpine open ${name} --port ${appPort}`);
    const ui = await fetchLink(`http://${name}.${new URL(link).host.split(".").slice(1).join(".")}/`, {
      headers: { cookie: `${session.name}=${session.value}` },
    });
    expect(ui.status).toBe(401);
    await context.close();
  });
});
