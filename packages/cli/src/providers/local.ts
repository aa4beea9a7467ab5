import { spawn } from "node:child_process";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import {
  type AlpineConfig,
  AlpineError,
  type Provider,
  type ProviderCapabilities,
  type RuntimeEndpoint,
  type RuntimeHandle,
  type RuntimeSpec,
  type RuntimeStartIntent,
} from "@alpine/core";
import { PASS_THROUGH_ENV } from "@alpine/core/sandbox-env";
import type { Context } from "../context.ts";
import { thisHost } from "../context.ts";
import { sandboxDir } from "../paths.ts";
import { opencodeBinary as findOpencode, sandboxdEntry as findSandboxd } from "../runtime-paths.ts";
import { resolveIsolation } from "./isolation.ts";
import type { PoolEntry } from "./pool.ts";
import { awaitListeningLine } from "./sandboxd-start.ts";

interface LocalHandle {
  dir: string;
  pid?: number;
  port?: number;
  url?: string;
  isolation?: "bubblewrap" | "none";
  /** Set by create() when the sandbox took a warm runtime from the pool; start() adopts it. */
  warm?: string;
}

const START_TIMEOUT_MS = 20_000;

// Resolved once per process (a module resolution each, 1-3 ms): a pooled launch needs them for
// its fingerprint and again for the refill at exit.
let sandboxdPath: string | undefined;
let opencodePath: string | null | undefined;
const sandboxdEntry = (): string => (sandboxdPath ??= findSandboxd());
const opencodeBinary = (): string | null => {
  if (opencodePath === undefined) opencodePath = findOpencode();
  return opencodePath;
};

function sandboxdEnv(home: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    LANG: process.env.LANG ?? "C.UTF-8",
    HOME: home,
  };
  for (const key of PASS_THROUGH_ENV) if (process.env[key]) env[key] = process.env[key];
  return env;
}

const PID_FILE = "sandboxd.pid";

/**
 * The sandboxd processes of a sandbox dir: the handle's pid and the one in its pid file (written
 * at spawn, before the handle is stored: a launcher killed in between leaves only the file).
 * A pid counts only while /proc says it is a sandboxd working in that dir, so a reused pid
 * is never signalled.
 */
function sandboxdPids(h: LocalHandle): number[] {
  const pids = new Set<number>();
  if (h.pid) pids.add(h.pid);
  try {
    const fromFile = Number(readFileSync(join(h.dir, PID_FILE), "utf8").trim());
    if (Number.isInteger(fromFile) && fromFile > 0) pids.add(fromFile);
  } catch {
    // no pid file: never started, or started by an older alpine
  }
  const dirs = new Set([h.dir]);
  try {
    dirs.add(realpathSync(h.dir));
  } catch {
    // the dir is gone (destroyed); /proc shows its old path
  }
  return [...pids].filter((pid) => {
    if (!thisHost.isProcessAlive(pid)) return false;
    try {
      const cwd = readlinkSync(`/proc/${pid}/cwd`).replace(/ \(deleted\)$/, "");
      return dirs.has(cwd) && readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("sandboxd");
    } catch {
      // No /proc (not Linux): trust the handle's pid only, as before.
      return pid === h.pid;
    }
  });
}

function asLocal(handle: RuntimeHandle): LocalHandle {
  if (typeof handle.dir !== "string")
    throw new AlpineError("internal_error", "local runtime handle has no dir");
  return handle as unknown as LocalHandle;
}

/** Directories under the user's home that hold credentials; hidden from the agent under bubblewrap. */
function credentialDirs(alpineHome: string): string[] {
  const home = homedir();
  const candidates = [
    alpineHome,
    process.env.XDG_DATA_HOME
      ? join(process.env.XDG_DATA_HOME, "opencode")
      : join(home, ".local", "share", "opencode"),
    join(home, ".config", "opencode"),
    join(home, ".config", "gh"),
    join(home, ".ssh"),
    join(home, ".aws"),
    join(home, ".docker"),
  ];
  return [...new Set(candidates)].filter((p) => existsSync(p));
}

