import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { signGithubPayload } from "@alpine/core/github-front";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.ts";
import { type E2EEnv, makeEnv, waitFor } from "./env.ts";
import { type GithubApp, type GithubStub, makeGithubApp, startGithubStub } from "./fixtures/github-api.ts";
import { stubOpencodeConfig } from "./fixtures/stub-model.ts";
import { providerUnderTest } from "./providers.ts";

/**
 * GitHub as a front door of the control plane, end to end against `alpine cloud dev`: signed
 * `issue_comment` webhooks to POST /github/webhook, the GitHub API stub for reactions, comments
 * and pull requests, the git server for the pushes. Two sandboxes (issue 7's and pull request
 * 50's) serve every step. The control plane acts as a GitHub App: the stub verifies its JWT and
 * issues the installation tokens every API call and git push must carry.
 */
const SECRET = "whsec-E2EGHFRONT0123456789abcdef";
/** A static token as the front door once used: the stub refuses it where the App is configured. */
const GH_TOKEN = "ghs_E2EGHFRONTTOKEN0123456789abcdef";
/** The App's installation on acme/app, as GitHub's webhook payloads name it. */
const INSTALLATION = 8801;
const NAME = "gh-acme-app-7";
/** The sandbox of pull request 50, whose head branch `feature-x` is in acme/app itself. */
const PR_NAME = "gh-acme-app-50";
const p = providerUnderTest("cloudflare");
let e: E2EEnv;
let gh: GithubStub;
let app: GithubApp;
let controlPlane = "";
let commentId = 500;

const alpine = (args: string[]) => runCli(args, { env: e.env, cwd: e.cwd });

/** An `issue_comment` (created) event on acme/app's issue (or pull request) `number`. */
const commentEvent = (login: string, body: string, number = 7, pull = false) => ({
  action: "created",
  comment: { id: ++commentId, body, user: { login, type: "User" } },
  issue: {
    number,
    title: "Add a feature",
    ...(pull ? { pull_request: { url: "https://github.example" } } : {}),
  },
  repository: { full_name: "acme/app", clone_url: e.repoUrl },
  installation: { id: INSTALLATION },
  sender: { login },
});

