import type { ExportResult, SandboxRecord } from "@alpine/core";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type GithubOrigin, rememberOrigin, reportToGithub } from "../packages/worker/src/github-front.ts";
import {
  type GithubApp,
  type GithubStub,
  makeGithubApp,
  startGithubStub,
} from "./e2e/fixtures/github-api.ts";

/**
 * The sandbox object's reports to GitHub (packages/worker/src/github-front.ts) against the GitHub
 * API stub, with the object's key/value storage as a Map and the export as a recorded function:
 * each signal once per task, needs input and errors as comments, a pull request opened once and
 * then updated, a failing report given up after three tries with one comment.
 */
const TOKEN = "ghs_REPORTTEST0123456789abcdef";
let gh: GithubStub;
let app: GithubApp;

beforeAll(async () => {
  app = makeGithubApp();
  gh = await startGithubStub({ token: TOKEN, app });
});
afterAll(() => gh.close());

function kv() {
  const m = new Map<string, string>();
  return {
    getKv: (k: string) => m.get(k) ?? null,
    setKv: (k: string, v: string | null) => void (v === null ? m.delete(k) : m.set(k, v)),
  };
}

const record = (
  agent: SandboxRecord["agent"],
  task: { state: "running" | "completed" | "failed"; started_at?: string } | null,
  more: Partial<SandboxRecord> = {},
): SandboxRecord =>
  ({
    id: "sbx_1",
    name: "gh-acme-app-7",
    branch: "alpine/gh-acme-app-7",
    agent,
    agent_reason: null,
    error: null,
    usage: { input: 10, output: 5, reasoning: 0, cache_read: 0, cache_write: 0, cost: 0.25 },
    task: task
      ? {
          prompt_summary: "WRITE A.md a",
          session_id: "ses_1",
          started_at: task.started_at ?? "2026-01-01T00:00:00.000Z",
          finished_at: null,
          state: task.state,
        }
      : null,
    ...more,
  }) as SandboxRecord;

const origin: GithubOrigin = {
  repo: "acme/app",
  number: 7,
  head_ref: null,
  origin: "http://cp.test",
  pr_url: null,
  installation_id: 31,
};

let store: ReturnType<typeof kv>;
let exports: { branch?: string; pr: boolean }[];
let failExport: Error | null;
const deps = () => ({
  env: { GITHUB_APP_ID: app.id, GITHUB_APP_PRIVATE_KEY: app.privateKeyPkcs1, GITHUB_API_URL: gh.apiUrl },
  store,
  exportWork: async (input: { branch?: string; pr: boolean }, token: string) => {
    exports.push(input);
    // The push and the pull request go with the installation's token, never a static one.
    expect(gh.validToken(token)).toBe(true);
    expect(token).not.toBe(TOKEN);
    if (failExport) throw failExport;
    return {
      record: record(
        "idle",
        { state: "completed" },
        { changes: { files: ["A.md"], tree_hash: null, seen_at: "" } },
      ),
      pr_url: input.pr ? "https://github.example/acme/app/pull/9" : null,
    } as unknown as ExportResult;
  },
});

beforeEach(() => {
  gh.comments.length = 0;
  store = kv();
  exports = [];
  failExport = null;
  rememberOrigin(store, origin);
});

describe("reportToGithub", () => {
  it("a sandbox not started from GitHub reports nothing", async () => {
    store = kv();
    await reportToGithub(deps(), record("idle", { state: "completed" }));
    expect(gh.comments).toEqual([]);
    expect(exports).toEqual([]);
  });

  it("done: exports with a pull request once, comments once; the next task updates it", async () => {
    const done = record("idle", { state: "completed" });
    await reportToGithub(deps(), done);
    await reportToGithub(deps(), done);
    expect(exports).toEqual([{ pr: true }]);
    expect(gh.comments).toHaveLength(1);
    expect(gh.comments[0]).toMatchObject({ owner: "acme", repo: "app", number: 7 });
    expect(gh.comments[0]!.body).toContain("Opened https://github.example/acme/app/pull/9");
    expect(gh.comments[0]!.body).toContain("$0.25");
    expect(gh.comments[0]!.body).toContain("- `A.md`");
    // A busy agent (the next task running) is worth nothing.
    await reportToGithub(
      deps(),
      record("busy", { state: "running", started_at: "2026-01-01T01:00:00.000Z" }),
    );
    expect(gh.comments).toHaveLength(1);
    await reportToGithub(
      deps(),
      record("idle", { state: "completed", started_at: "2026-01-01T01:00:00.000Z" }),
    );
    expect(exports).toEqual([{ pr: true }, { pr: false }]);
    expect(gh.comments[1]!.body).toContain("Updated https://github.example/acme/app/pull/9");
  });

  it("needs input and an error are commented, once each per task, with the agent's reason", async () => {
    const asking = record("needs_input", { state: "running" }, { agent_reason: "Which database?" });
    await reportToGithub(deps(), asking);
    await reportToGithub(deps(), asking);
    const failed = record("error", { state: "failed" }, { agent_reason: "the model returned 500" });
    await reportToGithub(deps(), failed);
    await reportToGithub(deps(), failed);
    expect(gh.comments.map((c) => c.body)).toEqual([
      expect.stringMatching(/needs input: Which database\?[\s\S]*\/alpine <your answer>/),
      expect.stringContaining("failed: the model returned 500"),
    ]);
    expect(exports).toEqual([]);
  });

  it("a report that keeps failing is tried three times, then given up with one comment", async () => {
    failExport = new Error("push rejected");
    const done = record("idle", { state: "completed" });
    for (let i = 0; i < 5; i++) await reportToGithub(deps(), done);
    expect(exports).toHaveLength(3);
    expect(gh.comments.map((c) => c.body)).toEqual([
      expect.stringContaining("reporting its work failed: push rejected"),
    ]);
  });

  it("on a pull request the work goes to its head branch and no pull request is opened", async () => {
    gh.openPull({ owner: "acme", repo: "app", number: 7, head: "feature-x" });
    rememberOrigin(store, { ...origin, head_ref: "feature-x" });
    await reportToGithub(deps(), record("idle", { state: "completed" }));
    expect(exports).toEqual([{ branch: "feature-x", pr: false }]);
    expect(gh.comments[0]!.body).toContain("Updated https://github.example/acme/app/pull/7");
  });
});
