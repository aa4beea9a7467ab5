import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { AlpineError } from "@alpine/core/errors";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { git, ROOT, type RunningSandboxd, readLog, startSandboxd } from "./helpers.ts";

/*
 * Clones from the authenticated git smart-HTTP fixture. The password must
 * reach git only over a pipe to the one git command (core/src/git-credential-pipe.ts): never argv, env, the
 * workspace's git config or remotes, the log, or any file on disk.
 */

interface GitServer {
  url(repo: string): string;
  createRepo(name: string, files: Record<string, string>): unknown;
  close(): Promise<void>;
}

const FIXTURE = join(ROOT, "test/e2e/fixtures/git-server.ts");
const USER = "alice";
const PASSWORD = `tok-${randomBytes(12).toString("hex")}`;

let server: GitServer;
let sbx: RunningSandboxd;

/** Everything under dir as one string (small test trees only). */
function readTree(dir: string): string {
  if (!existsSync(dir)) return "";
  let out = "";
  for (const entry of readdirSync(dir, { recursive: true }) as string[]) {
    const p = join(dir, entry);
    try {
      if (statSync(p).isFile() && statSync(p).size < 5_000_000) out += readFileSync(p, "latin1");
    } catch {
      // vanished
    }
  }
  return out;
}

/** Samples every process's argv and environment while fn runs. */
async function watchProcesses<T>(
  fn: () => Promise<T>,
): Promise<{ result: T; seen: string; samples: number }> {
  let seen = "";
  let samples = 0;
  let running = true;
  const sampler = (async () => {
    while (running) {
      for (const pid of readdirSync("/proc")) {
        if (!/^\d+$/.test(pid)) continue;
        for (const f of ["cmdline", "environ"]) {
          try {
            const text = readFileSync(`/proc/${pid}/${f}`, "latin1");
            if (text.includes(PASSWORD) || text.includes("credential.helper=!"))
              seen += `${pid}/${f}: ${text}\n`;
          } catch {
            // gone or not ours
          }
        }
      }
      samples++;
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  try {
    const result = await fn();
    return { result, seen, samples };
  } finally {
    running = false;
    await sampler;
  }
}

describe.skipIf(!existsSync(FIXTURE))("init with credentials (git smart-HTTP fixture)", () => {
  beforeAll(async () => {
    const mod = (await import(/* @vite-ignore */ FIXTURE)) as {
      startGitServer(o: { username: string; password: string }): Promise<GitServer>;
    };
    server = await mod.startGitServer({ username: USER, password: PASSWORD });
    await server.createRepo("proj", { "README.md": "# private\n" });
    sbx = await startSandboxd({ isolation: "none" });
  });

  afterAll(async () => {
    await sbx?.kill();
    await server?.close();
  });

  it("a wrong password is repo_unreachable", async () => {
    const err = await sbx.client
      .init({
        repo: server.url("proj"),
        branch: "alpine/demo",
        credentials: { username: USER, password: "nope" },
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AlpineError);
    expect((err as AlpineError).reason).toBe("repo_unreachable");
  });

  it("without credentials the clone fails, without prompting", async () => {
    const err = await sbx.client
      .init({ repo: server.url("proj"), branch: "alpine/demo" })
      .catch((e: unknown) => e);
    expect((err as AlpineError).reason).toBe("repo_unreachable");
  });

  it("clones with credentials that never leave sandboxd's memory", async () => {
    const { result, seen, samples } = await watchProcesses(() =>
      sbx.client.init({
        repo: server.url("proj"),
        branch: "alpine/demo",
        credentials: { username: USER, password: PASSWORD },
      }),
    );
    expect(result.phase).toBe("ready");
    expect(readFileSync(join(sbx.dirs.workspace, "README.md"), "utf8")).toBe("# private\n");
    expect(samples).toBeGreaterThan(3);
    // git's argv names the pipe helper (protocol and host only); the password is nowhere.
    expect(seen).not.toContain(PASSWORD);
    expect(seen).toContain("credential.helper=!f()");

    const remotes = git(sbx.dirs.workspace, "remote", "-v");
    expect(remotes).toContain(server.url("proj"));
    expect(remotes).not.toContain(PASSWORD);
    expect(readFileSync(join(sbx.dirs.workspace, ".git/config"), "utf8")).not.toContain(PASSWORD);
    expect(readTree(join(sbx.dirs.workspace, ".git"))).not.toContain(PASSWORD);
    expect(readTree(sbx.dirs.home)).not.toContain(PASSWORD);
    expect(readTree(sbx.dirs.tmp)).not.toContain(PASSWORD);
    expect(readLog(sbx.dirs.log)).not.toContain(PASSWORD);
    // OpenCode never had it.
    const pid = result.opencode.pid!;
    expect(readFileSync(`/proc/${pid}/environ`, "latin1")).not.toContain(PASSWORD);
  });

  it("credentials in the URL are moved out of it", async () => {
    const other = await startSandboxd({ isolation: "none" });
    try {
      const u = new URL(server.url("proj"));
      u.username = USER;
      u.password = PASSWORD;
      const status = await other.client.init({ repo: u.toString(), branch: "alpine/demo" });
      expect(status.workspace!.repo).toBe(server.url("proj"));
      expect(git(other.dirs.workspace, "remote", "-v")).not.toContain(PASSWORD);
      expect(readTree(join(other.dirs.workspace, ".git"))).not.toContain(PASSWORD);
      expect(readLog(other.dirs.log)).not.toContain(PASSWORD);
    } finally {
      await other.kill();
    }
  });
});
