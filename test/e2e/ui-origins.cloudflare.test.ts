import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchChromium } from "../helpers/chromium.ts";
import { runCli } from "../helpers/cli.ts";
import { type E2EEnv, makeEnv } from "./env.ts";
import { providerUnderTest } from "./providers.ts";

/**
 * Two sandbox UIs side by side in one Chromium, through `alpine cloud dev`:
 * each sandbox's UI has its own origin (`<name>.localhost:<port>`, which
 * Chromium resolves to the loopback), so signing into one does not sign the
 * other out, and each tab keeps talking to its own sandbox.
 */
const p = providerUnderTest("cloudflare");
const NAMES = ["side-a", "side-b"] as const;
const UI_READY_SELECTOR = '[data-component="prompt-input"]';
let e: E2EEnv;
let browser: Browser | null = null;

const alpine = (...args: string[]) => runCli(args, { env: e.env, cwd: e.cwd, timeoutMs: 90_000 });

beforeAll(async () => {
  e = await makeEnv({ yaml: p.yaml });
  Object.assign(e.env, p.env);
  await p.start?.(e);
  for (const name of NAMES) {
    const r = await alpine("launch", name, "--repo", e.repoUrl, "--json");
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