/**
 * The embedded default: sandboxd as a detached host process per sandbox under
 * $ALPINE_HOME/sandboxes/<id>/ (workspace, home, tmp, logs), on a free
 * 127.0.0.1 port; OpenCode runs under bubblewrap when it is available.
 */
export class LocalProvider implements Provider {
  readonly kind = "local" as const;

  constructor(private readonly ctx: Context) {}

  async capabilities(): Promise<ProviderCapabilities> {
    const isolation = await resolveIsolation(this.ctx.config, this.ctx.home, () => {});
    return { kind: "local", isolation, persistent_workspace: true };
  }

  async create(spec: RuntimeSpec): Promise<RuntimeHandle> {
    const home = this.ctx.home;
    const pool = await import("./pool.ts");
    if (spec.config.sandbox.warm_pool > 0 && !pathExists(sandboxDir(home, spec.sandbox_id))) {
      // A new sandbox: take a warm runtime if the pool has one started the way this launch would.
      const warm = await this.claimWarm(spec);
      if (warm)
        return { dir: warm.entry.dir, warm: warm.entry.id, isolation: warm.isolation } satisfies LocalHandle;
    }
    // A sandbox that once adopted a warm runtime lives on at that runtime's path.
    const dir = pool.resolveSandboxDir(home, spec.sandbox_id);
    for (const sub of ["workspace", "home", "tmp", "logs"])
      mkdirSync(join(dir, sub), { recursive: true, mode: 0o700 });
    const tokenFile = join(dir, "token");
    if (!existsSync(tokenFile)) {
      const token = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url");
      writeFileSync(tokenFile, token, { mode: 0o600 });
    }
    return { dir } satisfies LocalHandle;
  }

  async start(handle: RuntimeHandle, spec: RuntimeSpec, intent?: RuntimeStartIntent): Promise<RuntimeHandle> {
    const h = asLocal(handle);
    // Whatever this launch does, the pool is topped up once it is over (not before: a warm
    // OpenCode booting now would slow this launch down on a small machine).
    if (spec.config.sandbox.warm_pool > 0) this.refillAtExit(spec);
    if (h.warm) {
      const adopted = await this.adoptWarm(h, spec).catch((err: unknown) => {
        // Never worse than a cold start: drop the warm runtime and start one here.
        process.stderr.write(`warning: could not adopt a warm runtime (${String(err)}); starting one\n`);
        return null;
      });
      if (adopted) return adopted;
    }
    // sandboxd first: its Node start and module loading (≈100 ms) overlap the isolation probe
    // and the stale-sandboxd check below. Until its config arrives on stdin it does nothing; a
    // launcher killed before writing it closes that stdin, and sandboxd exits (invalid config).
    const child = spawn(process.execPath, [sandboxdEntry()], {
      cwd: h.dir,
      detached: true,
      stdio: ["pipe", "pipe", "ignore"],
      // sandboxd builds OpenCode's environment itself; it gets only the basics from ours (no tokens).
      env: sandboxdEnv(join(h.dir, "home")),
    });
    const exited = new Promise<number | null>((resolve) => {
      child.once("exit", resolve);
      child.once("error", () => resolve(null));
    });
    // A sandboxd that died early makes writing its config fail; `exited` reports it.
    child.stdin.on("error", () => {});
    let config: ReturnType<LocalProvider["sandboxdConfig"]> & { opencode: Record<string, unknown> };
    let isolation: "bubblewrap" | "none";
    try {
      const stale = (async () => {
        const token = readFileSync(join(h.dir, "token"), "utf8");
        // A sandboxd of this dir nobody recorded (its launcher died) must not run beside the new
        // one. It is found through the pid file, so the new pid is written only after this.
        await this.stop({ dir: h.dir });
        return token;
      })();
      const [resolved, token] = await Promise.all([this.isolation(spec.config), stale]);
      isolation = resolved;
      config = {
        ...this.sandboxdConfig(h.dir, spec, isolation, token),
        opencode: { model: spec.config.opencode.model, config: spec.config.opencode.config, auth: spec.auth },
        // OpenCode starts at sandboxd's boot when the launch will init (never before a restore).
        ...(intent?.init_repo ? { prestart: { repo: intent.init_repo } } : {}),
      };
      if (!child.pid) throw new AlpineError("agent_start_failed", "cannot start sandboxd", {});
      writeFileSync(join(h.dir, PID_FILE), String(child.pid), { mode: 0o600 });
    } catch (err) {
      child.kill("SIGKILL");
      throw err;
    }
    // Secrets travel over stdin, never argv, env or disk.
    child.stdin.end(JSON.stringify(config));
    const listening = await awaitListeningLine(child.stdout, {
      timeoutMs: START_TIMEOUT_MS,
      where: config.log_file,
      onTimeout: () => child.kill("SIGKILL"),
      exited,
    });
    child.stdout.destroy();
    child.unref();
    const url = `http://127.0.0.1:${listening.port}`;
    return { dir: h.dir, pid: listening.pid, port: listening.port, url, isolation } satisfies LocalHandle;
  }

