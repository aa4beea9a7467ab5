import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.ts";
import { type E2EEnv, makeEnv } from "./env.ts";
import { stubOpencodeConfig } from "./fixtures/stub-model.ts";

/**
 * `alpine wait` through the CLI on a local sandbox, one outcome after another on the same sandbox
 * (driven by the stub model's directives): done, done-when-waiting-for-input, error (FAIL 400),
 * timeout, torn down while waited on; and on a second sandbox needs input (OpenCode configured to
 * ask before bash). Exit
 * codes are docs/cli.md's "alpine wait" table.
 */
let e: E2EEnv;
const alpine = (...args: string[]) => runCli(args, { env: e.env, cwd: e.cwd, timeoutMs: 120_000 });
const NAME = "waited";
const ASKER = "asker";

beforeAll(async () => {
  e = await makeEnv();
  // OpenCode asks before running a shell command: the SHELL directive then leaves the agent in needs_input.
  const stub = stubOpencodeConfig(e.model.baseURL);
  const config = { ...stub.config, permission: { bash: "ask" } };
  writeFileSync(
    join(e.cwd, "alpine.yaml"),
    [
      "opencode:",
      `  model: ${stub.model}`,
      "  auth_providers: [stub]",
      `  config: ${JSON.stringify(config)}`,
      "",
    ].join("\n"),
  );
  const r = await alpine(
    "launch",
    NAME,
    "--repo",
    e.repoUrl,
    "--task",
    "SLEEP 3000 WRITE A.md first",
    "--json",
  );
  expect(r.code, r.stdout + r.stderr).toBe(0);
}, 180_000);

afterAll(async () => {
  await alpine("teardown", NAME, "--force", "--json").catch(() => {});
  await alpine("teardown", ASKER, "--force", "--json").catch(() => {});
  await e?.close();
});

describe("alpine wait (local)", () => {
  it("waits for the task to finish: exit 0, outcome done, the sandbox completed", async () => {
    const r = await alpine("wait", NAME, "--json");
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const out = r.json();
    expect(out.for).toBe("done");
    expect(out.exit_code).toBe(0);
    expect(out.sandboxes).toHaveLength(1);
    expect(out.sandboxes[0]).toMatchObject({ name: NAME, outcome: "done", state: "completed" });
    expect(out.sandboxes[0].reason).toContain("WRITE A.md first");
    // Text: one line saying why it stopped.
    const text = await alpine("wait", NAME);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(new RegExp(`${NAME}\\s+done\\s+the agent finished its task`));
    // Waiting for input on an agent that finished without asking: exit 8.
    const input = await alpine("wait", NAME, "--for", "input", "--json");
    expect(input.code, input.stdout + input.stderr).toBe(8);
    expect(input.json().sandboxes[0].outcome).toBe("done");
  });

  it("an unknown name is sandbox_not_found (exit 1), before any waiting", async () => {
    const r = await alpine("wait", NAME, "no-such-box", "--json");
    expect(r.code).toBe(1);
    expect(r.json().reason_code).toBe("sandbox_not_found");
  });

  it("an agent whose model fails ends the wait with exit 3 and the reason; task --wait is task_failed", async () => {
    const failed = await alpine("task", NAME, "--wait", "--json", "FAIL 400");
    expect(failed.code, failed.stdout + failed.stderr).toBe(1);
    expect(failed.json().reason_code).toBe("task_failed");
    const r = await alpine("wait", NAME, "--json");
    expect(r.code, r.stdout + r.stderr).toBe(3);
    expect(r.json().sandboxes[0]).toMatchObject({ outcome: "error", task_state: "failed" });
    expect(r.json().sandboxes[0].reason.length).toBeGreaterThan(0);
  });

  it("--timeout ends a wait on a busy agent with exit 6", async () => {
    const sent = await alpine("task", NAME, "SLEEP 60000 WRITE B.md slow");
    expect(sent.code, sent.stdout + sent.stderr).toBe(0);
    const r = await alpine("wait", NAME, "--timeout", "2", "--json");
    expect(r.code, r.stdout + r.stderr).toBe(6);
    expect(r.json().sandboxes[0]).toMatchObject({ outcome: "timeout", agent: "busy" });
    expect(r.json().waited_ms).toBeGreaterThanOrEqual(2000);
  });

  it("a sandbox torn down while waited on ends its wait with exit 7 (gone)", async () => {
    const waiting = alpine("wait", NAME, "--json");
    // Let the wait take a few looks at the busy agent first.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const down = await alpine("teardown", NAME, "--force", "--json");
    expect(down.code, down.stdout + down.stderr).toBe(0);
    const r = await waiting;
    expect(r.code, r.stdout + r.stderr).toBe(7);
    expect(r.json().sandboxes[0].outcome).toBe("gone");
    expect(r.json().sandboxes[0].reason).toMatch(/tearing_down|destroyed/);
  });
  it("an agent that asks before running a command ends a wait for done with exit 4, and is success for --for input", async () => {
    // A second sandbox: the question stays pending in OpenCode, so it gets its own.
    const up = await alpine("launch", ASKER, "--repo", e.repoUrl, "--task", "SHELL echo asked", "--json");
    expect(up.code, up.stdout + up.stderr).toBe(0);
    const r = await alpine("wait", ASKER, "--json");
    expect(r.code, r.stdout + r.stderr).toBe(4);
    expect(r.json().sandboxes[0]).toMatchObject({ outcome: "input", agent: "needs_input" });
    const asked = await alpine("wait", ASKER, "--for", "input");
    expect(asked.code, asked.stdout + asked.stderr).toBe(0);
    expect(asked.stdout).toMatch(/input/);
    const any = await alpine("wait", ASKER, "--for", "any", "--json");
    expect(any.code).toBe(0);
  });
});
