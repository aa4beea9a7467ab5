import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { SandboxdConfigInput, SandboxdStatus } from "@alpine/core/sandboxd-api";
import { SandboxdClient } from "@alpine/core/sandboxd-client";
import { build } from "esbuild";
import { afterAll, beforeAll } from "vitest";
import { type StubModel, startStubModel } from "../../../test/e2e/fixtures/stub-model.ts";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
export const OPENCODE_BIN = join(ROOT, "node_modules/opencode-ai/bin/opencode.exe");

let built: Promise<string> | undefined;
const temps: string[] = [];

/** A temp dir removed when this test process exits (kept with ALPINE_KEEP_TEST_DIRS=1, for their logs). */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  temps.push(dir);
  return dir;
}

/** `GET /` over the connection `connect` makes (a unix socket, a bridge's port): the body. */
export function getOver(connect: () => import("node:net").Socket): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const q = httpRequest({ path: "/", createConnection: connect as never }, (res) => {
      let s = "";
      res.on("data", (d) => (s += d));
      res.on("end", () => resolve(s));
    });
    q.on("error", reject);
    q.end();
  });
}

process.on("exit", () => {
  if (process.env.ALPINE_KEEP_TEST_DIRS) return;
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});

/** Bundles sandboxd (and its git credential helper) fresh into a temp dir; returns the entry path. */
export function buildSandboxd(): Promise<string> {
  built ??= (async () => {
    const out = tempDir("alpine-sandboxd-build-");
    await build({
      bundle: true,
      platform: "node",
      target: "node20",
      format: "esm",
      logLevel: "warning",
      entryPoints: {
        sandboxd: join(ROOT, "packages/sandboxd/src/main.ts"),
      },
      outdir: out,
      banner: {
        js: "import { createRequire as __alpineCreateRequire } from 'node:module'; const require = __alpineCreateRequire(import.meta.url);",
      },
    });
    return join(out, "sandboxd.js");
  })();
  return built;
}

export function git(cwd: string, ...args: string[]): string {
  return execFileSync("git", args, {
    cwd,
    encoding: "utf8",
    env: {
      ...process.env,
      GIT_AUTHOR_NAME: "t",
      GIT_AUTHOR_EMAIL: "t@example.com",
      GIT_COMMITTER_NAME: "t",
      GIT_COMMITTER_EMAIL: "t@example.com",
    },
  });
}

/** A bare repo with one commit on main holding `files`; returns its path. */
export function makeBareRepo(files: Record<string, string> = { "README.md": "# demo\n" }): string {
  const root = tempDir("alpine-repo-");
  const work = join(root, "work");
  mkdirSync(work);
  git(work, "init", "-q", "-b", "main");
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(work, path)), { recursive: true });
    writeFileSync(join(work, path), content);
  }
  git(work, "add", "-A");
  git(work, "commit", "-q", "-m", "initial");
  git(work, "tag", "v1");
  git(root, "clone", "-q", "--bare", work, "repo.git");
  return join(root, "repo.git");
}

export interface RunningSandboxd {
  child: ChildProcess;
  port: number;
  pid: number;
  baseUrl: string;
  token: string;
  client: SandboxdClient;
  dirs: { root: string; workspace: string; home: string; tmp: string; log: string };
  exited: Promise<number | null>;
  /** Kills sandboxd (and, through it, OpenCode) if still running. */
  kill(): Promise<void>;
}

/**
 * For a test file: starts sandboxds with `defaults` (overridable per call, `reuse` as in
 * startSandboxd) and kills every one of them after the file's tests.
 */
export function sandboxdsOfThisFile(defaults: Partial<SandboxdConfigInput> = {}) {
  const running: RunningSandboxd[] = [];
  afterAll(async () => {
    await Promise.all(running.map((s) => s.kill()));
  });
  return async (overrides: Partial<SandboxdConfigInput> = {}, reuse?: RunningSandboxd["dirs"]) => {
    const s = await startSandboxd({ ...defaults, ...overrides }, reuse);
    running.push(s);
    return s;
  };
}

