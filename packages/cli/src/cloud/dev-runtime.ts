import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { AlpineError } from "@alpine/core";
import { Log, LogLevel, Miniflare, type MiniflareOptions } from "miniflare";
import { controlPlaneBundle } from "../runtime-paths.ts";
import type { WranglerConfig } from "./wrangler-config.ts";

/**
 * `alpine cloud dev`'s control plane: the Worker bundle (built by `npm run build`
 * from packages/worker) served by one workerd process through Miniflare, with
 * Durable Objects (SQLite) and R2 persisted under `stateDir`.
 *
 * Why not `wrangler dev`: that is a development loop for the Worker's own code.
 * It puts a second workerd in front (a proxy Durable Object that queues every
 * request while it rebuilds), an inspector proxy and file watchers; a request
 * through it occasionally never got an answer on a loaded machine (CI: a plain
 * GET the Worker answers without I/O waited 20 s). alpine's dev control plane
 * serves requests and nothing else, so it runs the Worker directly.
 */
export interface DevRuntimeOptions {
  port: number;
  /** Where Durable Objects and R2 persist (wrangler's `--persist-to` layout: <stateDir>/v3/{do,r2}). */
  stateDir: string;
  config: WranglerConfig;
  /** Secret bindings (never in argv or a file: Miniflare hands workerd its config on stdin). */
  secrets: Record<string, string>;
  /** Where Miniflare's and the Worker's log lines go (never stdout: `cloud dev --json` owns it). */
  log: (line: string) => void;
  verbose: boolean;
  /**
   * Run the container classes as real containers: workerd's own local container support,
   * backed by this Docker daemon. Absent: they run as plain Durable Objects (no `ctx.container`)
   * and the Worker's dev provider goes to the container host named in `secrets`.
   */
  docker?: DevDocker;
}

export interface DevDocker {
  /** The daemon's unix socket, e.g. unix:///var/run/docker.sock. */
  socketPath: string;
  /** Container class → the image its containers start (the sandbox image of that class's profile). */
  images: Record<string, string>;
  /** workerd's networking sidecar image (Miniflare's default, cloudflare/proxy-everything, when unset). */
  egressImage?: string;
}

export interface DevRuntime {
  url: string;
  dispose(): Promise<void>;
}

/**
 * Miniflare options from wrangler.jsonc: the bindings `wrangler dev` gives, with the container
 * classes either bound to their images on a Docker daemon (`opts.docker`) or, without it, as
 * plain Durable Objects (`wrangler dev --enable-containers=false`).
 */
export function miniflareOptions(
  opts: Omit<DevRuntimeOptions, "log" | "verbose">,
  script: string,
): MiniflareOptions {
  const c = opts.config;
  const sqlite = new Set((c.migrations ?? []).flatMap((m) => m.new_sqlite_classes ?? []));
  const containerClasses = new Set((c.containers ?? []).map((k) => k.class_name));
  const imageOf = (cls: string) => {
    if (!opts.docker || !containerClasses.has(cls)) return undefined;
    const imageName = opts.docker.images[cls];
    if (!imageName)
      throw new AlpineError("image_profile_unknown", `no sandbox image for container class ${cls}`);
    return { imageName };
  };
  const durableObjects = Object.fromEntries(
    (c.durable_objects?.bindings ?? []).map((b) => {
      const container = imageOf(b.class_name);
      return [
        b.name,
        { className: b.class_name, useSQLite: sqlite.has(b.class_name), ...(container ? { container } : {}) },
      ];
    }),
  );
  const r2Buckets = Object.fromEntries((c.r2_buckets ?? []).map((b) => [b.binding, b.bucket_name]));
  return {
    host: "127.0.0.1",
    port: opts.port,
    name: c.name ?? "alpine-control-plane",
    modules: true,
    scriptPath: script,
    // Module names are paths relative to this root; the default (the cwd) may not contain the bundle.
    modulesRoot: dirname(script),
    compatibilityDate: c.compatibility_date,
    compatibilityFlags: c.compatibility_flags ?? [],
    durableObjects,
    // workerd starts, signals and removes the containers through the daemon's API and reaches
    // their ports through its networking sidecar (docs/cloudflare.md, "Running it locally").
    ...(opts.docker
      ? {
          containerEngine: {
            localDocker: {
              socketPath: opts.docker.socketPath,
              ...(opts.docker.egressImage
                ? { containerEgressInterceptorImage: opts.docker.egressImage }
                : {}),
            },
          },
        }
      : {}),
    r2Buckets,
    bindings: { ...(c.vars ?? {}), ...opts.secrets },
    defaultPersistRoot: join(opts.stateDir, "v3"),
    durableObjectsPersist: true,
    r2Persist: true,
    // No `cf` object fetched from the network.
    cf: false,
  };
}

/** Miniflare's own log, to our sink instead of stdout. */
class SinkLog extends Log {
  constructor(
    level: LogLevel,
    private readonly sink: (line: string) => void,
  ) {
    super(level);
  }
  protected override log(message: string): void {
    for (const line of message.split("\n")) if (line.trim()) this.sink(line);
  }
}

export async function startDevRuntime(opts: DevRuntimeOptions): Promise<DevRuntime> {
  const script = controlPlaneBundle();
  if (!existsSync(script)) {
    throw new AlpineError(
      "provider_unavailable",
      "the control plane's Worker is not built; run `npm run build`",
    );
  }
  const lines = (stream: NodeJS.ReadableStream) => {
    let rest = "";
    stream.on("data", (d: Buffer) => {
      const parts = (rest + d.toString()).split("\n");
      rest = parts.pop() ?? "";
      for (const p of parts) if (p.trim()) opts.log(p);
    });
  };
  const mf = new Miniflare({
    ...miniflareOptions(opts, script),
    log: new SinkLog(opts.verbose ? LogLevel.INFO : LogLevel.WARN, opts.log),
    // The Worker's console and workerd's own messages.
    handleRuntimeStdio(stdout: NodeJS.ReadableStream, stderr: NodeJS.ReadableStream) {
      lines(stdout);
      lines(stderr);
    },
  });
  try {
    const ready = await mf.ready;
    return { url: ready.origin, dispose: () => mf.dispose() };
  } catch (err) {
    // The start failure is what to report; a dispose failing after it adds nothing.
    await mf.dispose().catch(() => {});
    throw new AlpineError("provider_unavailable", `workerd did not start: ${String(err)}`);
  }
}
