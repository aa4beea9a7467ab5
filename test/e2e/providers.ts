import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
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
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import type { ProviderKind } from "@alpine/core";
import { inject } from "vitest";
import { CLI, runCli } from "../helpers/cli.ts";
import { freePort } from "../helpers/ports.ts";
import { isSandboxdCommand } from "../helpers/procs.ts";
import { type E2EEnv, processesMatching, waitFor } from "./env.ts";
import { treeDigest } from "./tree.ts";

const execFileAsync = promisify(execFile);

/**
 * What an end-to-end suite needs to know about the provider it runs against:
 * how to select it in alpine.yaml, how to reach a sandbox's files from the
 * test (a directory for local; `docker exec`/`docker cp` into the container
 * or its volume for docker), and whether its runtime is really gone.
 * The suites themselves are written once and run against each provider.
 */
export interface ProviderUnderTest {
  kind: ProviderKind;
  /** Why the suite cannot run here (it is then skipped), or null. */
  skipReason: string | null;
  /** alpine.yaml lines selecting the provider. */
  yaml: string[];
  /** Extra environment for alpine processes. */
  env: Record<string, string>;
  workspace(alpineHome: string, sandboxId: string): SandboxFiles;
  /** A copy (or the directory itself, for local) of everything the sandbox keeps: workspace, home, logs. */
  snapshot(alpineHome: string, sandboxId: string): Promise<{ dir: string; done(): void }>;
  /** What of the sandbox's runtime is still there (processes, containers, volumes, dirs); [] when none. */
  leftovers(alpineHome: string, sandboxId: string): Promise<string[]>;
  /** `launch`'s web_url: sandboxd's own address, or the control plane's page of the sandbox. */
  webUrl: RegExp;
  /** Whether web_url's port belongs to the sandbox (and so closes with its teardown). */
  ownPort: boolean;
  /** `open`'s one-time link. */
  loginLink: RegExp;
  /** Where a browser without the link lands (answered 401 with `alpine open <name>`). */
  anonymousUrl(link: string, name: string): string;
  /**
   * What a platform rollout does to a busy runtime: SIGTERM to its sandboxd (a container's
   * PID 1), a grace period for it to exit, then the runtime is gone with its disk (a replaced
   * container starts on a fresh one). Only providers whose runtimes a platform replaces have it.
   */
  terminate?(alpineHome: string, sandboxId: string): Promise<void>;
  /**
   * Brings up what the provider needs once the environment exists (cloudflare: `alpine cloud dev`,
   * with `vars` overriding wrangler.jsonc's through `--var`).
   */
  start?(e: E2EEnv, opts?: { vars?: Record<string, string> }): Promise<void>;
  stop?(): Promise<void>;
  /** What the provider's own processes printed lately (cloudflare: `alpine cloud dev --verbose`), for a failed test. */
  diagnostics?(): string;
}

const SANDBOXD_ADDRESS = {
  webUrl: /^http:\/\/127\.0\.0\.1:\d+$/,
  ownPort: true,
  loginLink: /^http:\/\/127\.0\.0\.1:\d+\/auth\/\S+$/,
  anonymousUrl: (link: string) => `${new URL(link).origin}/`,
};

export interface SandboxFiles {
  write(rel: string, content: string | Buffer, mode?: number): Promise<void>;
  git(...args: string[]): Promise<string>;
  /** treeDigest of the workspace (untracked files included, .git excluded). */
  digest(): Promise<ReturnType<typeof treeDigest>>;
}

const AGENT_GIT_ENV = {
  GIT_AUTHOR_NAME: "Agent",
  GIT_AUTHOR_EMAIL: "a@x",
  GIT_COMMITTER_NAME: "Agent",
  GIT_COMMITTER_EMAIL: "a@x",
};

const local: ProviderUnderTest = {
  kind: "local",
  skipReason: null,
  yaml: [],
  env: {},
  ...SANDBOXD_ADDRESS,
  workspace(alpineHome, id) {
    const ws = join(alpineHome, "sandboxes", id, "workspace");
    return {
      async write(rel, content, mode) {
        mkdirSync(dirname(join(ws, rel)), { recursive: true });
        writeFileSync(join(ws, rel), content);
        if (mode !== undefined) chmodSync(join(ws, rel), mode);
      },
      async git(...args) {
        const r = await execFileAsync("git", args, { cwd: ws, env: { ...process.env, ...AGENT_GIT_ENV } });
        return r.stdout.trim();
      },
      async digest() {
        return treeDigest(ws);
      },
    };
  },
  async snapshot(alpineHome, id) {
    return { dir: join(alpineHome, "sandboxes", id), done() {} };
  },
  async leftovers(alpineHome, id) {
    const dir = join(alpineHome, "sandboxes", id);
    return [...processesMatching(id), ...(existsSync(dir) ? [dir] : [])];
  },
};