  private readonly isolations = new Map<string, Promise<"bubblewrap" | "none">>();

  /**
   * What isolation a sandbox of this config gets: bubblewrap is probed once per process (a
   * `bwrap … true` run), not again for the fingerprint, the start and the refill.
   */
  private isolation(config: AlpineConfig): Promise<"bubblewrap" | "none"> {
    const wanted = config.sandbox.isolation;
    let resolved = this.isolations.get(wanted);
    if (!resolved) {
      resolved = resolveIsolation(config, this.ctx.home, (m) => process.stderr.write(`warning: ${m}\n`));
      // A failed probe (bubblewrap required but broken) is asked again next time.
      resolved.catch(() => this.isolations.delete(wanted));
      this.isolations.set(wanted, resolved);
    }
    return resolved;
  }

  /**
   * sandboxd's config for a runtime in `dir` (secrets included: it only ever
   * travels over sandboxd's stdin). The repo cache is the host's, shared by
   * every local sandbox.
   */
  private sandboxdConfig(
    dir: string,
    spec: Pick<RuntimeSpec, "sandbox_id" | "name" | "config">,
    isolation: "bubblewrap" | "none",
    token: string,
  ) {
    const opencode = opencodeBinary();
    if (!opencode) {
      throw new AlpineError(
        "provider_unavailable",
        "OpenCode is not installed (npm dependency opencode-ai)",
        {},
      );
    }
    return {
      sandbox_id: spec.sandbox_id,
      name: spec.name,
      token,
      host: "127.0.0.1",
      port: 0,
      workspace_dir: join(dir, "workspace"),
      home_dir: join(dir, "home"),
      tmp_dir: join(dir, "tmp"),
      log_file: join(dir, "logs", "sandboxd.log"),
      isolation,
      mask_paths: credentialDirs(this.ctx.home),
      opencode_bin: opencode,
      opencode: { model: spec.config.opencode.model, config: spec.config.opencode.config },
      branch_prefix: spec.config.github.branch_prefix,
      repo_cache_dir: join(this.ctx.home, "cache", "repos"),
    };
  }

  /**
   * What a warm runtime must have been started with to be adopted by this
   * launch: a hash of its sandboxd config without identity and token, plus
   * the sandboxd build and the environment it hands on.
   */
  private async warmFingerprint(spec: RuntimeSpec, isolation: "bubblewrap" | "none"): Promise<string> {
    const { fingerprintOf } = await import("./pool.ts");
    const { sandbox_id, name, token, workspace_dir, home_dir, tmp_dir, log_file, ...rest } =
      this.sandboxdConfig("/", spec, isolation, "");
    const entry = sandboxdEntry();
    let build = "";
    try {
      const st = statSync(entry);
      build = `${st.size}:${st.mtimeMs}`;
    } catch {
      // not built: nothing will match
    }
    return fingerprintOf({ rest, entry, build, env: sandboxdEnv("/") });
  }

