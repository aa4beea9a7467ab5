import { type ChildProcess, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
  createReadStream,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import {
  cacheKeyFiles,
  DEVCONTAINER_PATH,
  type Devcontainer,
  type EffectiveEnvironment,
  type PreparedManifest,
  parseDevcontainer,
  preparationKeyInput,
  resolveEnvironment,
  shellQuote,
} from "@alpine/core/environment";
import { AlpineError } from "@alpine/core/errors";
import type { EnvironmentStatus, SandboxdConfig, ServiceStatus } from "@alpine/core/sandboxd-api";
import { type Logger, lineSplitter } from "./log.ts";
import { environmentScript } from "./opencode-env.ts";
import { run } from "./proc.ts";

/**
 * The repo's environment inside sandboxd (docs/environments.md): reads the
 * devcontainer after the clone, runs setup confined like the agent (or
 * restores a prepared environment from the cache), supervises the start
 * commands.
 */

type Confine = (
  shell: string,
  network: "egress" | "host",
  env: Record<string, string>,
) => { cmd: string; args: string[]; env: Record<string, string> };

const TAIL_LINES = 20;
const SERVICE_BACKOFF_MIN_MS = 500;
const SERVICE_BACKOFF_MAX_MS = 30_000;
const SERVICE_STABLE_MS = 30_000;
/** OpenCode's own dirs in the sandbox's home: never part of a preparation (sessions, auth.json). */
const HOME_EXCLUDES = [
  ".local/share/opencode",
  ".local/state/opencode",
  ".config/opencode",
  ".cache/opencode",
  // Written from the environment in effect at every start, never restored stale.
  ".alpine-environment.sh",
];
const ARTIFACTS = ["workspace.tar.gz", "home.tar.gz"] as const;

async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest("hex");
}

/** Reads the devcontainer of a checked-out workspace (null when there is none). */
export function readDevcontainer(workspace: string): Devcontainer | null {
  const path = join(workspace, DEVCONTAINER_PATH);
  if (!existsSync(path)) return null;
  return parseDevcontainer(readFileSync(path, "utf8"));
}

/** The environment in effect: the devcontainer's with alpine's config over it (empty lists: not set). */
export function effectiveEnvironment(config: SandboxdConfig, workspace: string): EffectiveEnvironment {
  const e = config.environment;
  const section = e
    ? {
        ...(e.setup.length ? { setup: e.setup } : {}),
        ...(e.start.length ? { start: e.start } : {}),
        ...(Object.keys(e.env).length ? { env: e.env } : {}),
        ...(e.ports.length ? { ports: e.ports } : {}),
        ...(config.secrets?.length ? { secrets: config.secrets.map((s) => s.name) } : {}),
        ...(config.prepared?.key_files ? { cache_key_files: config.prepared.key_files } : {}),
      }
    : undefined;
  return resolveEnvironment(readDevcontainer(workspace), section);
}

