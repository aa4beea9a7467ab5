import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type {
  Provider,
  ProviderCapabilities,
  RuntimeEndpoint,
  RuntimeHandle,
  RuntimeSpec,
  RuntimeStartIntent,
} from "@alpine/core";
import {
  AlpineError,
  declaredCapabilities,
  idleSuspendConfig,
  NO_ISOLATION_WARNING,
  requireHandle,
} from "@alpine/core";
import type { Context } from "../context.ts";
import { thisHost } from "../context.ts";
import { checkpointObjectPath } from "../store/checkpoint-paths.ts";
import { takeEarlySandboxd } from "./early-sandboxd.ts";
import { cachedIsolation, type IsolationOf, resolveIsolation } from "./isolation.ts";
import {
  localSandboxdConfig,
  notifyExtra,
  PID_FILE,
  RUNTIME_SUBDIRS,
  sandboxdEntry,
  sandboxdEnv,
  stopSandboxd,
} from "./local-sandboxd.ts";
import { resolveSandboxDir } from "./pool.ts";
import { awaitListeningLine } from "./sandboxd-start.ts";
import { ensureToken, readToken, tokenIfAny } from "./token-file.ts";
import type { WarmPool } from "./warm-pool.ts";

interface LocalHandle {
  dir: string;
  pid?: number;
  port?: number;
  url?: string;
  isolation?: "bubblewrap" | "none";
  /** Set by create() when the sandbox took a warm runtime from the pool; start() adopts it. */
  warm?: string;
}

const asLocal = (handle: RuntimeHandle) => requireHandle<LocalHandle>("local", handle, ["dir"]);

const START_TIMEOUT_MS = 20_000;

/**
 * The embedded default: sandboxd as a detached host process per sandbox under
 * $ALPINE_HOME/sandboxes/<id>/ (workspace, home, tmp, logs), on a free
 * 127.0.0.1 port; OpenCode runs under bubblewrap when it is available. New
 * sandboxes may adopt a runtime of the warm pool (warm-pool.ts).
 */
export class LocalProvider implements Provider {
  readonly kind = "local" as const;
  private readonly isolation: IsolationOf;
  private warmPool?: Promise<WarmPool>;

  constructor(
    private readonly ctx: Context,
    /**
     * sandboxd's `exit_checkpoint` (a SIGTERM it did not get from alpine writes and holds a
     * checkpoint): only for `alpine cloud dev`'s container host, which stands in for Containers.
     */
    private readonly opts: {
      exitCheckpoint?: { hold_ms: number };
      /**
       * Prepared environments in the runtime's own dir, as a Container's (`alpine cloud dev`: the
       * control plane moves them to and from R2), instead of the alpine home's shared store.
       */
      preparedInRuntime?: boolean;
    } = {},
  ) {
    this.isolation = cachedIsolation(ctx.home);
  }

  /** The warm pool, loaded on first use (a launch without one never loads its code). */
  private pool(): Promise<WarmPool> {
    this.warmPool ??= import("./warm-pool.ts").then(
      ({ WarmPool }) => new WarmPool(this.ctx.home, this.ctx.config, this.isolation),
    );
    return this.warmPool;
  }

  async capabilities(): Promise<ProviderCapabilities> {
    const isolation = await resolveIsolation(this.ctx.config, this.ctx.home, () => {});
    return { ...declaredCapabilities("local"), isolation };
  }

  async create(spec: RuntimeSpec): Promise<RuntimeHandle> {
    // A warm runtime's OpenCode started before its sandbox was known: its environment cannot get
    // the sandbox's secrets, so a sandbox with secrets starts its own.
    if (spec.config.sandbox.warm_pool > 0 && !spec.secrets?.length) {
      // A new sandbox takes a warm runtime if the pool has one started the way this launch would.
      const warm = await (await this.pool()).claim(spec);
      if (warm) return { dir: warm.dir, warm: warm.id, isolation: warm.isolation } satisfies LocalHandle;
    }
    // A sandbox that once adopted a warm runtime lives on at that runtime's path.
    const dir = resolveSandboxDir(this.ctx.home, spec.sandbox_id);
    for (const sub of RUNTIME_SUBDIRS) mkdirSync(join(dir, sub), { recursive: true, mode: 0o700 });
    ensureToken(dir);
    return { dir } satisfies LocalHandle;
  }

  async start(handle: RuntimeHandle, spec: RuntimeSpec, intent?: RuntimeStartIntent): Promise<RuntimeHandle> {
    const started = await this.startRuntime(handle, spec, intent);
    // Every start of an unconfined agent says so, whatever the config and however often.
    if (asLocal(started).isolation === "none")
      process.stderr.write(`warning: ${spec.name}: ${NO_ISOLATION_WARNING}\n`);
    return started;
  }

  private async startRuntime(
    handle: RuntimeHandle,
    spec: RuntimeSpec,
    intent?: RuntimeStartIntent,
  ): Promise<RuntimeHandle> {
    const h = asLocal(handle);
    // Whatever this launch does, the pool is topped up once it is over.
    if (spec.config.sandbox.warm_pool > 0) (await this.pool()).refillAtExit(spec.config);
    if (h.warm) {
      const adopted = await this.adoptWarm(h, spec).catch((err: unknown) => {
        // Never worse than a cold start: drop the warm runtime and start one here.
        process.stderr.write(`warning: could not adopt a warm runtime (${String(err)}); starting one\n`);
        return null;
      });
      if (adopted) return adopted;
    }
    return this.startSandboxd(h.dir, spec, intent);
  }