/**
 * For a describe block: the stub model server with a random API key, started before its tests and
 * closed after them. `stub` is set once the block's tests run.
 */
export function stubModelOfThisSuite(): { apiKey: string; stub: StubModel } {
  const out = { apiKey: `sk-stub-${randomBytes(8).toString("hex")}` } as { apiKey: string; stub: StubModel };
  beforeAll(async () => {
    out.stub = await startStubModel({ apiKey: out.apiKey });
  });
  afterAll(async () => {
    await out.stub?.close();
  });
  return out;
}

/** Starts sandboxd on fresh dirs, or on `reuse` (a restart over an existing sandbox). */
export async function startSandboxd(
  overrides: Partial<SandboxdConfigInput> = {},
  reuse?: RunningSandboxd["dirs"],
): Promise<RunningSandboxd> {
  const entry = await buildSandboxd();
  const root = reuse?.root ?? tempDir("alpine-sbx-");
  const dirs = reuse ?? {
    root,
    workspace: join(root, "workspace"),
    home: join(root, "home"),
    tmp: join(root, "tmp"),
    log: join(root, "logs", "sandboxd.log"),
  };
  for (const d of [dirs.workspace, dirs.home, dirs.tmp]) mkdirSync(d, { recursive: true });
  const token = randomBytes(24).toString("base64url");
  const config: SandboxdConfigInput = {
    sandbox_id: `sbx_${randomBytes(4).toString("hex")}`,
    name: "demo",
    token,
    host: "127.0.0.1",
    port: 0,
    workspace_dir: dirs.workspace,
    home_dir: dirs.home,
    tmp_dir: dirs.tmp,
    log_file: dirs.log,
    isolation: "none",
    opencode_bin: OPENCODE_BIN,
    opencode: {},
    branch_prefix: "alpine",
    ...overrides,
  };
  const child = spawn(process.execPath, [entry], {
    cwd: root,
    stdio: ["pipe", "pipe", "pipe"],
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: dirs.home,
      LANG: "C.UTF-8",
      // Passed through to OpenCode: skips its background plugin install from the npm registry
      // (which otherwise makes it ignore SIGTERM for a while).
      npm_config_registry: "http://127.0.0.1:9/",
    },
  });
  child.stdin!.end(JSON.stringify(config));
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  const line = await new Promise<string>((resolveLine, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.once("line", resolveLine);
    child.once("exit", (code) => reject(new Error(`sandboxd exited with ${code}`)));
  });
  const msg = JSON.parse(line) as { event: string; port: number; pid: number };
  if (msg.event !== "listening") throw new Error(`sandboxd did not start: ${line}`);
  const baseUrl = `http://127.0.0.1:${msg.port}`;
  return {
    child,
    port: msg.port,
    pid: msg.pid,
    baseUrl,
    token,
    client: new SandboxdClient({ baseUrl, token, timeoutMs: 30_000 }),
    dirs,
    exited,
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 8000);
      await exited;
      clearTimeout(t);
    },
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls fn until it returns a truthy value (or throws after timeoutMs). */
export async function waitFor<T>(
  fn: () => Promise<T | undefined | null | false>,
  timeoutMs = 30_000,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting${last ? `: ${String(last)}` : ""}`);
    await sleep(everyMs);
  }
}

export async function waitTask(client: SandboxdClient, timeoutMs = 60_000): Promise<SandboxdStatus> {
  return waitFor(async () => {
    const s = await client.status();
    return s.task && s.task.state !== "running" ? s : undefined;
  }, timeoutMs);
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** All command lines of running processes (for secret scans). */
export function allCommandLines(): string {
  return execFileSync("ps", ["-eo", "args", "--no-headers", "-ww"], { encoding: "utf8" });
}

export function readLog(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}
