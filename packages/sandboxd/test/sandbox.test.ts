import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { homedir } from "node:os";
import { join } from "node:path";
import type { AlpineError } from "@alpine/core/errors";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type StubModel, startStubModel, stubOpencodeConfig } from "../../../test/e2e/fixtures/stub-model.ts";
import {
  git,
  isAlive,
  makeBareRepo,
  type RunningSandboxd,
  readLog,
  sleep,
  startSandboxd,
  waitFor,
  waitTask,
} from "./helpers.ts";

/*
 * One sandboxd under bubblewrap, with real OpenCode and the stub model, shared
 * by the tests below in order (init → task → diff → UI → crash → shutdown):
 * each step is what the next one starts from, as in real use.
 */

const API_KEY = `sk-stub-${randomBytes(8).toString("hex")}`;
let stub: StubModel;
let sbx: RunningSandboxd;
let repo: string;
let initMs = 0;

beforeAll(async () => {
  stub = await startStubModel({ apiKey: API_KEY });
  const { model, config } = stubOpencodeConfig(stub.baseURL);
  repo = makeBareRepo({
    "README.md": "# demo\n",
    "src/app.txt": "one\ntwo\nthree\n",
    ".gitignore": "ignored/\n",
  });
  sbx = await startSandboxd({
    isolation: "bubblewrap",
    mask_paths: [homedir()],
    opencode: { model, config, auth: { stub: { type: "api", key: API_KEY } } },
  });
});

afterAll(async () => {
  await sbx?.kill();
  await stub?.close();
  console.log(`init → ready: ${initMs} ms`);
});

async function cookieFor(s: RunningSandboxd): Promise<string> {
  const { code } = await s.client.login();
  const res = await fetch(`${s.baseUrl}/auth/${code}`, { redirect: "manual" });
  const set = res.headers.get("set-cookie") ?? "";
  return set.split(";")[0]!;
}

