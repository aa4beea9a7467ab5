import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type GitServer, startGitServer } from "../../../test/e2e/fixtures/git-server.ts";
import { type StubModel, startStubModel, stubOpencodeConfig } from "../../../test/e2e/fixtures/stub-model.ts";
import { type RunningSandboxd, readLog, startSandboxd, waitTask } from "./helpers.ts";

/*
 * The agent's network and keys under bubblewrap with the default (closed)
 * egress policy: real sandboxd, real bwrap (--unshare-net), real OpenCode whose
 * bash tool runs what the stub model's SHELL directive says. Every server here
 * is on 127.0.0.1; "allowed.test" is pinned to one of them (a test-only
 * setting of sandboxd's config), every other name is refused before any DNS.
 */

const hasBwrap = (() => {
  try {
    execFileSync("bwrap", ["--ro-bind", "/", "/", "--unshare-net", "true"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

const API_KEY = `sk-stub-${randomBytes(8).toString("hex")}`;
const GIT_PASSWORD = `ghp_${randomBytes(10).toString("hex")}`;
let stub: StubModel;
let git: GitServer;
/** A service of the host on loopback the agent must not reach (a dev server, another sandboxd). */
let hostService: Server;
let hostHits = 0;
/** What "allowed.test" leads to. */
let allowed: Server;
let allowedHits = 0;
let sbx: RunningSandboxd;

function listen(server: Server): Promise<number> {
  return new Promise((r) => server.listen(0, "127.0.0.1", () => r((server.address() as AddressInfo).port)));
}

/** Runs one shell command as the agent (a task); returns what its bash tool gave back. */
async function agentShell(s: RunningSandboxd, command: string): Promise<string> {
  const before = stub.requests.length;
  await s.client.task({ prompt: `SHELL ${command}` });
  const status = await waitTask(s.client, 90_000);
  expect(status.task?.state, JSON.stringify(status.task?.error)).toBe("completed");
  const result = stub.requests
    .slice(before)
    .reverse()
    .find((r) => r.kind === "agent" && r.toolResult !== undefined)?.toolResult;
  if (result === undefined) throw new Error("the agent's tool result never reached the model");
  return result;
}

/** Every file under dir as text (what a checkpoint of it would hold). */
function allText(dir: string): string {
  let out = "";
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = statSync(p, { throwIfNoEntry: false });
    if (!st) continue;
    if (st.isDirectory()) out += allText(p);
    else if (st.isFile() && st.size < 20_000_000) out += readFileSync(p, "latin1");
  }
  return out;
}

let allowedPort = 0;
let hostPort = 0;

beforeAll(async () => {
  if (!hasBwrap) return;
  stub = await startStubModel({ apiKey: API_KEY });
  git = await startGitServer({ username: "x-access-token", password: GIT_PASSWORD });
  await git.createRepo("demo", { "README.md": "# demo\n" });
  hostService = createServer((_req, res) => {
    hostHits++;
    res.end("host-secret-service");
  });
  allowed = createServer((_req, res) => {
    allowedHits++;
    res.end("hello from the allowed host");
  });
  hostPort = await listen(hostService);
  allowedPort = await listen(allowed);
  const { model, config } = stubOpencodeConfig(stub.baseURL);
  sbx = await startSandboxd({
    isolation: "bubblewrap",
    opencode: { model, config, auth: { stub: { type: "api", key: API_KEY } } },
    egress: {
      allow: [`allowed.test:${allowedPort}`, `localhost:${hostPort}`],
      pin: { "allowed.test": "127.0.0.1" },
    },
  });
  await sbx.client.init({
    repo: git.url("demo"),
    branch: "alpine/demo",
    credentials: { username: "x-access-token", password: GIT_PASSWORD },
  });
}, 120_000);

afterAll(async () => {
  await sbx?.kill();
  hostService?.close();
  allowed?.close();
  await git?.close();
  await stub?.close();
});

describe.skipIf(!hasBwrap)("egress and keys under bubblewrap", () => {
  it("the agent never holds the model key or the git token; the model still gets the key", async () => {
    const out = await agentShell(
      sbx,
      "env; cat ~/.local/share/opencode/auth.json; cat ~/.gitconfig ~/.git-credentials .git/config 2>&1; git config -l",
    );
    expect(out).toContain("OPENCODE_CONFIG_CONTENT"); // the command ran and printed the env
    expect(out).not.toContain(API_KEY);
    expect(out).not.toContain(GIT_PASSWORD);
    // The model's requests carried the real key (the stub answers 401 otherwise).
    const agentCalls = stub.requests.filter((r) => r.kind === "agent");
    expect(agentCalls.length).toBeGreaterThan(0);
    for (const r of agentCalls) expect(r.authorization).toBe(`Bearer ${API_KEY}`);
    // Nor anywhere in the files the agent can read or a checkpoint would keep.
    const files = allText(sbx.dirs.home) + allText(sbx.dirs.workspace) + allText(sbx.dirs.tmp);
    expect(files).not.toContain(API_KEY);
    expect(files).not.toContain(GIT_PASSWORD);
  });

  it("loopback services of the host and cloud metadata are out of reach", async () => {
    const out = await agentShell(
      sbx,
      `curl -sS -m 5 http://127.0.0.1:${hostPort}/; echo "direct=$?"; ` +
        `curl -sSf -m 5 --noproxy '' http://localhost:${hostPort}/; echo "rebind=$?"; ` +
        `curl -sS -m 5 ${sbx.baseUrl}/v1/health; echo "sandboxd=$?"; ` +
        `curl -sS -m 5 http://169.254.169.254/latest/meta-data/; echo "metadata=$?"`,
    );
    expect(out).not.toContain("host-secret-service");
    for (const what of ["direct", "rebind", "sandboxd"]) expect(out).toMatch(new RegExp(`${what}=[1-9]`));
    // The proxy answers for metadata: 403, refused by policy.
    expect(out).toMatch(/not in this sandbox's egress allow-list/);
    expect(hostHits).toBe(0);
    const log = readLog(sbx.dirs.log);
    expect(log).toMatch(/egress refused.*localhost.*loopback/);
  });

  it("a host outside the allow-list is refused, logged and counted; an allowed one works", async () => {
    const out = await agentShell(
      sbx,
      `curl -sS -m 5 https://disallowed.test:${allowedPort}/; echo "refused=$?"; ` +
        `curl -sS -m 5 http://allowed.test:${allowedPort}/; echo "allowed=$?"`,
    );
    expect(out).toMatch(/refused=[1-9]/);
    expect(out).toContain("hello from the allowed host");
    expect(out).toContain("allowed=0");
    expect(allowedHits).toBe(1);
    const status = await sbx.client.status();
    expect(status.egress).toMatchObject({ policy: "allow", enforced: true });
    expect(status.egress!.refused).toBeGreaterThanOrEqual(1);
    expect(status.egress!.refused_hosts).toContain(`disallowed.test:${allowedPort}`);
    expect(readLog(sbx.dirs.log)).toMatch(/egress refused.*disallowed\.test/);
  });

  it("a resumed sandboxd gives the agent a new token; the old one is refused by the broker", async () => {
    const authFile = join(sbx.dirs.home, ".local", "share", "opencode", "auth.json");
    const oldToken = (JSON.parse(readFileSync(authFile, "utf8")) as { stub: { key: string } }).stub.key;
    await sbx.kill();
    const { model, config } = stubOpencodeConfig(stub.baseURL);
    sbx = await startSandboxd(
      {
        isolation: "bubblewrap",
        opencode: { model, config, auth: { stub: { type: "api", key: API_KEY } } },
      },
      sbx.dirs,
    );
    await sbx.client.init({ repo: git.url("demo"), branch: "alpine/demo" });
    const newToken = (JSON.parse(readFileSync(authFile, "utf8")) as { stub: { key: string } }).stub.key;
    expect(newToken).not.toBe(oldToken);
    const out = await agentShell(
      sbx,
      `curl -sS -m 5 -o /dev/null -w "old=%{http_code}" -H "Authorization: Bearer ${oldToken}" ` +
        `-d '{}' http://127.0.0.1:3128/model/stub/chat/completions`,
    );
    expect(out).toContain("old=401");
  });
});