/** One start command: restarted with backoff when it fails, left alone when it exits 0. */
class Service {
  state: ServiceStatus["state"] = "stopped";
  restarts = 0;
  lastExit: number | null = null;
  startedAt: Date | null = null;
  private child: ChildProcess | null = null;
  private stopping = false;
  private backoff = SERVICE_BACKOFF_MIN_MS;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    readonly command: string,
    private readonly spawnIt: () => ChildProcess,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.stopping = false;
    const child = this.spawnIt();
    this.child = child;
    this.state = "running";
    this.startedAt = new Date();
    const onLine = (stream: string) => (line: string) =>
      this.log.info("service", {
        source: "service",
        command: this.command,
        stream,
        line: line.slice(0, 4000),
      });
    const out = lineSplitter(onLine("stdout"));
    const err = lineSplitter(onLine("stderr"));
    child.stdout?.on("data", (d) => out.push(d));
    child.stderr?.on("data", (d) => err.push(d));
    child.on("error", (e) =>
      this.log.warn("service could not start", { command: this.command, error: String(e) }),
    );
    child.on("close", (code, sig) => {
      out.end();
      err.end();
      if (this.child !== child) return;
      this.child = null;
      this.lastExit = code ?? (sig ? 128 : 1);
      const ranMs = Date.now() - (this.startedAt?.getTime() ?? Date.now());
      if (this.stopping) {
        this.state = "stopped";
        return;
      }
      if (code === 0) {
        this.state = "exited";
        this.log.info("service exited", { command: this.command, code });
        return;
      }
      if (ranMs > SERVICE_STABLE_MS) this.backoff = SERVICE_BACKOFF_MIN_MS;
      this.state = "restarting";
      this.log.warn("service exited; restarting", {
        command: this.command,
        code,
        signal: sig,
        in_ms: this.backoff,
      });
      this.timer = setTimeout(() => {
        this.timer = null;
        if (this.stopping) return;
        this.restarts++;
        this.start();
      }, this.backoff);
      this.backoff = Math.min(this.backoff * 2, SERVICE_BACKOFF_MAX_MS);
    });
  }

  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const child = this.child;
    if (!child?.pid) {
      this.state = "stopped";
      return;
    }
    const closed = new Promise<void>((resolve) => child.once("close", () => resolve()));
    const kill = (sig: NodeJS.Signals) => {
      try {
        process.kill(-(child.pid as number), sig);
      } catch {
        // The group is gone already.
      }
    };
    kill("SIGTERM");
    const timer = setTimeout(() => kill("SIGKILL"), 3000);
    await closed;
    clearTimeout(timer);
    this.state = "stopped";
  }

  status(): ServiceStatus {
    return {
      command: this.command,
      state: this.state,
      pid: this.pid,
      restarts: this.restarts,
      last_exit_code: this.lastExit,
      started_at: this.startedAt?.toISOString() ?? null,
    };
  }
}

export class SandboxEnvironment {
  effective: EffectiveEnvironment | null = null;
  private setupState: EnvironmentStatus["setup"]["state"] = "pending";
  private key: string | null = null;
  private ms: number | null = null;
  private cacheNote: string | null = null;
  private services: Service[] = [];
  /** Where sandboxd records which preparation the workspace holds (its own dir, beside the workspace). */
  private readonly markerFile: string;

  constructor(
    private readonly config: SandboxdConfig,
    private readonly log: Logger,
    private readonly confine: Confine,
  ) {
    this.markerFile = join(dirname(config.workspace_dir), "environment.json");
    for (const s of config.secrets ?? []) log.addSecret(s.value);
  }

  /** Variables of setup and start: the environment's, then every secret (docs/environments.md). */
  private commandEnv(): Record<string, string> {
    const env: Record<string, string> = { ...(this.effective?.env ?? {}) };
    for (const s of this.config.secrets ?? []) env[s.name] = s.value;
    return env;
  }

  /** Reads the environment in effect from the checked-out workspace; its notices are logged once. */
  load(): EffectiveEnvironment {
    const eff = effectiveEnvironment(this.config, this.config.workspace_dir);
    this.effective = eff;
    for (const n of eff.notices) this.log.warn("environment", { notice: n });
    // The agent's shells read the variables from here (BASH_ENV; OpenCode started before they were known).
    const lines = Object.entries(eff.env).map(([k, v]) => `export ${k}=${shellQuote(v)}`);
    mkdirSync(this.config.home_dir, { recursive: true, mode: 0o700 });
    writeFileSync(environmentScript(this.config.home_dir), `${lines.join("\n")}\n`, { mode: 0o600 });
    return eff;
  }

