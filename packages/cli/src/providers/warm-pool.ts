import { lstatSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { AlpineConfig, RuntimeSpec } from "@alpine/core";
import { thisHost } from "../context.ts";
import { sandboxDir } from "../paths.ts";
import type { IsolationOf } from "./isolation.ts";
import {
  localSandboxdConfig,
  notifyExtra,
  PID_FILE,
  sandboxdEntry,
  sandboxdEnv,
  stopSandboxd,
} from "./local-sandboxd.ts";
import * as pool from "./pool.ts";
import { ensureToken, readToken } from "./token-file.ts";

type Isolation = "bubblewrap" | "none";

/** How long a claimed warm runtime that is still coming up may take to listen. */
const LISTEN_TIMEOUT_MS = 20_000;

/**
 * The local provider's warm pool as a policy (pool.ts keeps its records on
 * disk): which warm runtime a launch may take, how it is adopted, and how the
 * pool is kept at `sandbox.warm_pool` runtimes after launches and by `gc`.
 */
export class WarmPool {
  constructor(
    private readonly home: string,
    /** The config `gc` keeps the pool for (a launch passes its own). */
    private readonly config: AlpineConfig,
    private readonly isolation: IsolationOf,
  ) {}

  /**
   * For a new sandbox, claims a warm runtime started the way this launch would start one; null
   * when the pool is off, the sandbox already has a dir, or no runtime matches. The bubblewrap
   * probe runs meanwhile and is not waited for when a runtime isolated with bubblewrap is there:
   * the probe only chooses between bubblewrap and none, and a runtime already running under
   * bubblewrap is never less isolated than what it would choose. One without isolation is taken
   * only once the probe has said that bubblewrap does not work here (or the config says none).
   */
  async claim(spec: RuntimeSpec): Promise<{ dir: string; id: string; isolation: Isolation } | null> {
    if (spec.config.sandbox.warm_pool <= 0 || pathExists(sandboxDir(this.home, spec.sandbox_id))) return null;
    const probed = this.isolation(spec.config);
    probed.catch(() => {}); // a failure is reported below, or by the start that follows
    const sandboxed = spec.config.sandbox.isolation !== "none";
    const take = async (isolation: Isolation) => {
      const entry = pool.claim(this.home, spec.sandbox_id, this.fingerprint(spec.config, isolation));
      return entry ? { dir: entry.dir, id: entry.id, isolation } : null;
    };
    if (sandboxed) {
      const claimed = await take("bubblewrap");
      if (claimed) return claimed;
    }
    const isolation = await probed;
    if (sandboxed && isolation === "bubblewrap") return null; // looked for above
    return take(isolation);
  }

  /**
   * Gives a claimed warm runtime in `dir` its identity and credentials (POST /v1/adopt); null when
   * it died before, and then it is stopped.
   */
  async adopt(
    dir: string,
    spec: RuntimeSpec,
    idleSuspend?: { after_ms: number },
  ): Promise<{ pid: number; port: number; url: string } | null> {
    const [{ SandboxdClient }, { nodeFetch }] = await Promise.all([
      import("@alpine/core"),
      import("../node-fetch.ts"),
    ]);
    // Claimed right after its refill, it may still be coming up: it listens within a moment.
    const deadline = Date.now() + LISTEN_TIMEOUT_MS;
    const spawned = Number(readFileSync(join(dir, PID_FILE), "utf8"));
    let listening = pool.listeningOf(dir);
    while (!listening && Date.now() < deadline && thisHost.isProcessAlive(spawned)) {
      await new Promise((r) => setTimeout(r, 25));
      listening = pool.listeningOf(dir);
    }
    if (!listening || !thisHost.isProcessAlive(listening.pid)) {
      await stopSandboxd(dir);
      return null;
    }
    const url = `http://127.0.0.1:${listening.port}`;
    const client = new SandboxdClient({
      baseUrl: url,
      token: readToken(dir),
      timeoutMs: 10_000,
      fetch: nodeFetch,
    });
    try {
      await client.adopt({
        sandbox_id: spec.sandbox_id,
        name: spec.name,
        auth: spec.auth,
        ...(idleSuspend ? { idle_suspend: idleSuspend } : {}),
        // Its notifications, as a cold start would get them (the warm one started without).
        ...notifyExtra(spec.config, this.home, spec.sandbox_id),
      });
    } catch (err) {
      await stopSandboxd(dir, listening.pid);
      throw err;
    }
    return { pid: listening.pid, port: listening.port, url };
  }

  private refillScheduled = false;

  /**
   * Tops the pool up when this process is done (after the launch printed its result), not
   * before: a warm OpenCode booting now would slow this launch down on a small machine.
   */
  refillAtExit(config: AlpineConfig): void {
    if (this.refillScheduled || config.sandbox.warm_pool <= 0) return;
    this.refillScheduled = true;
    process.once("beforeExit", () => {
      void this.maintain(config).catch((err: unknown) => {
        // The launch is done and succeeded; the next launch or `alpine gc` refills the pool.
        process.stderr.write(`warning: the warm pool was not refilled (${String(err)})\n`);
      });
    });
  }

  /**
   * Keeps the warm pool at sandbox.warm_pool runtimes of the current
   * fingerprint: removes dead, stale (other fingerprint), expired, excess and
   * orphaned ones, then starts the missing ones. Returns what it did. Run
   * after launches and by `alpine gc`; one process at a time (pool/.lock).
   */
  async maintain(config = this.config): Promise<{ removed: string[]; started: string[] }> {
    const home = this.home;
    const release = pool.tryPoolLock(home);
    if (!release) return { removed: [], started: [] };
    const removed: string[] = [];
    const started: string[] = [];
    try {
      const want = config.sandbox.warm_pool;
      const fingerprint = want > 0 ? this.fingerprint(config, await this.isolation(config)) : "";
      // sandboxd stops OpenCode on SIGTERM; whatever is left gets SIGKILL.
      const drop = async (e: pool.PoolEntry) => {
        await stopSandboxd(e.dir, e.pid);
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
      for (let i = kept; i < want; i++) started.push(await this.startOne(config, isolation, fingerprint));
      return { removed, started };
    } finally {
      release();
    }
  }

  /** Starts one warm runtime (no identity, no credentials); its id. */
  private async startOne(config: AlpineConfig, isolation: Isolation, fingerprint: string): Promise<string> {
    const id = pool.newPoolId();
    const dir = sandboxDir(this.home, id);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    ensureToken(dir);
    const entry = await pool.spawnWarm({
      home: this.home,
      id,
      entry: sandboxdEntry(),
      config: localSandboxdConfig({
        alpineHome: this.home,
        dir,
        sandbox: { sandbox_id: id, name: id, config },
        isolation,
        token: readToken(dir),
        extra: { warm: { idle_exit_ms: pool.WARM_IDLE_EXIT_MS } },
      }),
      env: sandboxdEnv(join(dir, "home")),
      fingerprint,
    });
    return entry.id;
  }

  /**
   * What a warm runtime must have been started with to be adopted by a
   * launch of this config: a hash of its sandboxd config without identity,
   * token and dirs, plus the sandboxd build and the environment it hands on.
   */
  private fingerprint(config: AlpineConfig, isolation: Isolation): string {
    const { sandbox_id, name, token, workspace_dir, home_dir, tmp_dir, log_file, checkpoint_dir, ...rest } =
      localSandboxdConfig({
        alpineHome: this.home,
        dir: "/",
        sandbox: { sandbox_id: "warm", name: "warm", config },
        isolation,
        token: "",
      });
    const entry = sandboxdEntry();
    let build = "";
    try {
      const st = statSync(entry);
      build = `${st.size}:${st.mtimeMs}`;
    } catch {
      // not built: nothing will match
    }
    return pool.fingerprintOf({ rest, entry, build, env: sandboxdEnv("/") });
  }
}

/** Whether a path exists, a dangling symlink included (a sandbox that once adopted a runtime). */
function pathExists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false; // lstat fails only when nothing is there (or it cannot be seen: then it is not ours)
  }
}
