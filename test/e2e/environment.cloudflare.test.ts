import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.ts";
import { type E2EEnv, makeEnv, waitFor } from "./env.ts";
import { providerUnderTest } from "./providers.ts";

/**
 * A repo's environment through the control plane (`alpine cloud dev`: the Worker and its Durable
 * Objects in workerd, the container stand-in running sandboxd): the devcontainer's setup runs in
 * the container before the agent's task and its output is in `logs` (`--skip-setup` reaching the
 * launch route: core/test/operations.test.ts); the preparation goes to R2, and a second launch
 * of the repo restores it instead of running setup. What Cloudflare lacks is in
 * docs/environments.md, "On Cloudflare"; `secrets set` refusing is checked here.
 */
const p = providerUnderTest("cloudflare");
const NAMES = ["cp-env", "cp-env-again"];
let e: E2EEnv;
const alpine = (...args: string[]) => runCli(args, { env: e.env, cwd: e.cwd, timeoutMs: 180_000 });

beforeAll(async () => {
  e = await makeEnv({ yaml: p.yaml, repoName: "cpenv" });
  Object.assign(e.env, p.env);
  await e.git.createRepo("cpenv", {
    "README.md": "# cp env\n",
    ".gitignore": "build/\n",
    ".devcontainer/devcontainer.json":
      '{ // setup builds the tool the tests need\n  "postCreateCommand": "sh setup.sh" }\n',
    "setup.sh":
      'set -e\necho "cp-setup: building"\nmkdir -p build\nprintf "#!/bin/sh\\necho tool-ok\\n" > build/tool\nchmod +x build/tool\n',
    "test.sh": '[ "$(./build/tool)" = tool-ok ] && echo CP-TESTS-PASS || echo CP-TESTS-FAIL\n',
  });
  await p.start?.(e);
}, 240_000);

afterEach((ctx) => {
  if (ctx.task.result?.state === "fail" && p.diagnostics) console.error(p.diagnostics());
});

afterAll(async () => {
  if (!e) return;
  for (const n of NAMES) await alpine("teardown", n, "--force", "--json").catch(() => {});
  await p.stop?.();
  await e.close();
});

describe("a repo's environment through the control plane", () => {
  it("setup runs in the container before the task; the agent's tests pass; its output is in logs; secrets are refused", async () => {
    const r = await alpine("launch", "cp-env", "--repo", e.repoUrl, "--task", "SHELL sh test.sh", "--json");
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const s = await waitFor(
      "the task",
      async () => {
        const st = (await alpine("status", "cp-env", "--json")).json();
        return st.task?.state === "completed" || st.task?.state === "failed" ? st : null;
      },
      { timeoutMs: 90_000, intervalMs: 1_000 },
    );
    expect(s.runtime.environment.setup.state).toBe("ran");
    expect(s.runtime.environment.effective.sources.setup).toBe("devcontainer");
    const results = e.model.requests.map((q) => q.toolResult ?? "").join("\n");
    expect(results).toContain("CP-TESTS-PASS");
    const logs = (await alpine("logs", "cp-env", "--json")).json();
    expect(logs.lines.join("\n")).toContain("cp-setup: building");
    // Repo secrets do not reach the control plane: refused for cloudflare (docs/environments.md).
    const set = await runCli(["secrets", "set", "CP_TOKEN", "--global", "--json"], {
      env: e.env,
      cwd: e.cwd,
      input: "value-of-the-token\n",
    });
    expect(set.code).toBe(1);
    expect(set.stdout + set.stderr).toContain("not supported yet");
  });

  // prepared environments in R2: the first launch's preparation is copied out of its container;
  // the next launch of the repo gets it staged into a new container and skips setup.
  it("a second launch restores the preparation from R2 and skips setup; env ls lists it, env rm removes it", async () => {
    const listed = await waitFor(
      "the preparation in R2",
      async () => {
        const ls = (await alpine("env", "ls", "--json")).json();
        return ls.environments.find((x: { provider: string }) => x.provider === "cloudflare") ?? null;
      },
      { timeoutMs: 30_000, intervalMs: 1_000 },
    );
    expect(listed.repo).toBe(e.repoUrl);
    expect(listed.setup).toEqual(["sh setup.sh"]);
    expect(listed.bytes).toBeGreaterThan(0);
    const first = (await alpine("status", "cp-env", "--json")).json();
    expect(listed.key).toBe(first.runtime.environment.setup.key);

    const seen = e.model.requests.length;
    const r = await alpine(
      "launch",
      "cp-env-again",
      "--repo",
      e.repoUrl,
      "--task",
      "SHELL sh test.sh",
      "--json",
    );
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const s = await waitFor(
      "the second task",
      async () => {
        const st = (await alpine("status", "cp-env-again", "--json")).json();
        return st.task?.state === "completed" || st.task?.state === "failed" ? st : null;
      },
      { timeoutMs: 90_000, intervalMs: 1_000 },
    );
    // Restored, not run: setup's output is absent, and the tool it builds (an ignored file) is there.
    expect(s.runtime.environment.setup.state).toBe("restored");
    expect(s.runtime.environment.setup.key).toBe(listed.key);
    const logs = (await alpine("logs", "cp-env-again", "--json")).json().lines.join("\n");
    expect(logs).not.toContain("cp-setup: building");
    expect(logs).toContain("prepared environment restored");
    const results = e.model.requests
      .slice(seen)
      .map((q) => q.toolResult ?? "")
      .join("\n");
    expect(results).toContain("CP-TESTS-PASS");

    const rm = await alpine("env", "rm", listed.key.slice(0, 12), "--json");
    expect(rm.code, rm.stdout + rm.stderr).toBe(0);
    expect(rm.json().removed).toEqual([listed.key]);
    const after = (await alpine("env", "ls", "--json")).json();
    expect(after.environments.map((x: { key: string }) => x.key)).not.toContain(listed.key);
  });
});
