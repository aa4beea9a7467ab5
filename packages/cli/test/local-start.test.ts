import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CLI } from "../../../test/helpers/cli.ts";
import { isSandboxdCommand } from "../../../test/helpers/procs.ts";

/**
 * The local provider spawns sandboxd before it probes bubblewrap and stops a stale sandboxd of
 * the dir (sandboxd boots meanwhile, waiting for its config on stdin). A launcher that dies or
 * fails in between must leave no sandboxd behind. A stand-in `bwrap` holds the launcher there.
 */
const root = mkdtempSync(join(tmpdir(), "alpine-start-"));
const started: ChildProcess[] = [];
afterAll(() => {
  for (const p of started) p.kill("SIGKILL");
  for (const p of sandboxdsUnder(root)) kill(p);
  rmSync(root, { recursive: true, force: true });
});

function kill(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // gone
  }
}

/** Live sandboxd processes working under `dir` (an early one works where its `alpine launch` was started). */
function sandboxdsUnder(dir: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, "utf8");
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      if (stat.split(") ")[1]?.startsWith("Z")) continue; // exited, not yet reaped
      if (isSandboxdCommand(cmd) && readlinkSync(`/proc/${entry}/cwd`).startsWith(dir))
        out.push(Number(entry));
    } catch {
      // gone, or not ours to read
    }
  }
  return out;
}

async function until<T>(what: string, fn: () => T | null | undefined, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** An alpine home, a repo to launch and a PATH whose `bwrap` runs `script`. */
function setup(name: string, script: string) {
  const dir = join(root, name);
  const bin = join(dir, "bin");
  const repo = join(dir, "repo");
  mkdirSync(bin, { recursive: true });
  mkdirSync(repo, { recursive: true });
  writeFileSync(join(bin, "bwrap"), `#!/bin/sh\n${script}\n`);
  chmodSync(join(bin, "bwrap"), 0o755);
  const git = (...args: string[]) => execFileSync("git", args, { cwd: repo, stdio: "ignore" });
  git("init", "-q", "-b", "main");
  writeFileSync(join(repo, "README.md"), "hello\n");
  git("add", ".");
  git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "init");
  const env = {
    PATH: `${bin}:${process.env.PATH}`,
    HOME: process.env.HOME,
    NO_COLOR: "1",
    ALPINE_HOME: join(dir, "home"),
    XDG_CONFIG_HOME: join(dir, "config"),
    BWRAP_MARKER: join(dir, "bwrap.pid"),
  };
  return { dir, repo, env, home: env.ALPINE_HOME, marker: env.BWRAP_MARKER };
}

function launch(s: ReturnType<typeof setup>, extraEnv: Record<string, string> = {}) {
  const child = spawn(process.execPath, [CLI, "launch", "early", "--repo", s.repo, "--json"], {
    cwd: s.dir,
    env: { ...s.env, ...extraEnv },
    stdio: ["ignore", "pipe", "pipe"],
  });
  started.push(child);
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { child, exited, output: () => out };
}

describe("local provider: sandboxd spawned before its config is ready", () => {
  it("a launcher SIGKILLed before it wrote sandboxd's config leaves no sandboxd", async () => {
    // The probe blocks (as a slow one would) with sandboxd already spawned.
    const s = setup("killed", 'echo $$ > "$BWRAP_MARKER"; exec sleep 60');
    const { child, exited } = launch(s);
    const probe = await until("the bubblewrap probe", () =>
      existsSync(s.marker) ? Number(readFileSync(s.marker, "utf8")) || null : null,
    );
    // The point of the early spawn: sandboxd is running while the probe runs.
    const pids = await until("a spawned sandboxd", () => {
      const p = sandboxdsUnder(s.dir);
      return p.length ? p : null;
    });
    child.kill("SIGKILL");
    await exited;
    kill(probe);
    // Its stdin closed with no config: sandboxd exits by itself.
    await until("sandboxd to exit", () => (sandboxdsUnder(s.dir).length === 0 ? true : null), 10_000);
    expect(sandboxdsUnder(s.dir).filter((pid) => pids.includes(pid))).toEqual([]);
  });

  it("a launch that fails between the spawn and the config kills the sandboxd it spawned", async () => {
    // Bubblewrap required but broken: the isolation check throws after sandboxd was spawned.
    const s = setup("failed", 'echo "bwrap: no namespaces here" >&2; exit 1');
    const { exited, output } = launch(s, { ALPINE_SANDBOX_ISOLATION: "bubblewrap" });
    const code = await exited;
    expect(code, output()).not.toBe(0);
    expect(output()).toContain("provider_unavailable");
    await until("sandboxd to be gone", () => (sandboxdsUnder(s.dir).length === 0 ? true : null), 5_000);
  });
});

describe("the sandboxd `alpine launch` starts before the CLI loads (bin/early-sandboxd.js)", () => {
  const require = createRequire(import.meta.url);
  const early = require("../bin/early-sandboxd.js") as {
    startEarlySandboxd: (argv: string[], env: NodeJS.ProcessEnv) => void;
  };
  const KEY = Symbol.for("alpine.early-sandboxd");
  const slot = globalThis as { [KEY]?: { entry: string; child: ChildProcess } };

  it("starts for a local launch only: not for --help, --no-wait or another provider", () => {
    const env = { PATH: process.env.PATH };
    for (const argv of [
      ["launch", "x", "--help"],
      ["launch", "x", "--no-wait"],
      ["launch", "x", "--provider", "docker"],
      ["launch", "x", "--provider=cloudflare"],
    ]) {
      early.startEarlySandboxd(argv, env);
      expect(slot[KEY], argv.join(" ")).toBeUndefined();
    }
    early.startEarlySandboxd(["launch", "x"], { ...env, ALPINE_SANDBOX_PROVIDER: "docker" });
    expect(slot[KEY]).toBeUndefined();
    early.startEarlySandboxd(["launch", "x", "--provider", "local"], env);
    const started = slot[KEY];
    expect(started?.child.pid).toBeGreaterThan(0);
    expect(isSandboxdCommand(readFileSync(`/proc/${started!.child.pid}/cmdline`, "utf8"))).toBe(true);
    // No sandbox, no secret: an environment of PATH, LANG and the marker only.
    const environ = readFileSync(`/proc/${started!.child.pid}/environ`, "utf8").split("\0").filter(Boolean);
    expect(environ.map((v) => v.split("=")[0]).sort()).toEqual(["ALPINE_SANDBOXD_EARLY", "LANG", "PATH"]);
    started!.child.kill("SIGKILL");
    delete slot[KEY];
  });

  it("one nothing adopts exits when its command does", async () => {
    const dir = join(root, "unadopted");
    mkdirSync(dir, { recursive: true });
    // A command that starts one and exits without adopting it (a refused launch, a warm runtime).
    const script = `require(${JSON.stringify(join(import.meta.dirname, "..", "bin", "early-sandboxd.js"))}).startEarlySandboxd(["launch", "x"], process.env);
console.log(globalThis[Symbol.for("alpine.early-sandboxd")].child.pid);
setTimeout(() => {}, 300);`;
    const out = execFileSync(process.execPath, ["-e", script], { cwd: dir, encoding: "utf8" });
    const pid = Number(out.trim());
    expect(pid).toBeGreaterThan(0);
    await until(
      "the unadopted sandboxd to exit",
      () => (sandboxdsUnder(dir).includes(pid) ? null : true),
      10_000,
    );
  });
});
