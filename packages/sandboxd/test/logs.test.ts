import { describe, expect, it } from "vitest";
import { makeBareRepo, sandboxdsOfThisFile } from "./helpers.ts";

/**
 * sandboxd's log outside its file: on stderr when configured (a container's platform keeps what
 * its process prints after its disk is gone), and its tail over the API (`GET /v1/logs`, what the
 * control plane's `alpine logs` reads from a live container). Real sandboxd, git and OpenCode.
 */
const start = sandboxdsOfThisFile();

describe("sandboxd's log beyond its file", () => {
  it("with log_stderr, every line (OpenCode's too) also goes to stderr, and /v1/logs serves the tail; no token in either", async () => {
    const sbx = await start({ log_stderr: true });
    let stderr = "";
    sbx.child.stderr!.on("data", (d) => (stderr += d));
    await sbx.client.init({ repo: makeBareRepo(), branch: "alpine/logs" });

    const lines = await sbx.client.logs(500);
    expect(lines.length).toBeGreaterThan(2);
    const parsed = lines.map((l) => JSON.parse(l) as { msg: string; source?: string });
    expect(parsed.some((l) => l.source === "opencode")).toBe(true);
    expect(parsed.some((l) => l.msg === "listening")).toBe(true);
    expect(await sbx.client.logs(2)).toHaveLength(2);

    const printed = stderr.split("\n").filter(Boolean);
    expect(printed.some((l) => l.includes('"source":"opencode"'))).toBe(true);
    expect(printed.some((l) => l.includes('"msg":"listening"'))).toBe(true);
    expect(stderr).not.toContain(sbx.token);
    expect(lines.join("\n")).not.toContain(sbx.token);
  });

  it("/v1/logs needs the bearer token and a sane tail; without log_stderr nothing is printed", async () => {
    const sbx = await start();
    let stderr = "";
    sbx.child.stderr!.on("data", (d) => (stderr += d));
    expect((await fetch(`${sbx.baseUrl}/v1/logs`)).status).toBe(401);
    const bad = await fetch(`${sbx.baseUrl}/v1/logs?tail=0`, {
      headers: { authorization: `Bearer ${sbx.token}` },
    });
    expect(bad.status).toBe(400);
    expect((await sbx.client.logs(10)).some((l) => l.includes('"msg":"listening"'))).toBe(true);
    expect(stderr).toBe("");
  });
});