function dockerProvider(): ProviderUnderTest {
  const env = inject("docker");
  const dockerEnv = { ...process.env, ...(env.host ? { DOCKER_HOST: env.host } : {}) };
  const dockerCmd = async (args: string[], input?: string | Buffer) => {
    const child = execFile("docker", args, {
      env: dockerEnv,
      maxBuffer: 256 * 1024 * 1024,
      encoding: "buffer",
    });
    if (input !== undefined) child.stdin?.end(input);
    else child.stdin?.end();
    return await new Promise<string>((resolve, reject) => {
      let out = Buffer.alloc(0);
      let err = "";
      child.stdout?.on("data", (d: Buffer) => (out = Buffer.concat([out, d])));
      child.stderr?.on("data", (d) => (err += d));
      child.once("exit", (code) =>
        code === 0
          ? resolve(out.toString("utf8").trim())
          : reject(new Error(`docker ${args.join(" ")}: ${err}`)),
      );
    });
  };
  const container = (id: string) => `alpine-${id}`;
  /** Copies a path of the container (running or not) to a fresh host dir. */
  const copyOut = (id: string, path: string) => {
    const dir = mkdtempSync(join(tmpdir(), "alpine-docker-copy-"));
    execFileSync("sh", ["-c", `docker cp "$1:$2" - | tar -x -C "$3"`, "sh", container(id), path, dir], {
      env: dockerEnv,
      stdio: "pipe",
    });
    return dir;
  };
  return {
    kind: "docker",
    ...SANDBOXD_ADDRESS,
    skipReason: env.skipReason,
    yaml: [
      "sandbox:",
      "  provider: docker",
      `  image_profiles: {default: "${env.image}"}`,
      // Tests reach the git server and the stub model on the host's 127.0.0.1.
      "docker:",
      "  network: host",
    ],
    env: env.host ? { DOCKER_HOST: env.host } : {},
    workspace(_alpineHome, id) {
      const exec = (args: string[], input?: string | Buffer) =>
        dockerCmd(
          [
            "exec",
            ...(input !== undefined ? ["-i"] : []),
            "-w",
            "/sandbox/workspace",
            container(id),
            ...args,
          ],
          input,
        );
      return {
        async write(rel, content, mode) {
          await exec(["sh", "-c", 'mkdir -p "$(dirname "$1")" && cat > "$1"', "sh", rel], content);
          if (mode !== undefined) await exec(["chmod", mode.toString(8), rel]);
        },
        async git(...args) {
          const identity = Object.entries(AGENT_GIT_ENV).flatMap(([k, v]) => ["-e", `${k}=${v}`]);
          return dockerCmd(["exec", ...identity, "-w", "/sandbox/workspace", container(id), "git", ...args]);
        },
        async digest() {
          const dir = copyOut(id, "/sandbox/workspace");
          try {
            return treeDigest(join(dir, "workspace"));
          } finally {
            rmSync(dir, { recursive: true, force: true });
          }
        },
      };
    },
    async snapshot(_alpineHome, id) {
      const dir = copyOut(id, "/sandbox");
      return { dir: join(dir, "sandbox"), done: () => rmSync(dir, { recursive: true, force: true }) };
    },
    async leftovers(alpineHome, id) {
      const out: string[] = [];
      const names = await dockerCmd([
        "ps",
        "-a",
        "--filter",
        `label=alpine.sandbox_id=${id}`,
        "--format",
        "{{.Names}}",
      ]);
      if (names) out.push(...names.split("\n").map((n) => `container ${n}`));
      const vols = await dockerCmd([
        "volume",
        "ls",
        "--filter",
        `label=alpine.sandbox_id=${id}`,
        "--format",
        "{{.Name}}",
      ]);
      if (vols) out.push(...vols.split("\n").map((n) => `volume ${n}`));
      const dir = join(alpineHome, "sandboxes", id);
      if (existsSync(dir)) out.push(dir);
      return out;
    },
  };
}

/**
 * cloudflare: the control plane in workerd (`alpine cloud dev`: Worker, Durable
 * Objects with SQLite, local R2), whose container stand-in runs each sandbox
 * as sandboxd processes under $ALPINE_HOME/cloud-dev/sandboxes/<id>.
 */
