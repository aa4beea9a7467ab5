import { describe, expect, it } from "vitest";
import {
  type DashboardBackend,
  DashboardLogins,
  type DashboardOptions,
  handleDashboard,
} from "../src/dashboard/index.ts";
import {
  checkpointOperation,
  diffOperation,
  exportOperation,
  listOperation,
  loginOperation,
  logsOperation,
  type OperationContext,
  silentProgress,
  statusOperation,
  taskOperation,
  teardownOperation,
} from "../src/index.ts";
import { launched, type World, world } from "./fakes/world.ts";

/**
 * The dashboard's handler over core's own operations on an orchestrator of in-memory fakes: the
 * same operations (and gates) `alpine dashboard` reaches through the CLI's SandboxService.
 */

const ORIGIN = "http://127.0.0.1:4000";

/** What `alpine dashboard`'s backendOf does with a SandboxService, over core's operations. */
function operationsBackend(w: World): DashboardBackend {
  const ctx: OperationContext = {
    orchestrator: w.orchestrator,
    config: w.deps.config,
    progress: silentProgress,
    runtimeLogs: async () => [],
    loginUrl: (_record, code) => `http://127.0.0.1:7001/auth/${code}`,
  };
  return {
    list: () => listOperation(ctx),
    status: (name) => statusOperation(ctx, name),
    diff: (name) => diffOperation(ctx, name, { stat: false }),
    logs: (name) => logsOperation(ctx, name, { tail: 0 }),
    login: (name) => loginOperation(ctx, name),
    task: (name, prompt) => taskOperation(ctx, name, prompt, { wait: false }),
    checkpoint: (name) => checkpointOperation(ctx, name),
    export: (name, input) => exportOperation(ctx, name, input),
    teardown: (name, opts) => teardownOperation(ctx, name, opts),
  };
}

async function dashboard(w: World = world()) {
  const logins = new DashboardLogins(() => w.clock.now());
  const opts: DashboardOptions = {
    backend: operationsBackend(w),
    authenticate: async (r) =>
      (await logins.check(r.headers.get("cookie"))) ? { id: "local", admin: true } : null,
    redeem: (code) => logins.redeem(code),
    csrfKey: "k".repeat(32),
    brand: "alpine (local)",
    signInHint: "Run `alpine dashboard` for a new link.",
  };
  const { code } = await logins.newCode();
  const signedIn = (await handleDashboard(new Request(`${ORIGIN}/login/${code}`), opts))!;
  const cookie = signedIn.headers.get("set-cookie")!.split(";")[0]!;
  const request = (path: string, init: RequestInit = {}) =>
    handleDashboard(
      new Request(`${ORIGIN}${path}`, { ...init, headers: { cookie, ...(init.headers ?? {}) } }),
      opts,
    );
  const get = async (path: string, headers: Record<string, string> = {}) =>
    (await request(path, { headers }))!;
  const csrf = /data-csrf="([^"]+)"/.exec(await (await get("/")).text())![1]!;
  /** A button of the sandbox page: its form posted from our own origin with the page's token. */
  const press = async (path: string, fields: Record<string, string> = {}, asJson = true) =>
    (await request(path, {
      method: "POST",
      headers: {
        origin: ORIGIN,
        "content-type": "application/x-www-form-urlencoded",
        ...(asJson ? { accept: "application/json" } : {}),
      },
      body: new URLSearchParams({ csrf, ...fields }).toString(),
    }))!;
  return { w, opts, logins, cookie, csrf, request, get, press };
}

