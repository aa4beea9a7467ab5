import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchChromium } from "../helpers/chromium.ts";
import { CLI, ROOT, runCli } from "../helpers/cli.ts";
import { type E2EEnv, makeEnv, waitFor } from "./env.ts";

/**
 * `alpine dashboard` in Chromium (docs/dashboard.md), on one local sandbox: the list shows it,
 * its page shows the diff, the export button pushes a branch to the git server, a task from the
 * CLI shows up without a reload, and a teardown the CLI would refuse without --force is refused
 * and the page asks. With ALPINE_SCREENSHOTS=1 it writes docs/dashboard-*.png.
 */
let e: E2EEnv;
let dashboard: ChildProcess;
let info: { url: string; login_url: string };
let browser: Browser;
let page: Page;
const alpine = (...args: string[]) => runCli(args, { env: e.env, cwd: e.cwd, timeoutMs: 150_000 });
const SHOTS = process.env.ALPINE_SCREENSHOTS === "1";
const shot = async (name: string) => {
  if (SHOTS) await page.screenshot({ path: join(ROOT, "docs", `dashboard-${name}.png`), fullPage: true });
};

beforeAll(async () => {
  e = await makeEnv();
  const r = await alpine(
    "launch",
    "dash",
    "--repo",
    e.repoUrl,
    "--task",
    "WRITE notes.md hello from the agent",
    "--json",
  );
  expect(r.code, r.stdout + r.stderr).toBe(0);
  const w = await alpine("wait", "dash", "--json");
  expect(w.code, w.stdout + w.stderr).toBe(0);

  dashboard = spawn(process.execPath, [CLI, "dashboard", "--json"], {
    cwd: e.cwd,
    env: { PATH: process.env.PATH, NO_COLOR: "1", ...e.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  dashboard.stdout!.on("data", (d) => (out += d));
  dashboard.stderr!.on("data", (d) => process.stderr.write(d));
  info = await waitFor("the dashboard's JSON", async () => {
    try {
      return JSON.parse(out);
    } catch {
      // Not all of it printed yet.
      return null;
    }
  });
  expect(info.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
  browser = await launchChromium();
  page = await (await browser.newContext({ viewport: { width: 1000, height: 700 } })).newPage();
}, 180_000);

afterAll(async () => {
  await browser?.close();
  dashboard?.kill("SIGINT");
  await alpine("teardown", "dash", "--force", "--json").catch(() => {});
  await e?.close();
});

describe("alpine dashboard", () => {
  it("refuses pages without the login, signs in once with the link, and lists the sandbox", async () => {
    const anonymous = await fetch(info.url);
    expect(anonymous.status).toBe(401);
    await page.goto(info.login_url);
    expect(new URL(page.url()).pathname).toBe("/");
    const row = page.locator('tr[data-sandbox="dash"]');
    await expect.poll(() => row.count()).toBe(1);
    const text = await row.innerText();
    expect(text).toContain(e.repoUrl);
    expect(text).toContain("alpine/dash");
    expect(text).toMatch(/running|completed/);
    expect(await row.locator("td.changed").innerText()).toBe("1");
    // The link was used: another browser presenting it again is refused.
    const again = await fetch(info.login_url, { redirect: "manual" });
    expect(again.status).toBe(401);
    await shot("list");
    if (SHOTS) {
      // The same list on a phone: the table reflows to one block per sandbox.
      const phone = await browser.newContext({
        viewport: { width: 390, height: 700 },
        storageState: await page.context().storageState(),
      });
      const p = await phone.newPage();
      await p.goto(info.url);
      await p.screenshot({ path: join(ROOT, "docs", "dashboard-phone.png") });
      await phone.close();
    }
  }, 60_000);

  it("the sandbox page shows the diff per file", async () => {
    await page.getByRole("link", { name: "dash" }).first().click();
    await page.waitForURL(/\/sandboxes\/dash$/);
    const file = page.locator("#live-diff details.file", { hasText: "notes.md" });
    await expect.poll(() => file.count()).toBe(1);
    expect(await file.locator("pre").innerText()).toContain("+hello from the agent");
  }, 60_000);

  it("a task from the CLI shows up live, without a reload", async () => {
    await page.evaluate(() => {
      (window as unknown as { __same_page: boolean }).__same_page = true;
    });
    const t = await alpine("task", "dash", "--json", "WRITE live.md live from the cli");
    expect(t.code, t.stdout + t.stderr).toBe(0);
    await waitFor(
      "the CLI's task in the open page",
      async () => (await page.locator("#live-task").innerText()).includes("WRITE live.md live from the cli"),
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    await waitFor("live.md in the page's diff", async () =>
      (await page.locator("#live-diff").innerText()).includes("live.md"),
    );
    expect(await page.evaluate(() => (window as unknown as { __same_page?: boolean }).__same_page)).toBe(
      true,
    );
    await shot("sandbox");
  }, 90_000);

  it("the export button pushes the branch to the git server", async () => {
    expect(await e.git.readRef("app", "refs/heads/alpine/dash")).toBeNull();
    await page.locator('form[data-action="export"] button').click();
    await expect
      .poll(() => page.locator("#result").innerText(), { timeout: 60_000 })
      .toMatch(/Exported \d+ file\(s\) to branch alpine\/dash/);
    expect(await e.git.readRef("app", "refs/heads/alpine/dash")).toMatch(/^[0-9a-f]{40}$/);
    expect(await e.git.readFile("app", "alpine/dash", "notes.md")).toContain("hello from the agent");
  }, 90_000);

  it("a teardown the CLI would refuse without --force is refused, and the page asks", async () => {
    const t = await alpine("task", "dash", "--json", "SLEEP 60000 WRITE slow.md still working");
    expect(t.code, t.stdout + t.stderr).toBe(0);
    await waitFor(
      "the agent to be busy",
      async () => (await alpine("status", "dash", "--json")).json().runtime.agent === "busy",
      { timeoutMs: 30_000, intervalMs: 500 },
    );
    // The open page sees it too, without a reload.
    await waitFor("the page to show the busy agent", async () =>
      (await page.locator("#live-summary").innerText()).includes("busy"),
    );
    await page.locator('form[data-action="teardown"] button').click();
    const dialog = page.getByRole("dialog");
    await expect.poll(() => dialog.isVisible(), { timeout: 30_000 }).toBe(true);
    expect(await dialog.innerText()).toMatch(/busy; pass --force/);
    await shot("teardown");
    await dialog.getByRole("button", { name: "Cancel" }).click();
    await expect.poll(() => page.locator("#result").innerText()).toContain("nothing was removed");
    const s = (await alpine("status", "dash", "--json")).json();
    expect(s.state).toBe("running");
  }, 90_000);
});
