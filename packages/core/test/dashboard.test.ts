import { describe, expect, it } from "vitest";
import {
  type DashboardBackend,
  DashboardLogins,
  handleDashboard,
  LOGIN_CODE_TTL_MS,
  patchByFile,
} from "../src/dashboard/index.ts";
import { AlpineError } from "../src/errors.ts";
import type { ListItemView, StatusView } from "../src/views.ts";

const item: ListItemView = {
  name: "fix-login",
  id: "sbx_1",
  provider: "local",
  repo: "https://git.example/app.git",
  branch: "alpine/fix-login",
  image_profile: "default",
  state: "running",
  agent: "needs_input",
  agent_reason: "asks <whether> to proceed",
  usage: { input: 100, output: 20, reasoning: 0, cache_read: 0, cache_write: 0, cost: 0.0123 },
  last_activity: "2026-12-07T06:00:00.000Z",
  created_at: "2026-12-07T05:00:00.000Z",
  changed_files: ["a.md", "b.md"],
  changes_seen_at: null,
  overlaps: [{ name: "other", files: ["a.md"] }],
  disk_bytes: null,
};

function backend(calls: string[]): DashboardBackend {
  return {
    list: async () => [item],
    status: async (name) => ({ name, state: "running" }) as unknown as StatusView,
    diff: async (name) => ({ name, files: [], patch: "" }),
    logs: async (name) => ({ name, events: [], lines: [] }),
    login: async () => ({ web_url: "http://127.0.0.1:1/auth/x" }),
    task: async (name) => ({ name, session_id: "ses_1", state: "running" }),
    checkpoint: async () => {
      throw new Error("not called");
    },
    export: async () => {
      throw new Error("not called");
    },
    teardown: async (name, { force }) => {
      calls.push(`teardown ${name} force=${force}`);
      if (!force) throw new AlpineError("teardown_requires_force", `the agent in '${name}' is busy`, {});
      return { name, state: "destroyed", checkpoint_id: null, destroyed: true, forced: true };
    },
  };
}

const ORIGIN = "http://127.0.0.1:4000";

async function setup() {
  let now = 1_000_000;
  const logins = new DashboardLogins(() => now);
  const calls: string[] = [];
  const opts = {
    backend: backend(calls),
    authenticate: async (r: Request) =>
      (await logins.check(r.headers.get("cookie"))) ? { id: "local", admin: true } : null,
    redeem: (code: string) => logins.redeem(code),
    csrfKey: "k".repeat(32),
    brand: "alpine",
    signInHint: "Run `alpine dashboard` for a new link.",
  };
  const get = (path: string, headers: Record<string, string> = {}) =>
    handleDashboard(new Request(`${ORIGIN}${path}`, { headers }), opts);
  return { logins, calls, opts, get, tick: (ms: number) => (now += ms) };
}

async function signIn(s: Awaited<ReturnType<typeof setup>>) {
  const { code } = await s.logins.newCode();
  const res = (await s.get(`/login/${code}`))!;
  expect(res.status).toBe(303);
  const cookie = res.headers.get("set-cookie")!;
  expect(cookie).toMatch(/HttpOnly/);
  expect(cookie).toMatch(/SameSite=Strict/);
  return { code, cookie: cookie.split(";")[0]! };
}

describe("dashboard", () => {
  it("a login link works once; a reused or expired one is refused", async () => {
    const s = await setup();
    const { code } = await signIn(s);
    expect((await s.get(`/login/${code}`))!.status).toBe(401);
    const late = await s.logins.newCode();
    s.tick(LOGIN_CODE_TTL_MS + 1);
    expect((await s.get(`/login/${late.code}`))!.status).toBe(401);
  });

  it("refuses pages and JSON without a session", async () => {
    const s = await setup();
    expect((await s.get("/"))!.status).toBe(401);
    const api = (await s.get("/api/list"))!;
    expect(api.status).toBe(401);
    expect((await api.json()).reason_code).toBe("unauthorized");
    expect(await s.get("/elsewhere")).toBeNull();
  });

  it("lists every sandbox with its state, agent and reason, repo/branch, activity, cost, changes, overlaps; escaped", async () => {
    const s = await setup();
    const { cookie } = await signIn(s);
    const res = (await s.get("/", { cookie }))!;
    expect(res.status).toBe(200);
    expect(res.headers.get("content-security-policy")).toContain("script-src 'self'");
    const page = await res.text();
    for (const text of [
      "fix-login",
      "needs_input",
      "asks &lt;whether&gt; to proceed",
      "alpine/fix-login",
      "$0.0123",
      ">2<",
      "other</a>: a.md",
      '<main id="main">',
    ])
      expect(page).toContain(text);
    expect(page).not.toContain("<whether>");
    const live = await (await s.get("/api/list", { cookie }))!.json();
    expect(live.sections["live-list"]).toContain("fix-login");
  });

  it("a POST needs the same origin and the page's token; a refused teardown says it can be forced", async () => {
    const s = await setup();
    const { cookie } = await signIn(s);
    const page = await (await s.get("/", { cookie }))!.text();
    const csrf = /data-csrf="([^"]+)"/.exec(page)![1]!;
    const post = (headers: Record<string, string>, body: string) =>
      handleDashboard(
        new Request(`${ORIGIN}/sandboxes/fix-login/teardown`, {
          method: "POST",
          headers: {
            accept: "application/json",
            "content-type": "application/x-www-form-urlencoded",
            cookie,
            ...headers,
          },
          body,
        }),
        s.opts,
      );
    expect((await post({ origin: "http://evil.example" }, `csrf=${csrf}`))!.status).toBe(403);
    expect((await post({ origin: ORIGIN }, "csrf=wrong"))!.status).toBe(403);
    expect((await post({}, `csrf=${csrf}`))!.status).toBe(403);
    expect(s.calls).toEqual([]);
    const refused = (await post({ origin: ORIGIN }, `csrf=${csrf}`))!;
    expect(refused.status).toBe(409);
    const body = await refused.json();
    expect(body).toMatchObject({ reason_code: "teardown_requires_force", can_force: true });
    const forced = (await post({ origin: ORIGIN }, `csrf=${csrf}&force=1`))!;
    expect(forced.status).toBe(200);
    expect(s.calls).toEqual(["teardown fix-login force=false", "teardown fix-login force=true"]);
  });

  it("splits a patch per file", () => {
    const patch = "diff --git a/a.md b/a.md\n+one\ndiff --git a/dir/b c.md b/dir/b c.md\n-two\n";
    const files = patchByFile(patch);
    expect([...files.keys()]).toEqual(["a.md", "dir/b c.md"]);
    expect(files.get("dir/b c.md")).toContain("-two");
  });
});