describe("dashboard handler over core's operations", () => {
  it("serves its own stylesheet and script without a session", async () => {
    const { opts } = await dashboard();
    const css = (await handleDashboard(new Request(`${ORIGIN}/dashboard.css`), opts))!;
    expect(css.headers.get("content-type")).toContain("text/css");
    expect((await css.text()).length).toBeGreaterThan(0);
    const js = (await handleDashboard(new Request(`${ORIGIN}/dashboard.js`), opts))!;
    expect(js.headers.get("content-type")).toContain("text/javascript");
    // The script sends the token in the header the handler checks.
    expect(await js.text()).toContain('"x-alpine-csrf": csrf');
  });

  it("without a session: pages, live updates and buttons are refused, nothing runs", async () => {
    const w = world();
    await launched(w, "box");
    const { opts, csrf } = await dashboard(w);
    const anon = (path: string, init: RequestInit = {}) =>
      handleDashboard(new Request(`${ORIGIN}${path}`, init), opts);
    const page = (await anon("/sandboxes/box"))!;
    expect(page.status).toBe(401);
    expect(await page.text()).toContain("Run `alpine dashboard` for a new link.");
    const live = (await anon("/api/sandboxes/box"))!;
    expect(live.status).toBe(401);
    expect(await live.json()).toMatchObject({ reason_code: "unauthorized" });
    // A page asking for JSON is told so in JSON too.
    const asked = (await anon("/", { headers: { accept: "application/json" } }))!;
    expect((await asked.json()).error).toContain("not signed in to the dashboard");
    const before = w.store.transitions("box").length;
    const post = (await anon("/sandboxes/box/teardown", {
      method: "POST",
      headers: { origin: ORIGIN, "content-type": "application/x-www-form-urlencoded" },
      body: `csrf=${csrf}&force=1`,
    }))!;
    expect(post.status).toBe(401);
    expect(w.record().state).toBe("running");
    expect(w.store.transitions("box").length).toBe(before);
  });

  it("a login link opens one session, once; the Secure flag follows https", async () => {
    const w = world();
    const { opts, logins } = await dashboard(w);
    const { code } = await logins.newCode();
    const first = (await handleDashboard(new Request(`https://dash.example/login/${code}`), opts))!;
    expect(first.status).toBe(303);
    expect(first.headers.get("location")).toBe("/");
    expect(first.headers.get("set-cookie")).toMatch(/; Secure$/);
    const again = (await handleDashboard(new Request(`https://dash.example/login/${code}`), opts))!;
    expect(again.status).toBe(401);
    expect(await again.text()).toContain("already used or has expired");
    // Without a way to redeem codes (a bearer-token control plane), a login path is not the dashboard's.
    const { redeem: _, ...noRedeem } = opts;
    expect(await handleDashboard(new Request(`${ORIGIN}/login/${"a".repeat(20)}`), noRedeem)).toBeNull();
  });

  it("the sandbox page shows its summary, task history, checkpoints and the diff of a running sandbox", async () => {
    const w = world();
    const record = await launched(w, "box", { task: "add the <script>alert(1)</script> banner" });
    const sandboxd = w.provider.sandboxd(record.id);
    sandboxd.edit("src/a.ts");
    sandboxd.finishTask("completed");
    const d = await dashboard(w);
    // A checkpoint through its button, so the page has one to show.
    expect((await d.press("/sandboxes/box/checkpoint")).status).toBe(200);

    const res = await d.get("/sandboxes/box");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-security-policy")).toContain("default-src 'none'");
    const page = await res.text();
    expect(page).toContain('data-poll="/api/sandboxes/box"');
    expect(page).toContain('<code>alpine/box</code> <span class="warn">uncommitted changes</span>');
    expect(page).toContain("&lt;script&gt;alert(1)");
    expect(page).not.toContain("<script>alert(1)");
    // History: the lifecycle's transitions, newest first.
    const history = /<h3>History<\/h3><ol reversed>(.*?)<\/ol>/s.exec(page)![1]!;
    const arrows = [...history.matchAll(/(\w+|—) → <strong>(\w+)<\/strong>/g)].map((m) => `${m[1]}→${m[2]}`);
    expect(arrows).toEqual(
      w.store
        .transitions("box")
        .map((t) => t.replace(/^null/, "—"))
        .reverse(),
    );
    expect(arrows).toContain("running→saving");
    // Checkpoints: the one saved, marked latest and verified.
    const checkpointId = w.record().checkpoint!.id;
    expect(page).toContain(`<code>${checkpointId}</code>`);
    expect(page).toContain("latest, verified");
    // The diff, per file, from sandboxd.
    expect(page).toContain("<code>src/a.ts</code>");
    expect(page).toContain("diff --git a/src/a.ts b/src/a.ts");
    // Every button posts to its action with the page's token.
    for (const action of ["open", "checkpoint", "export", "teardown", "task"])
      expect(page).toContain(`action="/sandboxes/box/${action}"`);
    expect(page).toContain(`name="csrf" value="${d.csrf}"`);
  });

  it("live updates: the list and a sandbox page's sections follow the sandbox as it changes", async () => {
    const w = world();
    const record = await launched(w, "box");
    const d = await dashboard(w);
    const sections = async () => (await (await d.get("/api/sandboxes/box")).json()).sections;
    const before = await sections();
    expect(Object.keys(before).sort()).toEqual([
      "live-checkpoints",
      "live-diff",
      "live-summary",
      "live-task",
    ]);
    expect(before["live-diff"]).toContain("No changes.");
    expect(before["live-task"]).toContain("No task yet.");

    w.provider.sandboxd(record.id).edit("README.md");
    const after = await sections();
    expect(after["live-diff"]).toContain("<code>README.md</code>");
    expect(after["live-summary"]).toContain("uncommitted changes");

    const list = await (await d.get("/api/list")).json();
    expect(list.sections["live-list"]).toContain('data-sandbox="box"');
    // A live section of something that is not a sandbox page is not the dashboard's.
    expect(await d.request("/api/sandboxes/box/diff")).toBeNull();
  });

  it("a stopped sandbox's page does not resume it to read the diff", async () => {
    const w = world();
    const record = await launched(w, "box");
    const sandboxd = w.provider.sandboxd(record.id);
    await w.orchestrator.teardown("box", { force: true });
    const d = await dashboard(w);
    const page = await (await d.get("/sandboxes/box")).text();
    expect(page).toContain("The sandbox is destroyed; its diff is read when it runs");
    expect(sandboxd.calls).not.toContain("diff");
    expect(w.provider.ops().filter((op) => op === "start")).toHaveLength(1);
  });

  it("a running sandbox whose diff cannot be read still has its page, saying why", async () => {
    const w = world();
    const record = await launched(w, "box");
    w.provider.sandboxd(record.id).fail.set("diff", new Error("git diff timed out"));
    const d = await dashboard(w);
    const res = await d.get("/sandboxes/box");
    expect(res.status).toBe(200);
    const page = await res.text();
    expect(page).toContain('<p class="bad">The diff could not be read: git diff timed out</p>');
    expect(page).toContain('<span class="state ok">running</span>');
  });

  it("each button runs its operation: open, task, checkpoint, export", async () => {
    const w = world();
    const record = await launched(w, "box");
    const sandboxd = w.provider.sandboxd(record.id);
    const d = await dashboard(w);

    const open = await d.press("/sandboxes/box/open");
    expect(await open.json()).toMatchObject({
      message: "Login link minted.",
      web_url: "http://127.0.0.1:7001/auth/c",
    });
    // Without the page's script the browser follows the link itself.
    const followed = await d.press("/sandboxes/box/open", {}, false);
    expect(followed.status).toBe(303);
    expect(followed.headers.get("location")).toBe("http://127.0.0.1:7001/auth/c");

    // The page's script sends the token in a header; Sec-Fetch-Site stands in for a missing Origin.
    const scripted = (await d.request("/sandboxes/box/open", {
      method: "POST",
      headers: { "sec-fetch-site": "same-origin", "x-alpine-csrf": d.csrf, accept: "application/json" },
    }))!;
    expect(scripted.status).toBe(200);
    const crossSite = (await d.request("/sandboxes/box/open", {
      method: "POST",
      headers: { "sec-fetch-site": "cross-site", "x-alpine-csrf": d.csrf },
    }))!;
    expect(crossSite.status).toBe(403);
    expect(await crossSite.text()).toContain("CSRF check");
    expect(sandboxd.calls.filter((c) => c === "login")).toHaveLength(3);

    const empty = await d.press("/sandboxes/box/task", { prompt: "   " });
    expect(empty.status).toBe(400);
    expect(await empty.json()).toMatchObject({ reason_code: "usage_invalid", can_force: false });
    expect(sandboxd.calls).not.toContain("task");
    const task = await (await d.press("/sandboxes/box/task", { prompt: "write the docs" })).json();
    expect(task.message).toBe(`Task sent (session ${task.session_id}); the sandbox is running.`);
    expect(sandboxd.lastTaskBody?.prompt).toBe("write the docs");

    sandboxd.edit("docs/a.md");
    sandboxd.finishTask("completed");
    const checkpoint = await (await d.press("/sandboxes/box/checkpoint")).json();
    expect(checkpoint.message).toBe(`Checkpoint ${w.record().checkpoint!.id} saved and verified.`);

    const exported = await (await d.press("/sandboxes/box/export", { branch: "  feature/docs  " })).json();
    expect(exported.message).toBe("Exported 1 file(s) to branch feature/docs.");
    expect(sandboxd.exports.at(-1)).toMatchObject({ branch: "feature/docs", push: true });
    const pr = await (await d.press("/sandboxes/box/export", { pr: "1" })).json();
    expect(pr.message).toBe("Exported 1 file(s) to pull request https://github.test/pr/1.");
    expect(w.pullRequests.opened).toHaveLength(1);

    // Without the script: the answer as a page.
    const asPage = await d.press("/sandboxes/box/checkpoint", {}, false);
    expect(asPage.status).toBe(200);
    const text = await asPage.text();
    expect(text).toMatch(/<p role="status">Checkpoint ckpt_\S+ saved and verified\.<\/p>/);
    expect(text).toContain('<a href="/sandboxes/box">Back</a>');
  });

  it("a teardown refused as `alpine teardown` refuses it; forced, it goes", async () => {
    const w = world();
    await launched(w, "box", { task: "long work" });
    const d = await dashboard(w);
    const refused = await d.press("/sandboxes/box/teardown");
    expect(refused.status).toBe(409);
    expect(await refused.json()).toMatchObject({
      reason_code: "teardown_requires_force",
      error: "the agent in 'box' is busy; pass --force to stop it anyway",
      can_force: true,
    });
    expect(w.record().state).toBe("running");
    // The same refusal as a page, for a browser without the script.
    const page = await d.press("/sandboxes/box/teardown", {}, false);
    expect(page.status).toBe(409);
    expect(await page.text()).toContain("the agent in &#39;box&#39; is busy; pass --force to stop it anyway");

    const forced = await (await d.press("/sandboxes/box/teardown", { force: "1" })).json();
    expect(forced).toMatchObject({ message: "box torn down (destroyed).", gone: true, forced: true });
    expect(w.record().state).toBe("destroyed");
    const again = await (await d.press("/sandboxes/box/teardown", { force: "1" })).json();
    expect(again.message).toBe("box was already destroyed.");
  });

  it("a sandbox that does not answer holds work that would be lost: refused, can be forced", async () => {
    const w = world();
    const record = await launched(w, "box");
    w.provider.sandboxd(record.id).edit("src/unsaved.ts");
    w.provider.crash(record.id);
    const d = await dashboard(w);
    const refused = await d.press("/sandboxes/box/teardown");
    expect(refused.status).toBe(409);
    const body = await refused.json();
    expect(body).toMatchObject({ reason_code: "teardown_blocked", can_force: true });
    expect(body.error).toContain("does not answer, so its work cannot be saved");
    expect(w.provider.ops()).not.toContain("destroy");
  });

  it("answers unknown sandboxes, bad names, unknown actions and other methods with the reason", async () => {
    const w = world();
    await launched(w, "box");
    const d = await dashboard(w);
    const missing = await d.get("/sandboxes/nope");
    expect(missing.status).toBe(404);
    expect(await missing.text()).toContain("<h1>Not found</h1>");
    const missingJson = await d.get("/api/sandboxes/nope");
    expect(await missingJson.json()).toMatchObject({ reason_code: "sandbox_not_found" });
    const badName = await d.get("/sandboxes/Bad%20Name", { accept: "application/json" });
    expect(badName.status).toBe(400);
    expect((await badName.json()).reason_code).toBe("name_invalid");
    // Malformed percent-encoding names no sandbox: not the dashboard's path.
    expect(await d.request("/sandboxes/%E0%A4%A")).toBeNull();
    const unknown = await d.press("/sandboxes/box/reboot");
    expect(unknown.status).toBe(404);
    expect((await unknown.json()).error).toBe("no such action: reboot");
    const put = (await d.request("/sandboxes/box", { method: "PUT" }))!;
    expect(put.status).toBe(405);
    expect((await put.json()).error).toBe("PUT is not allowed here");
    // Another method on the live endpoints is left to whatever else serves this origin.
    expect(await d.request("/api/list", { method: "POST" })).toBeNull();
  });

  it("a backend per caller: each principal gets its own view", async () => {
    const w = world();
    await launched(w, "box");
    const seen: string[] = [];
    const base = await dashboard(w);
    const backend = operationsBackend(w);
    const opts: DashboardOptions = {
      ...base.opts,
      authenticate: async (r) => ({ id: r.headers.get("x-user") ?? "anon", admin: false }),
      backend: (principal) => {
        seen.push(principal.id);
        return { ...backend, list: async () => (principal.id === "ann" ? backend.list() : []) };
      },
    };
    const as = async (user: string) =>
      (await handleDashboard(new Request(`${ORIGIN}/`, { headers: { "x-user": user } }), opts))!.text();
    expect(await as("ann")).toContain('data-sandbox="box"');
    expect(await as("bob")).toContain("No sandboxes yet.");
    expect(seen).toEqual(["ann", "bob"]);
  });
});
