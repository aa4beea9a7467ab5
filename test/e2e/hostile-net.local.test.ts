import { execFileSync } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.ts";
import { recorder } from "../reliability/harness.ts";
import { type E2EEnv, makeEnv, SECRETS, waitFor } from "./env.ts";

/**
 * The hostile agent's network and keys on the local provider (bubblewrap, the
 * default egress policy), driven through the CLI: the stub model's SHELL
 * directive makes the agent run each command with OpenCode's bash tool, and the
 * tool's output is what the model got back. Every attempt is a row of
 * docs/reliability.md (`auth` rows for connections, `secret` rows for key scans).
 * Nothing here leaves 127.0.0.1: names outside the allow-list are refused
 * before any DNS lookup.
 */

const hasBwrap = (() => {
  try {
    execFileSync("bwrap", ["--ro-bind", "/", "/", "--unshare-net", "true"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

const record = recorder("hostile-net-local");
let e: E2EEnv;
/** The user's dev server on the host's loopback. */
let devServer: Server;
let devHits = 0;
let devPort = 0;
const alpine = (...args: string[]) => runCli(args, { env: e.env, cwd: e.cwd, timeoutMs: 180_000 });

/** Runs `command` as the agent (a task of the sandbox); returns what its bash tool printed. */
async function agentShell(command: string): Promise<string> {
  const before = e.model.requests.length;
  const r = await alpine("task", "hostile", "--wait", "--json", "--", `SHELL ${command}`);
  expect(r.code, r.stdout + r.stderr).toBe(0);
  return waitFor(
    "the agent's tool result",
    async () =>
      e.model.requests
        .slice(before)
        .reverse()
        .find((q) => q.kind === "agent" && q.toolResult !== undefined)?.toolResult,
    { timeoutMs: 120_000, intervalMs: 200 },
  );
}

beforeAll(async () => {
  if (!hasBwrap) return;
  devServer = createServer((_req, res) => {
    devHits++;
    res.end("dev-server-data");
  });
  await new Promise<void>((r) => devServer.listen(0, "127.0.0.1", () => r()));
  devPort = (devServer.address() as AddressInfo).port;
  // localhost is allowed on the dev server's port: the proxy must still refuse it for its address.
  e = await makeEnv({
    yaml: ["sandbox:", "  isolation: bubblewrap", "  egress:", `    allow: [localhost:${devPort}]`],
  });
  const r = await alpine("launch", "hostile", "--repo", e.repoUrl, "--json");
  expect(r.code, r.stdout + r.stderr).toBe(0);
}, 240_000);

afterAll(async () => {
  if (!e) return;
  await alpine("teardown", "hostile", "--force", "--json").catch(() => {});
  devServer?.close();
  await e.close();
});

describe.skipIf(!hasBwrap)("hostile agent: network and keys (local, bubblewrap)", () => {
  it("reads its env, OpenCode's config and auth.json: no model key, no git token", async () => {
    const out = await agentShell(
      "env; cat ~/.local/share/opencode/auth.json; cat ~/.config/opencode/* 2>/dev/null; git config -l; cat .git/config",
    );
    expect(out).toContain("OPENCODE_CONFIG_CONTENT");
    const hits = [SECRETS.modelKey, SECRETS.gitToken, SECRETS.forbiddenKey].filter((s) => out.includes(s));
    expect(hits).toEqual([]);
    // The model still got the real key from the broker (the stub answers 401 otherwise).
    for (const q of e.model.requests.filter((r) => r.kind === "agent"))
      expect(q.authorization).toBe(`Bearer ${SECRETS.modelKey}`);
    record({
      kind: "secret",
      scanned:
        "what the agent printed: env, OpenCode's auth.json and config, git config (model key, git token)",
      items: 3,
      hits: hits.length,
    });
  });

  it("connects to the host's loopback services and cloud metadata: refused", async () => {
    const cases = [
      {
        target: "127.0.0.1:<port> (the user's dev server)",
        cmd: `curl -sS -m 5 http://127.0.0.1:${devPort}/`,
      },
      {
        target: "localhost:<port> through the proxy (allow-listed, but it resolves to loopback)",
        cmd: `curl -sSf -m 5 --noproxy '' http://localhost:${devPort}/`,
      },
      {
        target: "169.254.169.254 (cloud metadata)",
        cmd: "curl -sSf -m 5 http://169.254.169.254/latest/meta-data/",
      },
    ];
    for (const c of cases) {
      const out = await agentShell(`${c.cmd}; echo "exit=$?"`);
      expect(out, c.target).toMatch(/exit=[1-9]/);
      expect(out).not.toContain("dev-server-data");
      record({
        kind: "auth",
        target: `agent → ${c.target}`,
        credential: "none",
        outcome: /returned error: 403/.test(out)
          ? "refused: 403 from the egress proxy"
          : /Couldn't connect|Connection refused/i.test(out)
            ? "refused: nothing listens there (the namespace's own loopback)"
            : `refused (curl ${/exit=(\d+)/.exec(out)?.[0] ?? "failed"})`,
      });
    }
    expect(devHits).toBe(0);
    const logs = await alpine("logs", "hostile");
    expect(logs.stdout).toMatch(/egress refused.*localhost.*loopback/);
  });

  it("connects to a host outside the allow-list: refused, logged, counted in status", async () => {
    const out = await agentShell(`curl -sS -m 5 https://example.invalid/; echo "exit=$?"`);
    expect(out).toMatch(/exit=[1-9]/);
    const status = (await alpine("status", "hostile", "--json")).json();
    expect(status.runtime.egress).toMatchObject({ policy: "allow", enforced: true });
    expect(status.runtime.egress.refused_hosts).toContain("example.invalid:443");
    const logs = await alpine("logs", "hostile");
    expect(logs.stdout + logs.stderr).toMatch(/egress refused.*example\.invalid/);
    record({
      kind: "auth",
      target: "agent → https://example.invalid (outside sandbox.egress)",
      credential: "none",
      outcome: `refused by the egress proxy (403); status counts ${status.runtime.egress.refused} refusals; alpine logs shows it`,
    });
  });
});