  /** The cache key: image + setup commands + content of the key files (sha256). */
  private async computeKey(
    eff: EffectiveEnvironment,
    repo: string,
  ): Promise<{ key: string; files: string[] }> {
    const ws = this.config.workspace_dir;
    const files = cacheKeyFiles(eff, (p) => existsSync(join(ws, p)));
    const hashed = await Promise.all(
      files.map(async (path) => ({
        path,
        sha256: existsSync(join(ws, path)) ? await sha256File(join(ws, path)) : null,
      })),
    );
    const input = preparationKeyInput({
      repo,
      image: this.config.prepared?.image ?? "unknown",
      setup: eff.setup,
      files: hashed,
    });
    return { key: createHash("sha256").update(input).digest("hex"), files };
  }

  /**
   * Before the agent's first task: nothing to do, skipped, already done for
   * this workspace, restored from a prepared environment, or setup run (then
   * saved). Throws setup_failed with the output's tail.
   */
  async prepare(repo: string, skip: boolean, emit: (line: string) => void): Promise<void> {
    const eff = this.effective ?? this.load();
    if (eff.setup.length === 0) {
      this.setupState = "none";
      return;
    }
    if (skip) {
      this.setupState = "skipped";
      this.log.info("setup skipped (--skip-setup)");
      return;
    }
    const t0 = Date.now();
    const { key, files } = await this.computeKey(eff, repo);
    this.key = key;
    if (this.markerKey() === key) {
      this.setupState = "ran";
      this.log.info("setup already done for this workspace", { key });
      return;
    }
    const dir = this.config.prepared?.dir;
    if (dir) {
      const restored = await this.restorePrepared(dir, key);
      if (restored) {
        this.setupState = "restored";
        this.ms = Date.now() - t0;
        this.writeMarker(key);
        emit(`restored the prepared environment ${key.slice(0, 12)} (setup not run)`);
        return;
      }
      // A damaged preparation (e.g. a corrupt R2 object on Cloudflare) is said in the launch's progress too.
      if (this.cacheNote?.startsWith("prepared environment unusable")) emit(`warning: ${this.cacheNote}`);
    } else {
      this.cacheNote = "this provider keeps no prepared environments";
    }
    this.setupState = "running";
    for (const command of eff.setup) await this.runSetup(command, emit);
    this.setupState = "ran";
    this.ms = Date.now() - t0;
    this.writeMarker(key);
    this.log.info("setup done", { ms: this.ms, key });
    if (dir) await this.savePrepared(dir, key, repo, eff, files);
  }

  private markerKey(): string | null {
    try {
      return (JSON.parse(readFileSync(this.markerFile, "utf8")) as { key?: string }).key ?? null;
    } catch {
      return null; // none yet (a new workspace)
    }
  }

  private writeMarker(key: string): void {
    writeFileSync(this.markerFile, JSON.stringify({ key, at: new Date().toISOString() }), { mode: 0o600 });
  }

  private runSetup(command: string, emit: (line: string) => void): Promise<void> {
    const c = this.confine(command, "egress", this.commandEnv());
    this.log.info("setup", { source: "setup", command });
    emit(`$ ${command}`);
    const tail: string[] = [];
    return new Promise((resolve, reject) => {
      const child = spawn(c.cmd, c.args, {
        cwd: this.config.workspace_dir,
        env: c.env,
        stdio: ["ignore", "pipe", "pipe"],
        detached: true,
      });
      const onLine = (stream: string) => (raw: string) => {
        const line = this.log.redact(raw.slice(0, 4000));
        this.log.info("setup", { source: "setup", stream, line });
        tail.push(line);
        if (tail.length > TAIL_LINES) tail.shift();
        emit(line);
      };
      const out = lineSplitter(onLine("stdout"));
      const err = lineSplitter(onLine("stderr"));
      child.stdout.on("data", (d) => out.push(d));
      child.stderr.on("data", (d) => err.push(d));
      child.on("error", (e) => reject(new AlpineError("setup_failed", `setup could not run: ${e.message}`)));
      child.on("close", (code, sig) => {
        out.end();
        err.end();
        if (code === 0) return resolve();
        this.setupState = "failed";
        const exit = code ?? 128;
        this.log.error("setup failed", { command, exit_code: exit, signal: sig });
        reject(
          new AlpineError(
            "setup_failed",
            `setup command \`${command}\` exited with ${exit}${tail.length ? `; its last lines:\n${tail.join("\n")}` : ""}`,
            { command, exit_code: exit, tail },
          ),
        );
      });
    });
  }