  private async adoptWarm(h: LocalHandle, spec: RuntimeSpec): Promise<RuntimeHandle | null> {
    const idleSuspend = this.opts.exitCheckpoint ? undefined : idleSuspendConfig(spec.config);
    const adopted = await (await this.pool()).adopt(h.dir, spec, idleSuspend);
    if (!adopted) return null;
    // The isolation it was started with (its fingerprint says so), not probed again.
    const isolation = h.isolation ?? (await this.isolation(spec.config));
    return { dir: h.dir, ...adopted, isolation } satisfies LocalHandle;
  }

  /** A new sandboxd in `dir`, its config (secrets included) over stdin; resolves once it listens. */
  private async startSandboxd(
    dir: string,
    spec: RuntimeSpec,
    intent?: RuntimeStartIntent,
  ): Promise<RuntimeHandle> {
    // sandboxd first: its Node start and module loading (≈100 ms) overlap the isolation probe
    // and the stale-sandboxd check below. Until its config arrives on stdin it does nothing; a
    // launcher killed before writing it closes that stdin, and sandboxd exits (invalid config).
    // The one `alpine launch` started before the CLI loaded is further along (early-sandboxd.ts).
    const child =
      takeEarlySandboxd(sandboxdEntry()) ??
      spawn(process.execPath, [sandboxdEntry()], {
        cwd: dir,
        detached: true,
        stdio: ["pipe", "pipe", "ignore"],
        env: sandboxdEnv(join(dir, "home")),
      });
    const exited = new Promise<number | null>((resolve) => {
      child.once("exit", resolve);
      child.once("error", () => resolve(null));
    });
    // A sandboxd that died early makes writing its config fail; `exited` reports it.
    child.stdin.on("error", () => {});
    let config: ReturnType<typeof localSandboxdConfig>;
    let isolation: "bubblewrap" | "none";
    try {
      const stale = (async () => {
        const token = readToken(dir);
        // A sandboxd of this dir nobody recorded (its launcher died) must not run beside the new
        // one. It is found through the pid file, so the new pid is written only after this.
        await stopSandboxd(dir);
        return token;
      })();
      const [resolved, token] = await Promise.all([this.isolation(spec.config), stale]);
      isolation = resolved;
      config = localSandboxdConfig({
        alpineHome: this.ctx.home,
        dir,
        sandbox: spec,
        isolation,
        token,
        auth: spec.auth,
        secrets: spec.secrets,
        ...(this.opts.preparedInRuntime ? { preparedDir: join(dir, "prepared") } : {}),
        // OpenCode starts at sandboxd's boot when the launch will init (never before a restore).
        extra: {
          ...(intent?.init_repo ? { prestart: { repo: intent.init_repo } } : {}),
          // A restore: OpenCode starts at boot on the checkpoint's data, read from the store.
          ...(intent?.restore_opencode_data
            ? {
                prestart_restore: {
                  opencode_data: {
                    ...intent.restore_opencode_data,
                    path: checkpointObjectPath(
                      join(this.ctx.home, "checkpoints"),
                      spec.sandbox_id,
                      intent.restore_opencode_data.sha256,
                    ),
                  },
                },
              }
            : {}),
          // `alpine cloud dev`'s container host stands in for Containers: its alarm suspends.
          ...(this.opts.exitCheckpoint
            ? { exit_checkpoint: this.opts.exitCheckpoint }
            : { idle_suspend: idleSuspendConfig(spec.config) }),
          ...notifyExtra(spec.config, this.ctx.home, spec.sandbox_id),
        },
      });
      if (!child.pid) throw new AlpineError("agent_start_failed", "cannot start sandboxd", {});
      writeFileSync(join(dir, PID_FILE), String(child.pid), { mode: 0o600 });
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
    return { dir, pid: listening.pid, port: listening.port, url, isolation } satisfies LocalHandle;
  }

  /** gc: the warm pool back to sandbox.warm_pool runtimes (none left when it is 0). */
  async collect(): Promise<{ removed: string[]; started: string[] }> {
    return (await this.pool()).maintain();
  }

  async endpoint(handle: RuntimeHandle): Promise<RuntimeEndpoint | null> {
    const h = asLocal(handle);
    if (!h.pid || !h.url || !thisHost.isProcessAlive(h.pid)) return null;
    const token = tokenIfAny(h.dir);
    return token === null ? null : { url: h.url, token };
  }

  async stop(handle: RuntimeHandle): Promise<void> {
    const h = asLocal(handle);
    await stopSandboxd(h.dir, h.pid);
  }

  async hasWorkspace(handle: RuntimeHandle): Promise<boolean> {
    // sandboxd writes .git/alpine.json when a clone or restore has finished: a workspace a
    // killed sandboxd left half-restored must be restored again, not taken for the real one.
    return existsSync(join(asLocal(handle).dir, "workspace", ".git", "alpine.json"));
  }

  async destroy(handle: RuntimeHandle): Promise<void> {
    await this.stop(handle);
    rmSync(asLocal(handle).dir, { recursive: true, force: true });
  }

  async logs(handle: RuntimeHandle, opts: { tail?: number } = {}): Promise<string[]> {
    const file = join(asLocal(handle).dir, "logs", "sandboxd.log");
    if (!existsSync(file)) return [];
    const lines = readFileSync(file, "utf8").split("\n").filter(Boolean);
    return lines.slice(-(opts.tail ?? 200));
  }
}