function cloudflareProvider(): ProviderUnderTest {
  let dev: ChildProcess | null = null;
  // The last lines `alpine --verbose cloud dev` printed: workerd's request log and the Worker's console.
  const devTail: string[] = [];
  const dirOf = (alpineHome: string, id: string) => join(alpineHome, "cloud-dev", "sandboxes", id);
  const files = local.workspace;
  return {
    kind: "cloudflare",
    skipReason: null,
    yaml: ["sandbox:", "  provider: cloudflare"],
    env: { ALPINE_CONTROL_PLANE_TOKEN: CONTROL_PLANE_TOKEN },
    webUrl: /^http:\/\/[a-z0-9-]+\.localhost:\d+\/$/,
    ownPort: false,
    loginLink: /^http:\/\/[a-z0-9-]+\.localhost:\d+\/auth\/\S+$/,
    anonymousUrl: (link, name) => `${new URL(link).origin}/s/${name}/`,
    workspace: (alpineHome, id) => files(join(alpineHome, "cloud-dev"), id),
    async snapshot(alpineHome, id) {
      return { dir: dirOf(alpineHome, id), done() {} };
    },
    async leftovers(alpineHome, id) {
      const dir = dirOf(alpineHome, id);
      return [...processesMatching(id), ...(existsSync(dir) ? [dir] : [])];
    },
    async terminate(alpineHome, id) {
      // The container host runs the runtime as a sandboxd process in the runtime's dir (its
      // cwd); a container's PID 1 is that same sandboxd (the entrypoint execs it).
      const dir = dirOf(alpineHome, id);
      const pids = pidsIn(dir);
      const sandboxd = pids.filter((pid) => isSandboxdCommand(cmdline(pid)));
      if (sandboxd.length !== 1) throw new Error(`expected one sandboxd in ${dir}, found ${sandboxd.length}`);
      process.kill(sandboxd[0]!, "SIGTERM");
      // The grace period: sandboxd has this long to save and exit, as before a platform's SIGKILL.
      await waitFor("sandboxd to exit after SIGTERM", async () => !alive(sandboxd[0]!), {
        timeoutMs: 60_000,
      }).catch(() => undefined);
      // Then the container is gone, with whatever still ran in it and its disk.
      for (const pid of [...pids, ...pidsIn(dir)]) if (alive(pid)) process.kill(pid, "SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
    async start(e, opts = {}) {
      const port = await freePort();
      e.env.ALPINE_SANDBOX_CONTROL_PLANE_URL = `http://127.0.0.1:${port}`;
      e.env.ALPINE_CONTROL_PLANE_TOKEN = CONTROL_PLANE_TOKEN;
      const vars = Object.entries(opts.vars ?? {}).flatMap(([k, v]) => ["--var", `${k}=${v}`]);
      const args = ["--verbose", "cloud", "dev", "--port", String(port), ...vars];
      dev = spawn(process.execPath, [CLI, ...args, "--json"], {
        cwd: e.cwd,
        env: { PATH: process.env.PATH, NO_COLOR: "1", ...e.env },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      let err = "";
      dev.stdout?.on("data", (d) => (out += d));
      dev.stderr?.on("data", (d) => {
        if (err.length < 100_000) err += d;
        for (const line of String(d).split("\n"))
          if (line.trim()) devTail.push(`${new Date().toISOString()} ${line}`);
        devTail.splice(0, Math.max(0, devTail.length - 200));
      });
      await waitFor(
        "alpine cloud dev",
        async () => {
          if (dev?.exitCode !== null) throw new Error(`alpine cloud dev exited: ${err}`);
          return out.includes('"url"');
        },
        { timeoutMs: 120_000 },
      );
      // Model credentials reach the control plane as `alpine auth sync` sends them (sealed there).
      const sync = await runCli(["auth", "sync", "--json"], { env: e.env, cwd: e.cwd });
      if (sync.code !== 0) throw new Error(`auth sync failed: ${sync.stdout}${sync.stderr}`);
    },
    diagnostics() {
      return `alpine cloud dev, last ${devTail.length} lines of stderr:\n${devTail.join("\n")}`;
    },
    async stop() {
      if (!dev || dev.exitCode !== null) return;
      const exited = new Promise((r) => dev?.once("exit", r));
      dev.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
      if (dev.exitCode === null) dev.kill("SIGKILL");
    },
  };
}

/** Pids of the processes whose working directory is dir or under it. */
function pidsIn(dir: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cwd = readlinkSync(`/proc/${entry}/cwd`);
      if (cwd === dir || cwd.startsWith(`${dir}/`)) out.push(Number(entry));
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return out;
}

const cmdline = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");
  } catch {
    return "";
  }
};

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** The control plane's token in the cloudflare e2e runs (a recognisable test value, scanned for leaks too). */
export const CONTROL_PLANE_TOKEN = "cp-E2ECONTROLPLANE0123456789abcdef";

/** How the suites reach each provider kind (a new kind needs its line here to be tested end to end). */
const UNDER_TEST: Record<ProviderKind, () => ProviderUnderTest> = {
  local: () => local,
  docker: dockerProvider,
  cloudflare: cloudflareProvider,
};

/** The provider a suite file runs against. */
export function providerUnderTest(kind: ProviderKind): ProviderUnderTest {
  return UNDER_TEST[kind]();
}
