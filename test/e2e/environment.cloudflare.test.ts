import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.ts";
import {
  type E2EEnv,
  filesContaining,
  filesUnder,
  makeEnv,
  processArgs,
  unpackCheckpointArtifacts,
  waitFor,
} from "./env.ts";
import { providerUnderTest } from "./providers.ts";

/**
 * A repo's environment through the control plane (`alpine cloud dev`: the Worker and its Durable
 * Objects in workerd, the container stand-in running sandboxd): the devcontainer's setup runs in
 * the container before the agent's task and its output is in `logs` (`--skip-setup` reaching the
 * launch route: core/test/operations.test.ts). Repo secrets set with `alpine secrets set` (stdin)
 * are kept sealed by the control plane: setup gets them all, the agent only the `--agent` one,
 * and neither value is in `status --json`, `logs`, the checkpoint in R2 (unpacked), the control
 * plane's storage or output, or a process's arguments. The preparation goes to R2, and a second
 * launch of the repo restores it instead of running setup. Previews through the control plane are
 * tested in ui-origins.cloudflare.test.ts.
 */
const p = providerUnderTest("cloudflare");
const NAMES = ["cp-env", "cp-env-again"];
let e: E2EEnv;
let parent = "";
/** The values, recognisable by the scans; setup and the agent only ever print a hash of one. */
const SETUP_VALUE = "cpsetupsecret-E2ECPSETUP0123456789abcdef";
const AGENT_VALUE = "cpagentsecret-E2ECPAGENT0123456789abcdef";
const sha256 = (v: string) => createHash("sha256").update(v).digest("hex");
const outputs: string[] = [];
const argSamples: string[] = [];
const alpine = async (...args: string[]) => {
  const r = await runCli(args, { env: e.env, cwd: e.cwd, timeoutMs: 180_000 });
  outputs.push(r.stdout, r.stderr);
  argSamples.push(...processArgs());
  return r;
};
/** `alpine secrets set` with the value on stdin, as a person pipes it. */
const setSecret = async (args: string[], value: string) => {
  const r = await runCli(["secrets", "set", ...args, "--json"], {
    env: e.env,
    cwd: e.cwd,
    input: `${value}\n`,
  });
  outputs.push(r.stdout, r.stderr);
  argSamples.push(...processArgs());
  return r;
};