  /**
   * Claims a warm runtime started the way this launch would start one. The bubblewrap probe
   * runs meanwhile and is not waited for when a runtime isolated with bubblewrap is there: the
   * probe only chooses between bubblewrap and none, and a runtime already running under
   * bubblewrap is never less isolated than what it would choose. One without isolation is taken
   * only once the probe has said that bubblewrap does not work here (or the config says none).
   */
  private async claimWarm(
    spec: RuntimeSpec,
  ): Promise<{ entry: PoolEntry; isolation: "bubblewrap" | "none" } | null> {
    const pool = await import("./pool.ts");
    const home = this.ctx.home;
    const probed = this.isolation(spec.config);
    probed.catch(() => {}); // a failure is reported below, or by the start that follows
    const sandboxed = spec.config.sandbox.isolation !== "none";
    if (sandboxed) {
      const entry = pool.claim(home, spec.sandbox_id, await this.warmFingerprint(spec, "bubblewrap"));
      if (entry) return { entry, isolation: "bubblewrap" };
    }
    const isolation = await probed;
    if (sandboxed && isolation === "bubblewrap") return null; // looked for above
    const entry = pool.claim(home, spec.sandbox_id, await this.warmFingerprint(spec, isolation));
    return entry ? { entry, isolation } : null;
  }

  /** Gives a claimed warm runtime its identity and credentials; null when it cannot be adopted. */
  private async adoptWarm(h: LocalHandle, spec: RuntimeSpec): Promise<RuntimeHandle | null> {
    const { listeningOf } = await import("./pool.ts");
    const [{ SandboxdClient }, { nodeFetch }] = await Promise.all([
      import("@alpine/core"),
      import("../node-fetch.ts"),
    ]);
    // Claimed right after its refill, it may still be coming up: it listens within a moment.
    const deadline = Date.now() + START_TIMEOUT_MS;
    const spawned = Number(readFileSync(join(h.dir, PID_FILE), "utf8"));
    let listening = listeningOf(h.dir);
    while (!listening && Date.now() < deadline && thisHost.isProcessAlive(spawned)) {
      await new Promise((r) => setTimeout(r, 25));
      listening = listeningOf(h.dir);
    }
    if (!listening || !thisHost.isProcessAlive(listening.pid)) {
      await this.stop({ dir: h.dir });
      return null;
    }
    const token = readFileSync(join(h.dir, "token"), "utf8");
    const url = `http://127.0.0.1:${listening.port}`;
    const client = new SandboxdClient({ baseUrl: url, token, timeoutMs: 10_000, fetch: nodeFetch });
    try {
      await client.adopt({ sandbox_id: spec.sandbox_id, name: spec.name, auth: spec.auth });
    } catch (err) {
      await this.stop({ dir: h.dir, pid: listening.pid });
      throw err;
    }
    // The isolation it was started with (its fingerprint says so), not probed again.
    const isolation = h.isolation ?? (await this.isolation(spec.config));
    return { dir: h.dir, pid: listening.pid, port: listening.port, url, isolation } satisfies LocalHandle;
  }

  private refillScheduled = false;

  /** Tops the pool up when this process is done (after the launch printed its result). */
  private refillAtExit(spec: RuntimeSpec): void {
    if (this.refillScheduled) return;
    this.refillScheduled = true;
    process.once("beforeExit", () => {
      void this.maintainPool(spec).catch(() => {});
    });
  }