  /** The workspace's ignored paths (git's view), at most directory granularity. */
  private async ignoredPaths(): Promise<string[]> {
    const r = await run(
      "git",
      ["ls-files", "--others", "--ignored", "--exclude-standard", "--directory", "-z"],
      {
        cwd: this.config.workspace_dir,
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: this.config.home_dir },
      },
    );
    if (r.code !== 0) throw new Error(`git ls-files: ${r.stderr.trim()}`);
    return r.stdout
      .split("\0")
      .filter(Boolean)
      .map((p) => p.replace(/\/$/, ""));
  }

  /** Every secret value sandboxd holds: none may be in a preparation. */
  private secretValues(): string[] {
    return (this.config.secrets ?? []).map((s) => s.value).filter((v) => v.length >= 6);
  }

  /**
   * Saves what setup produced under `<dir>/<key>/` (atomic rename of a temp
   * dir): the workspace's ignored paths and the home (without OpenCode's
   * dirs), each a tar.gz, their sha256 in manifest.json. A preparation that
   * holds a secret's value is not saved. Never fails the launch.
   */
  private async savePrepared(
    dir: string,
    key: string,
    repo: string,
    eff: EffectiveEnvironment,
    files: string[],
  ) {
    const tmp = join(dir, `.tmp-${randomBytes(6).toString("hex")}`);
    try {
      mkdirSync(tmp, { recursive: true, mode: 0o700 });
      const paths = await this.ignoredPaths();
      const wsTar = join(tmp, "workspace.tar.gz");
      const homeTar = join(tmp, "home.tar.gz");
      await tar(["-czf", wsTar, "-C", this.config.workspace_dir, "--null", "-T", "-"], paths.join("\0"));
      const excludes = HOME_EXCLUDES.map((e) => `--exclude=./${e}`);
      await tar(["-czf", homeTar, ...excludes, "-C", this.config.home_dir, "."]);
      for (const name of ARTIFACTS) {
        const found = await containsAny(join(tmp, name), this.secretValues());
        if (found) {
          this.cacheNote = `not saved: ${name} held the value of a secret`;
          this.log.warn("prepared environment not saved: it held a secret's value", { artifact: name });
          rmSync(tmp, { recursive: true, force: true });
          return;
        }
      }
      const manifest: PreparedManifest = {
        schema_version: 1,
        key,
        repo,
        image: this.config.prepared?.image ?? "unknown",
        setup: eff.setup,
        key_files: files,
        created_at: new Date().toISOString(),
        paths,
        artifacts: await Promise.all(
          ARTIFACTS.map(async (name) => ({
            name,
            sha256: await sha256File(join(tmp, name)),
            bytes: statSync(join(tmp, name)).size,
          })),
        ),
      };
      writeFileSync(join(tmp, "manifest.json"), JSON.stringify(manifest, null, 2), { mode: 0o600 });
      const final = join(dir, key);
      // Another sandbox saved the same key meanwhile: theirs is as good as ours.
      if (existsSync(final)) rmSync(tmp, { recursive: true, force: true });
      else renameSync(tmp, final);
      this.log.info("prepared environment saved", { key, paths: paths.length });
    } catch (err) {
      this.cacheNote = `not saved: ${String((err as Error).message ?? err)}`;
      this.log.warn("prepared environment not saved", { error: String((err as Error).message ?? err) });
      rmSync(tmp, { recursive: true, force: true });
    }
  }

  /** Restores `<dir>/<key>` after checking every artifact's sha256; a damaged one is removed. */
  private async restorePrepared(dir: string, key: string): Promise<boolean> {
    const entry = join(dir, key);
    let manifest: PreparedManifest;
    try {
      manifest = JSON.parse(readFileSync(join(entry, "manifest.json"), "utf8")) as PreparedManifest;
    } catch {
      this.cacheNote = "no prepared environment for this key";
      return false;
    }
    try {
      for (const a of manifest.artifacts) {
        const got = await sha256File(join(entry, a.name));
        if (got !== a.sha256) throw new Error(`${a.name}: sha256 ${got} is not the manifest's ${a.sha256}`);
      }
      await tar(["-xzf", join(entry, "workspace.tar.gz"), "-C", this.config.workspace_dir]);
      await tar(["-xzf", join(entry, "home.tar.gz"), "-C", this.config.home_dir]);
      const now = new Date();
      // Last use, for `alpine gc` (prunes the ones unused longest).
      utimesSync(join(entry, "manifest.json"), now, now);
      this.log.info("prepared environment restored", { key });
      this.cacheNote = null;
      return true;
    } catch (err) {
      this.cacheNote = `prepared environment unusable, setup runs: ${String((err as Error).message ?? err)}`;
      this.log.warn("prepared environment unusable; removing it", { key, error: String(err) });
      rmSync(entry, { recursive: true, force: true });
      return false;
    }
  }

  /** Starts the start commands (every start and resume); they share sandboxd's loopback. */
  startServices(): void {
    const eff = this.effective ?? this.load();
    if (this.services.length) return;
    this.services = eff.start.map(
      (command) =>
        new Service(
          command,
          () => {
            const c = this.confine(command, "host", this.commandEnv());
            return spawn(c.cmd, c.args, {
              cwd: this.config.workspace_dir,
              env: c.env,
              stdio: ["ignore", "pipe", "pipe"],
              detached: true,
            });
          },
          this.log,
        ),
    );
    for (const s of this.services) {
      this.log.info("starting service", { command: s.command });
      s.start();
    }
  }

  /** The running start commands' processes (previews: they serve on sandboxd's loopback). */
  servicePids(): number[] {
    return this.services.map((s) => s.pid).filter((pid): pid is number => pid !== null);
  }

  async stopServices(): Promise<void> {
    await Promise.all(this.services.map((s) => s.stop()));
  }

  status(): EnvironmentStatus | undefined {
    if (!this.effective) return undefined;
    return {
      effective: this.effective,
      setup: { state: this.setupState, key: this.key, ms: this.ms, cache_note: this.cacheNote },
      services: this.services.map((s) => s.status()),
    };
  }
}