async function deliver(
  payload: unknown,
  opts: {
    delivery?: string;
    secret?: string;
    signature?: string | null;
    tamper?: boolean;
    event?: string;
  } = {},
) {
  const body = JSON.stringify(payload);
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "x-github-event": opts.event ?? "issue_comment",
    "x-github-delivery": opts.delivery ?? randomUUID(),
  };
  const signature =
    opts.signature === undefined ? await signGithubPayload(opts.secret ?? SECRET, body) : opts.signature;
  if (signature !== null) headers["x-hub-signature-256"] = signature;
  const res = await fetch(`${controlPlane}/github/webhook`, {
    method: "POST",
    headers,
    body: opts.tamper ? body.replace("WRITE", "SHELL") : body,
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

const commentsOn = (number: number) => gh.comments.filter((c) => c.number === number).map((c) => c.body);
// Sandboxes started from GitHub are their commenters' (owner github:<login>): the shared token is an
// admin, who sees other people's sandboxes with --all.
const sandboxes = async () =>
  ((await alpine(["list", "--all", "--json"])).json() as { name: string; owner?: string | null }[]) ?? [];

beforeAll(async () => {
  // carol is admitted as a member of an allowed org (GitHub's API is asked), mallory is not.
  app = makeGithubApp();
  gh = await startGithubStub({
    token: GH_TOKEN,
    app,
    orgs: { carol: ["acme-team"], mallory: ["elsewhere"] },
  });
  e = await makeEnv({
    // The git server takes the App's installation tokens (and a password the control plane never sees).
    gitUser: "x-access-token",
    gitPassword: `unused-${randomUUID()}`,
    gitAlsoAccepts: (user, password) => user === "x-access-token" && gh.validToken(password),
    repoName: "acme/app",
    yaml: [...p.yaml],
  });
  // The App's installation tokens are the only credential: nothing comes from a user's machine.
  // The key as GitHub issues it (PKCS#1): the Worker wraps it for WebCrypto.
  rmSync(join(e.home, ".git-credentials"));
  Object.assign(e.env, p.env, {
    GITHUB_WEBHOOK_SECRET: SECRET,
    GITHUB_APP_ID: app.id,
    GITHUB_APP_PRIVATE_KEY: app.privateKeyPkcs1,
  });
  const stub = stubOpencodeConfig(e.model.baseURL);
  await p.start?.(e, {
    vars: {
      // The alarm's probe is what notices a finished agent: every 2 s here.
      ALARM_INTERVAL_SECONDS: "2",
      GITHUB_API_URL: gh.apiUrl,
      ALPINE_ALLOWED_USERS: "alice",
      ALPINE_ADMINS: "root,ops",
      ALPINE_ALLOWED_ORGS: "acme-team",
      ALPINE_GITHUB_RATE_LIMIT: "2",
      ALPINE_GITHUB_CONFIG: JSON.stringify({
        // The question tool allowed (alpine's headless default denies it): a needs-input report.
        opencode: {
          model: stub.model,
          auth_providers: ["stub"],
          config: { ...stub.config, permission: { question: "allow" } },
        },
      }),
    },
  });
  controlPlane = e.env.ALPINE_SANDBOX_CONTROL_PLANE_URL ?? "";
});

// A failed step shows what the control plane was doing meanwhile.
afterEach((ctx) => {
  if (ctx.task.result?.state === "fail")
    console.error(p.diagnostics?.(), JSON.stringify(gh.comments, null, 1));
});

afterAll(async () => {
  for (const n of [NAME, PR_NAME]) await alpine(["teardown", n, "--force", "--json"]).catch(() => {});
  await p.stop?.();
  await gh.close();
  await e.close();
});

describe("GitHub's front door on the control plane", () => {
  it("a webhook without the right signature is refused with 401 and does nothing", async () => {
    const event = commentEvent("alice", "/alpine WRITE EVIL.md x");
    for (const opts of [
      { secret: "another-secret" },
      { signature: null },
      { tamper: true },
      { signature: "sha256=00" },
    ]) {
      const r = await deliver(event, opts);
      expect(r.status, JSON.stringify(opts)).toBe(401);
      expect(r.json).toMatchObject({ reason_code: "unauthorized" });
    }
    expect(gh.requests).toEqual([]);
    expect(await sandboxes()).toEqual([]);
  });

  it("only a created issue comment starting /alpine acts; other signed events are accepted and ignored", async () => {
    expect(await deliver({ zen: "hi" }, { event: "ping" })).toMatchObject({
      status: 200,
      json: { pong: true },
    });
    const event = commentEvent("alice", "/alpine WRITE EVIL.md x");
    expect(await deliver(event, { event: "issues" })).toMatchObject({ status: 202, json: { ignored: true } });
    expect(await deliver({ ...event, action: "edited" })).toMatchObject({
      status: 202,
      json: { ignored: true },
    });
    const chat = commentEvent("alice", "looks good; /alpine could do this");
    expect(await deliver(chat)).toMatchObject({ status: 202, json: { ignored: true } });
    expect(gh.requests).toEqual([]);
    expect(await sandboxes()).toEqual([]);
  });

  it("a user the allow-list does not admit gets no sandbox (and no answer)", async () => {
    const r = await deliver(commentEvent("mallory", "/alpine WRITE EVIL.md x"));
    expect(r).toMatchObject({ status: 202, json: { not_allowed: true } });
    // The App's JWT is exchanged for the installation's token, which asks for mallory's orgs.
    expect(gh.requests.map((q) => q.path)).toEqual([
      `/app/installations/${INSTALLATION}/access_tokens`,
      "/users/mallory/orgs",
    ]);
    expect(gh.requests.every((q) => q.authorized)).toBe(true);
    expect(gh.issued).toEqual([expect.objectContaining({ installation_id: INSTALLATION })]);
    expect(await sandboxes()).toEqual([]);
    expect(gh.comments).toEqual([]);
    expect(gh.reactions).toEqual([]);
  });

  it("an admitted /alpine comment launches the issue's sandbox, acknowledged; a redelivery launches nothing more", async () => {
    const event = commentEvent("alice", "/alpine WRITE FEATURE.md a feature");
    const delivery = randomUUID();
    const r = await deliver(event, { delivery });
    expect(r).toMatchObject({ status: 202, json: { launched: true, sandbox: NAME } });
    expect(gh.reactions).toEqual([
      { owner: "acme", repo: "app", comment_id: event.comment.id, content: "eyes" },
    ]);
    expect(commentsOn(7)).toHaveLength(1);
    expect(commentsOn(7)[0]).toContain(`Dashboard: ${controlPlane}/`);
    expect(commentsOn(7)[0]).toContain(NAME);
    // GitHub redelivers (a timeout on its side, a manual "Redeliver"): the same X-GitHub-Delivery.
    const again = await deliver(event, { delivery });
    expect(again).toMatchObject({ status: 200, json: { duplicate: true } });
    expect(gh.reactions).toHaveLength(1);
    expect(commentsOn(7)).toHaveLength(1);
    expect((await sandboxes()).map((s) => s.name)).toEqual([NAME]);
    // The commenter owns it: the shared token (an admin) sees it only with --all.
    expect((await sandboxes()).find((s) => s.name === NAME)?.owner).toBe("github:alice");
    expect((await alpine(["list", "--json"])).json()).toEqual([]);
  });

  it("when the agent is done the work is pushed, a pull request opened and linked back with cost and files", async () => {
    const done = await waitFor(
      "the done comment",
      async () => commentsOn(7).find((c) => c.includes("is done")),
      {
        timeoutMs: 90_000,
      },
    );
    expect(gh.pulls).toHaveLength(1);
    // Opened with an installation token of the webhook's installation (the static token would be refused).
    const prToken = gh.pulls[0]!.authorization?.replace(/^Bearer /, "") ?? "";
    expect(gh.issued.find((t) => t.token === prToken)?.installation_id).toBe(INSTALLATION);
    expect(gh.pulls[0]).toMatchObject({
      owner: "acme",
      repo: "app",
      body: { head: `alpine/${NAME}`, base: "main", title: "WRITE FEATURE.md a feature" },
    });
    expect(done).toContain("Opened https://github.example/acme/app/pull/1");
    expect(done).toMatch(/Cost: \d+ tokens/);
    expect(done).toContain("- `FEATURE.md`");
    expect(await e.git.readFile("acme/app", `alpine/${NAME}`, "FEATURE.md")).toBe("a feature");
    // The alarm keeps probing the finished agent: the report stays one comment.
    await new Promise((r) => setTimeout(r, 5_000));
    expect(commentsOn(7).filter((c) => c.includes("is done"))).toHaveLength(1);
  });

  it("a reply /alpine continues the same sandbox and updates its pull request", async () => {
    const r = await deliver(commentEvent("alice", "/alpine WRITE MORE.md more"));
    expect(r).toMatchObject({ status: 202, json: { launched: true, sandbox: NAME } });
    const updated = await waitFor(
      "the second done comment",
      async () => commentsOn(7).find((c) => c.includes("is done") && c.includes("Updated")),
      { timeoutMs: 90_000 },
    );
    expect(updated).toContain("Updated https://github.example/acme/app/pull/1");
    expect(updated).toContain("- `MORE.md`");
    expect(gh.pulls).toHaveLength(1);
    expect(await e.git.listFiles("acme/app", `alpine/${NAME}`)).toEqual(
      expect.arrayContaining(["FEATURE.md", "MORE.md"]),
    );
    expect((await sandboxes()).map((s) => s.name)).toEqual([NAME]);
  });

  it("a user past the rate limit is refused with a comment and nothing runs", async () => {
    const before = commentsOn(7).length;
    const r = await deliver(commentEvent("alice", "/alpine WRITE THIRD.md x"));
    expect(r).toMatchObject({ status: 202, json: { rate_limited: true } });
    expect(commentsOn(7)).toHaveLength(before + 1);
    expect(commentsOn(7).at(-1)).toMatch(/2 commands this hour/);
    const status = (await alpine(["status", NAME, "--json"])).json();
    expect(status.task.prompt_summary).toContain("MORE.md");
    for (const c of gh.comments) for (const t of gh.issued) expect(c.body).not.toContain(t.token);
  });

  it("another admitted user's /alpine on someone else's sandbox is refused in one comment, never acknowledged", async () => {
    // carol passes the allow-list (her org) but alice owns the issue's sandbox and carol is no admin.
    const before = commentsOn(7).length;
    const r = await deliver(commentEvent("carol", "/alpine WRITE CAROL.md not hers"));
    expect(r).toMatchObject({ status: 202, json: { refused: true, forbidden: true } });
    expect(commentsOn(7).slice(before)).toEqual([
      `alpine: @carol, sandbox \`${NAME}\` belongs to someone else; only its owner or an admin may give it tasks.`,
    ]);
    const status = (await alpine(["status", NAME, "--json"])).json();
    expect(status.task.prompt_summary).not.toContain("CAROL.md");
  });

  it("on a pull request the sandbox works on its head branch and pushes there; a fork's is refused (to a member of an allowed org)", async () => {
    execFileSync("git", ["--git-dir", e.git.repoPath("acme/app"), "branch", "feature-x", "main"]);
    gh.openPull({ owner: "acme", repo: "app", number: 50, head: "feature-x" });
    gh.openPull({ owner: "acme", repo: "app", number: 51, head: "main", fork: "eve/app" });
    // carol passes the allow-list through her org; the fork is what is refused. GitHub failing at
    // first (the org lookup answers 502) leaves the delivery to be redelivered.
    const forkEvent = commentEvent("carol", "/alpine WRITE FORK.md x", 51, true);
    const forkDelivery = randomUUID();
    gh.failNext(1);
    expect((await deliver(forkEvent, { delivery: forkDelivery })).status).toBeGreaterThanOrEqual(500);
    expect(commentsOn(51)).toEqual([]);
    const fork = await deliver(forkEvent, { delivery: forkDelivery });
    expect(fork).toMatchObject({ status: 202, json: { refused: true, fork: true } });
    expect(commentsOn(51)).toEqual([expect.stringContaining("in a fork")]);

    const r = await deliver(commentEvent("root", "/alpine WRITE PR.md on the branch", 50, true));
    expect(r).toMatchObject({ status: 202, json: { launched: true, sandbox: PR_NAME } });
    const done = await waitFor(
      "the pull request's done comment",
      async () => commentsOn(50).find((c) => c.includes("is done")),
      { timeoutMs: 90_000 },
    );
    expect(done).toContain("Updated https://github.example/acme/app/pull/50");
    expect(done).toContain("- `PR.md`");
    expect((await alpine(["status", PR_NAME, "--json"])).json()).toMatchObject({
      identity: { ref: "feature-x" },
    });
    expect(await e.git.readFile("acme/app", "feature-x", "PR.md")).toBe("on the branch");
    // No new pull request: the work went to the one the comment was on.
    expect(gh.pulls).toHaveLength(1);
    expect((await sandboxes()).map((s) => s.name).sort()).toEqual([PR_NAME, NAME].sort());
  });

  it("a task whose agent fails gets an error comment, one whose agent asks gets a needs-input comment", async () => {
    // Both sandboxes are reused, both tasks run at once. ops, an admin, may task alice's sandbox;
    // root gives the second command of the hour on the pull request's.
    const failed = await deliver(commentEvent("ops", "/alpine FAIL 400 break please", 7));
    expect(failed).toMatchObject({ status: 202, json: { launched: true, sandbox: NAME } });
    const asked = await deliver(
      commentEvent("root", "/alpine QUESTION Which database should I use?", 50, true),
    );
    expect(asked).toMatchObject({ status: 202, json: { launched: true, sandbox: PR_NAME } });
    const error = await waitFor(
      "the error comment",
      async () => commentsOn(7).find((c) => c.includes("failed")),
      { timeoutMs: 60_000 },
    );
    expect(error).toContain(`alpine: the agent in sandbox \`${NAME}\` failed: `);
    expect(error).toMatch(/400/);
    expect(error).toContain("stub model failure");
    const input = await waitFor(
      "the needs-input comment",
      async () => commentsOn(50).find((c) => c.includes("needs input")),
      { timeoutMs: 60_000 },
    );
    expect(input).toContain(
      `alpine: the agent in sandbox \`${PR_NAME}\` needs input: asks: Which database should I use? [yes | no]`,
    );
    expect(input).toContain("Answer with `/alpine <your answer>`");
    // The alarm goes on probing: each is said once, and neither exported anything.
    await new Promise((r) => setTimeout(r, 5_000));
    expect(commentsOn(7).filter((c) => c.includes("failed"))).toHaveLength(1);
    expect(commentsOn(50).filter((c) => c.includes("needs input"))).toHaveLength(1);
    expect(gh.pulls).toHaveLength(1);
    // All of it with installation tokens: every API request authorized, a handful of exchanges at most
    // (one per isolate that acts and per token lifetime), the static token never accepted.
    expect(gh.requests.filter((q) => !q.authorized)).toEqual([]);
    expect(gh.issued.length).toBeGreaterThanOrEqual(1);
    expect(gh.issued.length).toBeLessThan(gh.requests.length / 4);
    expect(gh.validToken(GH_TOKEN)).toBe(false);
  });
});
