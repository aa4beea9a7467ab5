import { mkdirSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchChromium } from "../helpers/chromium.ts";
import { type CliResult, ROOT, runCli } from "../helpers/cli.ts";
import { type E2EEnv, makeEnv, waitFor } from "./env.ts";

/**
 * One conversation per sandbox (docs/opencode.md, "One conversation"): `alpine task` continues
 * the session the person last used, in the UI or the CLI; `--new-session` starts another;
 * `alpine open` lands on the conversation; and a task from the CLI shows up, live, in the
 * session page the person has open in Chromium.
 */
let e: E2EEnv;
const alpine = (...args: string[]) => runCli(args, { env: e.env, cwd: e.cwd, timeoutMs: 150_000 });

/** A command that failed with a retryable error (OpenCode slow to answer on a loaded machine) is run again. */
async function retrying(...args: string[]): Promise<CliResult> {
  for (let attempt = 1; ; attempt++) {
    const r = await alpine(...args);
    const retryable = r.code !== 0 && /"retryable": true/.test(r.stdout);
    if (!retryable || attempt === 3) return r;
  }
}

beforeAll(async () => {
  mkdirSync(join(ROOT, "test-results"), { recursive: true });
  e = await makeEnv();
  const r = await alpine("launch", "conv", "--repo", e.repoUrl, "--json");
  expect(r.code, r.stdout + r.stderr).toBe(0);
}, 180_000);

afterAll(async () => {
  await alpine("teardown", "conv", "--force", "--json").catch(() => {});
  await e.close();
});

describe("one conversation", () => {
  let first = "";
  let second = "";

  it("task continues the conversation; --new-session starts another, which becomes the conversation", async () => {
    const a = await retrying("task", "conv", "--wait", "--json", "WRITE one.md first task");
    expect(a.code, a.stdout + a.stderr).toBe(0);
    first = a.json().session_id;
    const b = await retrying("task", "conv", "--wait", "--json", "WRITE one.md first task, continued");
    expect(b.code, b.stdout + b.stderr).toBe(0);
    expect(b.json().session_id).toBe(first);
    const c = await retrying(
      "task",
      "conv",
      "--new-session",
      "--wait",
      "--json",
      "WRITE two.md second session",
    );
    expect(c.code, c.stdout + c.stderr).toBe(0);
    second = c.json().session_id;
    expect(second).not.toBe(first);
  }, 300_000);

  it("open lands on the conversation; a task from the CLI goes to the session the person opened and appears in the page", async () => {
    expect(second).not.toBe("");
    const o = await alpine("open", "conv", "--print", "--json");
    expect(o.code, o.stdout + o.stderr).toBe(0);
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      const documents: string[] = [];
      page.on("request", (q) => q.resourceType() === "document" && documents.push(q.url()));
      await page.goto(o.json().web_url, { timeout: 30_000 });
      await page.waitForSelector(PROMPT, { timeout: 90_000 });
      // The login's redirect names the workspace and the conversation's session.
      const landing = new URL(documents.find((u) => !u.includes("/auth/"))!);
      const [, dir, word, session] = landing.pathname.split("/");
      expect([word, session]).toEqual(["session", second]);
      await waitFor("the page to show the second session", async () =>
        (await page.innerText("body")).includes("WRITE two.md second session"),
      );

      // The person goes back to the first session (a page load: a link, a bookmark, a reload).
      await page.goto(`${landing.origin}/${dir}/session/${first}`, { timeout: 30_000 });
      await page.waitForSelector(PROMPT, { timeout: 90_000 });
      await waitFor("the page to show the first session", async () =>
        (await page.innerText("body")).includes("WRITE one.md first task"),
      );

      // A task from the CLI, without naming a session, goes there and shows up in the open page.
      const t = await retrying("task", "conv", "--json", "WRITE three.md from the command line");
      expect(t.code, t.stdout + t.stderr).toBe(0);
      expect(t.json().session_id).toBe(first);
      await waitFor(
        "the CLI's task to appear in the page the person has open",
        async () => (await page.innerText("body")).includes("WRITE three.md from the command line"),
        { timeoutMs: 90_000, intervalMs: 500 },
      );
      expect(page.url()).toContain(first);

      // The next `alpine open` lands on it too.
      const again = await alpine("open", "conv", "--print", "--json");
      const page2 = await browser.newPage();
      const docs2: string[] = [];
      page2.on("request", (q) => q.resourceType() === "document" && docs2.push(q.url()));
      await page2.goto(again.json().web_url, { timeout: 30_000 });
      expect(new URL(docs2.find((u) => !u.includes("/auth/"))!).pathname).toBe(`/${dir}/session/${first}`);

      // OpenCode's home page lists the workspace as a project, with its sessions, to navigate back.
      await page.goto(`${landing.origin}/`, { timeout: 30_000 });
      const workspace = Buffer.from(dir!, "base64url").toString();
      const home = await waitFor(
        "the home page to list the workspace's sessions",
        async () => {
          const text = await page.innerText("body");
          // "Projects" lists one named after the workspace dir; below "New session", one row per
          // session ("<title>", then the project's name on a line of its own): two sessions here.
          const project = basename(workspace);
          const lines = text.split("\n").map((l) => l.trim());
          const listed = lines.slice(lines.indexOf("Projects"), lines.indexOf("Settings")).includes(project);
          const rows = lines.slice(lines.indexOf("New session")).filter((l) => l === project).length;
          return listed && rows >= 2 ? text : null;
        },
        { timeoutMs: 60_000, intervalMs: 500 },
      ).catch(async (err) => {
        throw new Error(`${String(err)}\nhome page:\n${await page.innerText("body")}`);
      });
      writeFileSync(join(ROOT, "test-results", "conversation-home.txt"), home);
      await page.screenshot({ path: join(ROOT, "test-results", "conversation-home.png") });
    } finally {
      await browser.close();
    }
  }, 400_000);
});

const PROMPT = '[data-component="prompt-input"]';