function tar(args: string[], stdin?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn("tar", args, { stdio: ["pipe", "ignore", "pipe"] });
    let err = "";
    child.stderr.on("data", (d) => {
      err += d;
    });
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0
        ? resolve()
        : reject(new Error(`tar ${args[0]} exited ${code}: ${err.trim().slice(0, 500)}`)),
    );
    child.stdin.end(stdin ?? "");
  });
}

/** Whether the uncompressed content of a .tar.gz holds any of `needles` (streamed, across chunk edges). */
function containsAny(file: string, needles: string[]): Promise<boolean> {
  if (needles.length === 0) return Promise.resolve(false);
  const keep = Math.max(...needles.map((n) => Buffer.byteLength(n))) - 1;
  const bufs = needles.map((n) => Buffer.from(n));
  return new Promise((resolve, reject) => {
    const child = spawn("gzip", ["-dc", file], { stdio: ["ignore", "pipe", "ignore"] });
    let carry = Buffer.alloc(0);
    let found = false;
    child.stdout.on("data", (d: Buffer) => {
      if (found) return;
      const window = Buffer.concat([carry, d]);
      if (bufs.some((b) => window.includes(b))) {
        found = true;
        child.kill();
        return;
      }
      carry = window.subarray(Math.max(0, window.length - keep));
    });
    child.on("error", reject);
    child.on("close", () => resolve(found));
  });
}