describe("sandbox under bubblewrap", () => {
  it("init clones the repo, checks out the branch and starts OpenCode", async () => {
    const phases: string[] = [];
    const t0 = Date.now();
    const status = await sbx.client.init({ repo, branch: "alpine/demo" }, (p) => phases.push(p));
    initMs = Date.now() - t0;
    expect(phases).toEqual(["cloning", "starting_agent"]);
    expect(status.phase).toBe("ready");
    expect(status.error).toBeNull();
    const base = git(repo, "rev-parse", "main").trim();
    expect(status.workspace).toEqual({
      repo,
      branch: "alpine/demo",
      base_commit: base,
      head: base,
      dirty: false,
      changed_files: [],
      ahead: 0,
      tree_hash: git(repo, "rev-parse", "main^{tree}").trim(),
    });
    expect(status.agent.state).toBe("idle");
    expect(status.opencode).toMatchObject({ ready: true, restarts: 0, version: "1.18.33" });
    expect(status.opencode.pid).toBeGreaterThan(0);
    expect(readFileSync(join(sbx.dirs.workspace, "src/app.txt"), "utf8")).toBe("one\ntwo\nthree\n");
    // The model key stays with sandboxd's broker: auth.json (0600) holds the sandbox's token, the log neither.
    const auth = join(sbx.dirs.home, ".local/share/opencode/auth.json");
    expect(statSync(auth).mode & 0o777).toBe(0o600);
    const entry = (JSON.parse(readFileSync(auth, "utf8")) as { stub: { type: string; key: string } }).stub;
    expect(entry.type).toBe("api");
    expect(entry.key).not.toBe(API_KEY);
    expect(readFileSync(auth, "utf8")).not.toContain(API_KEY);
    expect(readLog(sbx.dirs.log)).not.toContain(API_KEY);
    expect(readLog(sbx.dirs.log)).not.toContain(entry.key);
  });

  it("a second init with the same repo just returns the status", async () => {
    const phases: string[] = [];
    const status = await sbx.client.init({ repo, branch: "alpine/demo" }, (p) => phases.push(p));
    expect(phases).toEqual([]);
    expect(status.phase).toBe("ready");
    const other = makeBareRepo();
    await expect(sbx.client.init({ repo: other, branch: "alpine/demo" })).rejects.toMatchObject({
      reason: "sandbox_identity_conflict",
    });
  });

  it("OpenCode's environment carries none of sandboxd's", async () => {
    const pid = (await sbx.client.status()).opencode.pid!;
    const env = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
    const names = env.map((e) => e.split("=")[0]).sort();
    expect(names).not.toContain("GITHUB_TOKEN");
    expect(names).toContain("OPENCODE_SERVER_PASSWORD");
    expect(env).toContain(`HOME=${sbx.dirs.home}`);
    expect(env).toContain("TMPDIR=/tmp");
    const config = JSON.parse(env.find((e) => e.startsWith("OPENCODE_CONFIG_CONTENT="))!.slice(24));
    expect(config.permission).toEqual({ "*": "allow", question: "deny" });
    expect(config.autoupdate).toBe(false);
  });

  let firstSession = "";
  it("a task completes only on session.idle after the prompt; agent busy → idle", async () => {
    // Our own subscription to OpenCode's events (through the UI proxy) timestamps session.idle.
    const cookie = await cookieFor(sbx);
    const ac = new AbortController();
    const idles: { session: string; at: number }[] = [];
    const events = await fetch(`${sbx.baseUrl}/event`, { headers: { cookie }, signal: ac.signal });
    expect(events.status).toBe(200);
    expect(events.headers.get("content-type")).toContain("text/event-stream");
    const reading = (async () => {
      const dec = new TextDecoder();
      let buf = "";
      try {
        for await (const chunk of events.body as unknown as AsyncIterable<Uint8Array>) {
          buf += dec.decode(chunk, { stream: true });
          let i = buf.indexOf("\n\n");
          while (i >= 0) {
            const data = buf.slice(0, i).replace(/^data: ?/m, "");
            buf = buf.slice(i + 2);
            try {
              const ev = JSON.parse(data) as { type: string; properties: { sessionID?: string } };
              if (ev.type === "session.idle")
                idles.push({ session: ev.properties.sessionID!, at: Date.now() });
            } catch {
              // not JSON
            }
            i = buf.indexOf("\n\n");
          }
        }
      } catch {
        // aborted
      }
    })();

    const accepted = await sbx.client.task({ prompt: "SLEEP 1500 WRITE NOTES.md hello from the agent" });
    expect(accepted.accepted).toBe(true);
    firstSession = accepted.session_id;
    const right = await sbx.client.status();
    expect(right.task).toMatchObject({ session_id: firstSession, state: "running", finished_at: null });
    expect(right.task!.prompt_summary).toBe("SLEEP 1500 WRITE NOTES.md hello from the agent");
    expect(right.agent.state).toBe("busy");
    expect(right.agent.session_id).toBe(firstSession);
    await expect(sbx.client.task({ prompt: "again" })).rejects.toMatchObject({ reason: "agent_busy" });

    let completedAt = 0;
    const done = await waitFor(
      async () => {
        const s = await sbx.client.status();
        if (s.task?.state !== "running") {
          completedAt = Date.now();
          return s;
        }
        return undefined;
      },
      60_000,
      25,
    );
    expect(done.task!.state).toBe("completed");
    expect(done.task!.error).toBeNull();
    expect(done.agent.state).toBe("idle");
    expect(done.agent.last_activity).not.toBeNull();
    const idle = await waitFor(async () => idles.find((e) => e.session === firstSession), 5000);
    // Completion was observed no earlier than OpenCode's session.idle (allowing for our own poll/stream skew).
    expect(completedAt).toBeGreaterThanOrEqual(idle.at - 150);
    ac.abort();
    await reading;

    expect(readFileSync(join(sbx.dirs.workspace, "NOTES.md"), "utf8")).toBe("hello from the agent");
    const agentCalls = stub.requests.filter((r) => r.kind === "agent");
    expect(agentCalls.length).toBeGreaterThanOrEqual(2);
    expect(agentCalls.every((r) => r.authorization === `Bearer ${API_KEY}`)).toBe(true);
  });

  it("status lists the untracked file; diff includes it, with and without stat", async () => {
    writeFileSync(join(sbx.dirs.workspace, "src/app.txt"), "one\nTWO\nthree\nfour\n");
    rmSync(join(sbx.dirs.workspace, "README.md"));
    writeFileSync(join(sbx.dirs.workspace, "ignored-not"), "x\n");
    const { mkdirSync } = await import("node:fs");
    mkdirSync(join(sbx.dirs.workspace, "ignored"), { recursive: true });
    writeFileSync(join(sbx.dirs.workspace, "ignored/secret.txt"), "nope\n");
    const indexBefore = readFileSync(join(sbx.dirs.workspace, ".git/index"));

    const status = await sbx.client.status();
    expect(status.workspace!.dirty).toBe(true);
    expect(status.workspace!.changed_files).toEqual([
      { path: "NOTES.md", status: "added" },
      { path: "README.md", status: "deleted" },
      { path: "ignored-not", status: "added" },
      { path: "src/app.txt", status: "modified" },
    ]);

    const stat = await sbx.client.diff({ stat: true });
    expect(stat.patch ?? "").toBe("");
    expect(stat.files).toEqual([
      { path: "NOTES.md", status: "added", insertions: 1, deletions: 0 },
      { path: "README.md", status: "deleted", insertions: 0, deletions: 1 },
      { path: "ignored-not", status: "added", insertions: 1, deletions: 0 },
      { path: "src/app.txt", status: "modified", insertions: 2, deletions: 1 },
    ]);
    const full = await sbx.client.diff();
    expect(full.patch).toContain("+++ b/NOTES.md");
    expect(full.patch).toContain("+hello from the agent");
    expect(full.patch).toContain("-two");
    expect(full.patch).not.toContain("secret");
    // The real index is untouched: untracked files are still untracked for git.
    expect(readFileSync(join(sbx.dirs.workspace, ".git/index")).equals(indexBefore)).toBe(true);
    expect(git(sbx.dirs.workspace, "status", "--porcelain")).toContain("?? NOTES.md");
    // The patch applies to base_commit and reproduces the tree.
    const check = join(sbx.dirs.root, "apply-check");
    git(sbx.dirs.root, "clone", "-q", repo, check);
    writeFileSync(join(sbx.dirs.root, "p.diff"), full.patch!);
    git(check, "apply", "--index", join(sbx.dirs.root, "p.diff"));
    expect(readFileSync(join(check, "NOTES.md"), "utf8")).toBe("hello from the agent");
    // tree_hash is the tree of exactly that working tree.
    expect(status.workspace!.tree_hash).toBe(git(check, "write-tree").trim());
  });

  it("a committed change counts as ahead", async () => {
    git(sbx.dirs.workspace, "add", "NOTES.md");
    git(sbx.dirs.workspace, "commit", "-q", "-m", "notes");
    const s = await sbx.client.status();
    expect(s.workspace!.ahead).toBe(1);
    expect(s.workspace!.head).not.toBe(s.workspace!.base_commit);
    expect(s.workspace!.changed_files.map((f) => f.path)).toContain("NOTES.md");
  });

  it("status and diff never run commands the workspace's git config names (sandboxd runs on the host)", async () => {
    const marks = ["filter", "fsmonitor", "textconv", "extdiff"].map((m) =>
      join(sbx.dirs.root, `ran-${m}-${process.pid}`),
    );
    const config = join(sbx.dirs.workspace, ".git/config");
    const saved = readFileSync(config, "utf8");
    writeFileSync(
      config,
      saved +
        `[filter "evil"]\n\tclean = touch ${marks[0]}\n\tsmudge = touch ${marks[0]}\n\trequired = true\n` +
        `[core]\n\tfsmonitor = touch ${marks[1]}\n` +
        `[diff "evil"]\n\ttextconv = touch ${marks[2]}\n[diff]\n\texternal = touch ${marks[3]}\n`,
    );
    writeFileSync(join(sbx.dirs.workspace, ".gitattributes"), "* filter=evil diff=evil\n");
    writeFileSync(join(sbx.dirs.workspace, "src/app.txt"), "changed again\n");
    try {
      const s = await sbx.client.status();
      expect(s.workspace!.changed_files).toContainEqual({ path: ".gitattributes", status: "added" });
      const d = await sbx.client.diff();
      expect(d.patch).toContain("+changed again");
      for (const m of marks) expect(existsSync(m), m).toBe(false);
    } finally {
      writeFileSync(config, saved);
      rmSync(join(sbx.dirs.workspace, ".gitattributes"));
    }
  });

  it("the agent cannot write outside the workspace", async () => {
    const escapes = [`/etc/alpine-escape-${process.pid}`, join(homedir(), `alpine-escape-${process.pid}`)];
    for (const target of escapes) {
      const seen = stub.requests.length;
      await sbx.client.task({ prompt: `WRITE ${target} escaped` });
      const s = await waitTask(sbx.client);
      expect(s.task!.state).toBe("completed");
      expect(existsSync(target)).toBe(false);
      // The agent really tried: OpenCode ran its write tool and reported the failure back to the model.
      const toolResults = stub.requests
        .slice(seen)
        .flatMap((r) => (r.body as { messages?: { role: string; content: unknown }[] })?.messages ?? [])
        .filter((m) => m.role === "tool")
        .map((m) => JSON.stringify(m.content));
      expect(toolResults.at(-1)).toMatch(/FileSystem\.(writeFile|makeDirectory)|read-only|EROFS/i);
    }
  });

  it("login codes are single use; the cookie opens OpenCode's UI; no cookie gets the HTML 401", async () => {
    const none = await fetch(`${sbx.baseUrl}/`);
    expect(none.status).toBe(401);
    expect(none.headers.get("content-type")).toContain("text/html");
    expect(await none.text()).toContain("alpine open demo");

    const { code, expires_at } = await sbx.client.login();
    expect(Date.parse(expires_at) - Date.now()).toBeGreaterThan(50_000);
    expect(Date.parse(expires_at) - Date.now()).toBeLessThanOrEqual(60_000);
    const first = await fetch(`${sbx.baseUrl}/auth/${code}`, { redirect: "manual" });
    expect(first.status).toBe(302);
    // Straight to OpenCode's page of this workspace's task session.
    const dir = Buffer.from(sbx.dirs.workspace).toString("base64url");
    expect(first.headers.get("location")).toBe(`/${dir}/session/${firstSession}`);
    const setCookie = first.headers.get("set-cookie")!;
    expect(setCookie).toMatch(/^alpine_session_[A-Za-z0-9_-]+=[A-Za-z0-9_-]{40,};/);
    expect(setCookie).toContain("HttpOnly");
    expect(setCookie).toContain("SameSite=Strict");
    expect(setCookie).toContain("Path=/");
    const replay = await fetch(`${sbx.baseUrl}/auth/${code}`, { redirect: "manual" });
    expect(replay.status).toBe(401);
    expect(replay.headers.get("content-type")).toContain("text/html");

    const cookie = setCookie.split(";")[0]!;
    const page = await fetch(`${sbx.baseUrl}/`, { headers: { cookie } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("<title>OpenCode</title>");
    const api = await fetch(`${sbx.baseUrl}/session`, { headers: { cookie } });
    expect(api.status).toBe(200);
    const sessions = (await api.json()) as { id: string }[];
    expect(sessions.map((x) => x.id)).toContain(firstSession);
    // A forged cookie is refused; the bearer token is not a UI credential.
    const forged = await fetch(`${sbx.baseUrl}/`, { headers: { cookie: `${cookie.split("=")[0]}=forged` } });
    expect(forged.status).toBe(401);
    const bearer = await fetch(`${sbx.baseUrl}/session`, {
      headers: { authorization: `Bearer ${sbx.token}` },
    });
    expect(bearer.status).toBe(401);
  });

  it("proxies WebSocket upgrades (OpenCode's terminal)", async () => {
    const cookie = await cookieFor(sbx);
    const created = await fetch(`${sbx.baseUrl}/pty`, {
      method: "POST",
      headers: { cookie, "content-type": "application/json" },
      body: JSON.stringify({ command: "/bin/sh", args: ["-c", "sleep 1.5; echo pty-says-hi; sleep 5"] }),
    });
    expect(created.status).toBe(200);
    const pty = (await created.json()) as { id: string };
    const got = await new Promise<{ status: number; data: string }>((resolve, reject) => {
      const req = request(`${sbx.baseUrl}/pty/${pty.id}/connect`, {
        headers: {
          cookie,
          connection: "Upgrade",
          upgrade: "websocket",
          "sec-websocket-version": "13",
          "sec-websocket-key": randomBytes(16).toString("base64"),
        },
      });
      req.on("upgrade", (res, socket) => {
        let data = "";
        const t = setTimeout(() => {
          socket.destroy();
          resolve({ status: res.statusCode!, data });
        }, 8000);
        socket.on("data", (d: Buffer) => {
          data += d.toString("latin1");
          if (data.includes("pty-says-hi")) {
            clearTimeout(t);
            socket.destroy();
            resolve({ status: res.statusCode!, data });
          }
        });
      });
      req.on("response", (res) => reject(new Error(`no upgrade: HTTP ${res.statusCode}`)));
      req.on("error", reject);
      req.end();
    });
    expect(got.status).toBe(101);
    expect(got.data).toContain("pty-says-hi");
  });

  it("OpenCode killed with SIGKILL is restarted and takes a new task", async () => {
    const before = await sbx.client.status();
    const pid = before.opencode.pid!;
    process.kill(pid, "SIGKILL");
    const after = await waitFor(async () => {
      const s = await sbx.client.status();
      return s.opencode.ready && s.opencode.restarts >= 1 && s.agent.state !== "unknown" ? s : undefined;
    }, 30_000);
    expect(after.opencode.pid).not.toBe(pid);
    expect(after.opencode.restarts).toBeGreaterThanOrEqual(1);
    expect(after.phase).toBe("ready");
    const { session_id } = await sbx.client.task({ prompt: "WRITE AFTER.md back again" });
    expect(session_id).toBe(firstSession); // the task session survives the restart
    const s = await waitTask(sbx.client);
    expect(s.task!.state).toBe("completed");
    expect(readFileSync(join(sbx.dirs.workspace, "AFTER.md"), "utf8")).toBe("back again");
  });

  it("shutdown stops OpenCode and exits, leaving no process", async () => {
    const s = await sbx.client.status();
    const ocPid = s.opencode.pid!;
    const { descendants } = await import("../src/proc.ts");
    const tree = [sbx.pid, ...descendants(sbx.pid)];
    expect(tree).toContain(ocPid);
    await sbx.client.shutdown();
    expect(await sbx.exited).toBe(0);
    await waitFor(async () => tree.every((p) => !isAlive(p)), 10_000);
    const err = await sbx.client.status().catch((e: unknown) => e);
    expect((err as AlpineError).reason).toBe("sandbox_unavailable");
    expect(readLog(sbx.dirs.log)).toContain('"msg":"stopped"');
    await sleep(10);
  });
});