beforeAll(async () => {
  // Outside /tmp: a sandbox's own /tmp hides the host's, so a scan there would prove nothing.
  parent = join("/var/tmp", `alpine-cp-env-${process.pid}`);
  mkdirSync(parent, { recursive: true });
  e = await makeEnv({ yaml: p.yaml, repoName: "cpenv", parent });
  Object.assign(e.env, p.env);
  await e.git.createRepo("cpenv", {
    "README.md": "# cp env\n",
    ".gitignore": "build/\n",
    ".devcontainer/devcontainer.json":
      '{ // setup builds the tool the tests need\n  "postCreateCommand": "sh setup.sh" }\n',
    "setup.sh":
      'set -e\necho "cp-setup: building"\necho "cp-setup: secret sha=$(printf %s "$CP_SETUP_TOKEN" | sha256sum | cut -c1-64)"\nmkdir -p build\nprintf "#!/bin/sh\\necho tool-ok\\n" > build/tool\nchmod +x build/tool\n',
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
  rmSync(parent, { recursive: true, force: true });
});

describe("a repo's environment through the control plane", () => {
  it("secrets set (stdin) stores them on the control plane; ls shows names, never values", async () => {
    const setup = await setSecret(["CP_SETUP_TOKEN", "--repo", e.repoUrl], SETUP_VALUE);
    expect(setup.code, setup.stdout + setup.stderr).toBe(0);
    expect(setup.json()).toEqual({ name: "CP_SETUP_TOKEN", scope: e.repoUrl, agent: false, replaced: false });
    const agent = await setSecret(["CP_AGENT_TOKEN", "--global", "--agent"], AGENT_VALUE);
    expect(agent.code, agent.stdout + agent.stderr).toBe(0);
    expect(agent.json()).toEqual({ name: "CP_AGENT_TOKEN", scope: "global", agent: true, replaced: false });
    const ls = await alpine("secrets", "ls", "--json");
    expect(ls.code, ls.stderr).toBe(0);
    expect(
      ls
        .json()
        .secrets.map((s: { name: string; scope: string; agent: boolean }) => [s.name, s.scope, s.agent]),
    ).toEqual([
      ["CP_AGENT_TOKEN", "global", true],
      ["CP_SETUP_TOKEN", e.repoUrl, false],
    ]);
    // Nothing on this machine holds them: the control plane does (sealed).
    expect(existsSync(join(e.alpineHome, "secrets.json"))).toBe(false);
  });

  it("setup runs in the container before the task with the repo's secret; the agent's tests pass and it gets only the --agent secret; the output is in logs", async () => {
    // The setup value is split so that neither the prompt nor the agent's shell holds it whole
    // in an argument; `$A$B` exists only inside the shell's own `case` match (a grep pattern would be
    // an argument, which the scans' `ps` samples could catch while the loop runs).
    const half = SETUP_VALUE.length >> 1;
    const task = [
      "SHELL sh test.sh",
      `printf 'AGENT_SHA=%s\\n' "$(printf %s "$CP_AGENT_TOKEN" | sha256sum | cut -c1-64)"`,
      "printenv CP_SETUP_TOKEN >/dev/null && echo SETUP=present || echo SETUP=absent",
      `A='${SETUP_VALUE.slice(0, half)}'; B='${SETUP_VALUE.slice(half)}'; n=0; hits=0`,
      `for f in /proc/[0-9]*/environ; do n=$((n+1)); c=$(tr '\\0' '\\n' < $f 2>/dev/null); case "$c" in *"$A$B"*) hits=$((hits+1));; esac; done`,
      "echo SCANNED=$n HITS=$hits",
    ].join("; ");
    const r = await alpine("launch", "cp-env", "--repo", e.repoUrl, "--task", task, "--json");
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
    expect(results).toContain(`AGENT_SHA=${sha256(AGENT_VALUE)}`);
    expect(results).toContain("SETUP=absent");
    expect(results).toMatch(/SCANNED=[1-9]\d* HITS=0/);
    const logs = (await alpine("logs", "cp-env", "--json")).json();
    expect(logs.lines.join("\n")).toContain("cp-setup: building");
    // Setup saw the repo's secret (its hash; the value itself is never printed).
    expect(logs.lines.join("\n")).toContain(`cp-setup: secret sha=${sha256(SETUP_VALUE)}`);
  });

  it("neither value is in status, logs, the checkpoint (unpacked from R2), the control plane's storage or output, or a process's arguments", async () => {
    const status = await alpine("status", "cp-env", "--json");
    expect(status.code).toBe(0);
    expect((await alpine("logs", "cp-env", "--json")).code).toBe(0);
    const ckpt = await alpine("checkpoint", "cp-env", "--json");
    expect(ckpt.code, ckpt.stdout + ckpt.stderr).toBe(0);
    const secrets = [SETUP_VALUE, AGENT_VALUE];
    for (const out of outputs) for (const v of secrets) expect(out).not.toContain(v);
    for (const args of argSamples) for (const v of secrets) expect(args).not.toContain(v);
    // The control plane's storage (DO SQLite: sealed; R2), the container stand-in's sandboxes and
    // the rest of alpine's home: no value in the clear anywhere.
    const state = join(e.alpineHome, "cloud-dev", "state");
    expect(filesContaining(e.alpineHome, secrets)).toEqual([]);
    // The scan sees the registry's rows: the sealed secret's key is stored there in the clear.
    expect(filesContaining(state, [`repo-secret:${e.repoUrl}:CP_SETUP_TOKEN`]).length).toBeGreaterThan(0);
    // The checkpoint's artifacts in R2, unpacked so compressed bytes hide nothing.
    const r2 = filesUnder(state).filter((f) => f.includes("/r2/"));
    const out = mkdtempSync(join(parent, "ckpt-"));
    unpackCheckpointArtifacts(r2, e.git.repoPath("cpenv"), out);
    expect(filesUnder(out).some((f) => f.includes("opencode"))).toBe(true);
    expect(filesContaining(out, secrets)).toEqual([]);
    // What `alpine cloud dev --verbose` printed (workerd's request log, the Worker's console).
    for (const v of secrets) expect(p.diagnostics?.() ?? "").not.toContain(v);
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
