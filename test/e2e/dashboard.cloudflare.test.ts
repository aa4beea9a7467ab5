import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchChromium } from "../helpers/chromium.ts";
import { runCli } from "../helpers/cli.ts";
import { useControlPlane } from "./control-plane.ts";
import { waitFor } from "./env.ts";
import { CONTROL_PLANE_TOKEN } from "./providers.ts";

/**
 * The Worker's dashboard (docs/dashboard.md) in Chromium against `alpine cloud dev`, on one
 * launched sandbox (real sandboxd + OpenCode behind the dev container host, the stub model): its
 * page shows the agent's diff, a task given from the page reaches the agent, and a teardown that
 * would lose the busy agent's work is refused in the page, which asks. The workerd tests
 * (packages/worker/test/dashboard.test.ts) cover the same actions on a registered sandbox only.
 */
const NAME = "dash-cf";
const cp = useControlPlane({ names: [NAME] });
const alpine = (...args: string[]) => runCli(args, { env: cp.e.env, cwd: cp.e.cwd, timeoutMs: 150_000 });
let browser: Browser;
let page: Page;

beforeAll(async () => {
  const r = await alpine(
    "launch",
    NAME,
    "--repo",
    cp.e.repoUrl,
    "--task",
    "WRITE notes.md hello from the agent",
    "--json",
  );
  expect(r.code, r.stdout + r.stderr).toBe(0);
  const w = await alpine("wait", NAME, "--json");
  expect(w.code, w.stdout + w.stderr).toBe(0);
  browser = await launchChromium();
  page = await (await browser.newContext({ viewport: { width: 1000, height: 700 } })).newPage();
}, 240_000);

afterAll(async () => {
  await browser?.close();
});

describe("the Worker's dashboard on a launched sandbox (cloud dev, Chromium)", () => {
  it("signs in with a one-time link and the sandbox's page shows its diff", async () => {
    const url = cp.e.env.ALPINE_SANDBOX_CONTROL_PLANE_URL ?? "";
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const minted = await fetch(`${url}/dashboard/login-link`, {
      method: "POST",
      headers: { authorization: `Bearer ${CONTROL_PLANE_TOKEN}` },
    });
    expect(minted.status).toBe(200);
    const { login_url } = (await minted.json()) as { login_url: string };
    await page.goto(login_url);
    const row = page.locator(`tr[data-sandbox="${NAME}"]`);
    await expect.poll(() => row.count(), { timeout: 30_000 }).toBe(1);
    await page.getByRole("link", { name: NAME }).first().click();
    await page.waitForURL(new RegExp(`/sandboxes/${NAME}$`));
    const file = page.locator("#live-diff details.file", { hasText: "notes.md" });
    await expect.poll(() => file.count(), { timeout: 30_000 }).toBe(1);
    expect(await file.locator("pre").innerText()).toContain("+hello from the agent");
  }, 90_000);

  it("a task given from the page reaches the agent, and a teardown that would lose its work is refused in the page", async () => {
    const prompt = "SLEEP 60000 WRITE slow.md from the page";
    await page.locator("#prompt").fill(prompt);
    await page.locator('form[data-action="task"] button').click();
    // The agent got it: busy on the page's prompt, as the CLI sees it.
    await waitFor(
      "the agent busy on the page's task",
      async () => {
        const s = (await alpine("status", NAME, "--json")).json();
        return s.runtime?.agent === "busy" && JSON.stringify(s).includes(prompt);
      },
      { timeoutMs: 60_000, intervalMs: 1000 },
    );
    await waitFor("the page to show the busy agent", async () =>
      (await page.locator("#live-summary").innerText()).includes("busy"),
    );
    await page.locator('form[data-action="teardown"] button').click();
    const dialog = page.getByRole("dialog");
    await expect.poll(() => dialog.isVisible(), { timeout: 30_000 }).toBe(true);
    expect(await dialog.innerText()).toMatch(/busy; pass --force/);
    await dialog.getByRole("button", { name: "Cancel" }).click();
    await expect.poll(() => page.locator("#result").innerText()).toContain("nothing was removed");
    const s = (await alpine("status", NAME, "--json")).json();
    expect(s.state).toBe("running");
    expect(s.runtime?.agent).toBe("busy");
  }, 120_000);
});