  /**
   * Keeps the warm pool at sandbox.warm_pool runtimes of the current
   * fingerprint: removes dead, stale (other fingerprint), expired, excess and
   * orphaned ones, then starts the missing ones. Returns what it did. Run
   * after launches and by `alpine gc`; one process at a time (pool/.lock).
   */
  async maintainPool(spec?: Pick<RuntimeSpec, "config">): Promise<{ removed: string[]; started: string[] }> {
    const pool = await import("./pool.ts");
    const home = this.ctx.home;
    const config = spec?.config ?? this.ctx.config;
    const release = pool.tryPoolLock(home);
    if (!release) return { removed: [], started: [] };
    const removed: string[] = [];
    const started: string[] = [];
    try {
      const want = config.sandbox.warm_pool;
      const probe = { sandbox_id: "warm", name: "warm", config, auth: {}, image: "" } as RuntimeSpec;
      const fingerprint = want > 0 ? await this.warmFingerprint(probe, await this.isolation(config)) : "";
      // sandboxd stops OpenCode on SIGTERM; whatever is left gets SIGKILL (stop()).
      const drop = async (e: PoolEntry) => {
        await this.stop({ dir: e.dir, pid: e.pid });
        pool.removeRuntime(home, e);
        removed.push(e.id);
      };
      for (const e of pool.orphanClaims(home)) await drop(e);
      let kept = 0;
      for (const e of pool.listPool(home)) {
        const wanted = e.fingerprint === fingerprint && !pool.expiring(e) && pool.entryAlive(e);
        if (wanted && kept < want) kept++;
        // Taken first, so a launch claiming it at this moment cannot get it half-removed.
        else if (pool.take(home, e)) await drop(e);
      }
      if (kept >= want) return { removed, started };
      const isolation = await this.isolation(config);
      for (let i = kept; i < want; i++) {
        const id = pool.newPoolId();
        const dir = sandboxDir(home, id);
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        const token = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url");
        writeFileSync(join(dir, "token"), token, { mode: 0o600 });
        const entry = await pool.spawnWarm({
          home,
          id,
          entry: sandboxdEntry(),
          config: {
            ...this.sandboxdConfig(dir, { sandbox_id: id, name: id, config }, isolation, token),
            warm: { idle_exit_ms: pool.WARM_IDLE_EXIT_MS },
          },
          env: sandboxdEnv(join(dir, "home")),
          fingerprint,
        });
        started.push(entry.id);
      }
      return { removed, started };
    } finally {
      release();
    }
  }

  /** gc: the warm pool back to sandbox.warm_pool runtimes (none left when it is 0). */
  collect(): Promise<{ removed: string[]; started: string[] }> {
    return this.maintainPool();
  }

  async endpoint(handle: RuntimeHandle): Promise<RuntimeEndpoint | null> {
    const h = asLocal(handle);
    if (!h.pid || !h.url || !thisHost.isProcessAlive(h.pid)) return null;
    const tokenFile = join(h.dir, "token");
    if (!existsSync(tokenFile)) return null;
    return { url: h.url, token: readFileSync(tokenFile, "utf8") };
  }

  async stop(handle: RuntimeHandle): Promise<void> {
    const pids = sandboxdPids(asLocal(handle));
    if (pids.length === 0) return;
    const signalGroup = (pid: number, signal: NodeJS.Signals) => {
      try {
        // sandboxd leads its own process group (detached), so this reaches OpenCode too.
        process.kill(-pid, signal);
      } catch {
        try {
          process.kill(pid, signal);
        } catch {
          // already gone
        }
      }
    };
    for (const pid of pids) signalGroup(pid, "SIGTERM");
    const alive = () => pids.filter((pid) => thisHost.isProcessAlive(pid));
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline && alive().length > 0) await new Promise((r) => setTimeout(r, 50));
    for (const pid of alive()) signalGroup(pid, "SIGKILL");
  }

  async hasWorkspace(handle: RuntimeHandle): Promise<boolean> {
    // sandboxd writes .git/alpine.json when a clone or restore has finished: a workspace a
    // killed sandboxd left half-restored must be restored again, not taken for the real one.
    return existsSync(join(asLocal(handle).dir, "workspace", ".git", "alpine.json"));
  }

  async destroy(handle: RuntimeHandle): Promise<void> {
    const h = asLocal(handle);
    await this.stop(handle);
    rmSync(h.dir, { recursive: true, force: true });
  }

  async logs(handle: RuntimeHandle, opts: { tail?: number } = {}): Promise<string[]> {
    const file = join(asLocal(handle).dir, "logs", "sandboxd.log");
    if (!existsSync(file)) return [];
    const lines = readFileSync(file, "utf8").split("\n").filter(Boolean);
    return lines.slice(-(opts.tail ?? 200));
  }
}

/** Whether a path exists, a dangling symlink included (a sandbox that once adopted a runtime). */
function pathExists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}
