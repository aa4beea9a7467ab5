import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { AlpineError } from "@alpine/core";
import type { ContainerHost } from "../cloud/container-host.ts";
import type { DevDocker } from "../cloud/dev-runtime.ts";
import { type Check, wranglerDryRun, wranglerRunner } from "../cloud/dry-run.ts";
import { parseJsonc, readWranglerConfig, type WranglerConfig } from "../cloud/wrangler-config.ts";
import type { Context } from "../context.ts";
import { printJson, stderrProgress } from "../output.ts";
import { imageDir, sandboxdEntry } from "../runtime-paths.ts";

const require = createRequire(import.meta.url);

/** packages/worker, where wrangler.jsonc and the Worker's sources are. */
export function workerDir(): string {
  return dirname(require.resolve("@alpine/worker/package.json"));
}

function wranglerBin(): string {
  try {
    return join(dirname(require.resolve("wrangler/package.json")), "bin", "wrangler.js");
  } catch {
    throw new AlpineError(
      "provider_unavailable",
      "wrangler is not installed (npm dependency of @alpine/worker)",
    );
  }
}

/** GitHub's front door: GITHUB_WEBHOOK_SECRET and the App's GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY of this environment, those that are set. */
function githubSecrets(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of ["GITHUB_WEBHOOK_SECRET", "GITHUB_APP_ID", "GITHUB_APP_PRIVATE_KEY"]) {
    const value = process.env[key];
    if (value) out[key] = value;
  }
  return out;
}

function controlPlaneToken(): string {
  const token = process.env.ALPINE_CONTROL_PLANE_TOKEN ?? "";
  if (token.length < 16) {
    throw new AlpineError(
      "config_invalid",
      "ALPINE_CONTROL_PLANE_TOKEN must be set in the environment (at least 16 characters), e.g. `export ALPINE_CONTROL_PLANE_TOKEN=$(openssl rand -hex 24)`",
      { key: "ALPINE_CONTROL_PLANE_TOKEN", allowed: "a random string of at least 16 characters" },
    );
  }
  return token;
}

/**
 * The environment of a wrangler child (`cloud deploy`: bundle, deploy, R2 bucket, secret put):
 * only what it needs. The control-plane token reaches `wrangler secret put` on its stdin.
 */
function wranglerEnv(base: string, extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: process.env.HOME ?? base,
    LANG: process.env.LANG ?? "C.UTF-8",
    // wrangler's own config, logs and caches stay under alpine's dir.
    XDG_CONFIG_HOME: join(base, "wrangler-config"),
    WRANGLER_LOG_PATH: join(base, "wrangler-logs"),
    WRANGLER_SEND_METRICS: "false",
    CLOUDFLARE_CF_FETCH_ENABLED: "false",
    NO_COLOR: "1",
    ...extra,
  };
  for (const key of [
    "CLOUDFLARE_API_TOKEN",
    "CLOUDFLARE_ACCOUNT_ID",
    // wrangler builds the container images with the user's Docker (dry run included).
    "DOCKER_HOST",
    "DOCKER_CONTEXT",
    "DOCKER_CONFIG",
    "DOCKER_CERT_PATH",
    "DOCKER_TLS_VERIFY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
  ]) {
    if (process.env[key] && extra[key] === undefined) env[key] = process.env[key];
  }
  return env;
}

/** `--var NAME=VALUE`: wrangler.jsonc's vars with these values instead (only vars it declares). */
export function withVars(config: WranglerConfig, given: readonly string[]): WranglerConfig {
  const vars = { ...(config.vars ?? {}) };
  for (const arg of given) {
    const m = /^([A-Z][A-Z0-9_]*)=(.*)$/s.exec(arg);
    if (!m) throw new AlpineError("usage_invalid", `--var expects NAME=VALUE, got '${arg}'`);
    if (!(m[1]! in vars)) {
      throw new AlpineError("usage_invalid", `--var ${m[1]}: wrangler.jsonc declares no such var`, {
        known: Object.keys(vars),
      });
    }
    vars[m[1]!] = m[2]!;
  }
  return { ...config, vars };
}

export async function cloudDevCommand(
  ctx: Context,
  opts: { port: number; containers?: "processes" | "docker"; var?: string[] },
): Promise<void> {
  const token = controlPlaneToken();
  const progress = stderrProgress(ctx.globals);
  const base = join(ctx.home, "cloud-dev");
  mkdirSync(base, { recursive: true, mode: 0o700 });
  const config = withVars(readWranglerConfig(workerDir()), opts.var ?? []);
  const { startDevRuntime } = await import("../cloud/dev-runtime.ts");
  const docker = opts.containers === "docker";
  let host: ContainerHost | null = null;
  let dockerOpts: DevDocker | undefined;
  if (docker) {
    const { devDocker } = await import("../cloud/dev-docker.ts");
    progress.step("checking the Docker daemon and the sandbox images");
    dockerOpts = await devDocker(config, ctx.config.sandbox.image_profiles);
  } else {
    // The dev control plane's sandboxes live apart from the local provider's (own sandboxes/ dir).
    const devCtx = Object.create(ctx, { home: { value: base } }) as Context;
    const [{ LocalProvider }, { startContainerHost }] = await Promise.all([
      import("../providers/local.ts"),
      import("../cloud/container-host.ts"),
    ]);
    progress.step("starting the container host (sandboxd processes on 127.0.0.1)");
    // As a Container is (src/providers/container.ts): a SIGTERM not sent by the control plane (a
    // rollout's, here a test's) makes sandboxd write and hold an exit checkpoint for it to copy.
    host = await startContainerHost({
      // Its disk is the runtime's, as a Container's: prepared environments reach R2 through the Worker.
      provider: new LocalProvider(devCtx, {
        exitCheckpoint: { hold_ms: 12 * 60_000 },
        preparedInRuntime: true,
      }),
    });
  }
  /** What runs the sandboxes: the container host's processes, or workerd's containers on Docker. */
  const closeHost = async () => {
    await host?.close();
    if (dockerOpts) {
      const { removeDevContainers } = await import("../cloud/dev-docker.ts");
      await removeDevContainers(dockerOpts.socketPath, config.name ?? "alpine-control-plane");
    }
  };
  const stateDir = join(base, "state");
  // The last lines of workerd's output, for the error when it fails to start or dies.
  const tail: string[] = [];
  const log = (line: string) => {
    tail.push(line);
    if (tail.length > 40) tail.shift();
    if (ctx.globals.verbose) process.stderr.write(`  workerd: ${line}\n`);
  };
  let runtime: Awaited<ReturnType<typeof startDevRuntime>>;
  try {
    progress.step(`starting workerd on http://127.0.0.1:${opts.port}`);
    runtime = await startDevRuntime({
      port: opts.port,
      stateDir,
      config,
      secrets: {
        ALPINE_CONTROL_PLANE_TOKEN: token,
        // GitHub's front door, when its secrets are in this environment (docs/cloudflare.md, "Tasks from GitHub").
        ...githubSecrets(),
        // Without a container host the Worker runs its production provider on `ctx.container`.
        ...(host ? { ALPINE_CONTAINER_HOST_URL: host.url, ALPINE_CONTAINER_HOST_TOKEN: host.token } : {}),
      },
      docker: dockerOpts,
      log,
      verbose: ctx.globals.verbose,
    });
  } catch (err) {
    await closeHost();
    if (err instanceof AlpineError) Object.assign(err.details, { output_tail: tail.slice(-15) });
    throw err;
  }
  const url = runtime.url;
  const out = {
    url,
    containers: docker ? ("docker" as const) : ("processes" as const),
    container_host: host?.url ?? null,
    docker_host: dockerOpts?.socketPath ?? null,
    state_dir: stateDir,
    pid: process.pid,
  };
  if (ctx.globals.json) printJson(out);
  else {
    const where = dockerOpts
      ? `containers started by workerd on ${dockerOpts.socketPath} (${Object.values(dockerOpts.images).join(", ")})`
      : `sandboxd processes under ${join(base, "sandboxes")}`;
    process.stdout.write(
      `alpine control plane (dev) on ${url}\n  Durable Objects and R2: ${out.state_dir}\n  sandboxes: ${where}\n  use it with sandbox.provider: cloudflare, sandbox.control_plane_url: ${url}\nCtrl-C stops it (and its sandboxes).\n`,
    );
  }
  await new Promise<void>((resolveDone) => {
    let stopping = false;
    const stopAll = () => {
      if (stopping) return;
      stopping = true;
      clearInterval(watch);
      // workerd first, so it starts no container while they are removed. Both are best effort:
      // the command is ending, and a failure of one must not keep the other from running.
      void runtime
        .dispose()
        .catch(() => {})
        .then(() => closeHost())
        .catch(() => {})
        .then(() => resolveDone());
    };
    process.once("SIGINT", stopAll);
    process.once("SIGTERM", stopAll);
    // Miniflare starts a new workerd on the same port when one dies (tested), but does not
    // report one it could not bring back: its port then keeps refusing connections. Three
    // refusals in a row (≥ 4 s, longer than a restart takes) end this command (exit 2) instead
    // of leaving a dead control plane up. A TCP connect only (no request in workerd's log); a
    // slow or busy workerd is not dead.
    let refused = 0;
    const { port } = new URL(url);
    const watch = setInterval(() => {
      const socket = connect({ host: "127.0.0.1", port: Number(port) });
      socket.once("connect", () => {
        refused = 0;
        socket.destroy();
      });
      socket.once("error", (err: NodeJS.ErrnoException) => {
        refused = err.code === "ECONNREFUSED" ? refused + 1 : 0;
        if (refused < 3 || stopping) return;
        process.stderr.write(`workerd stopped (${url} refuses connections)\n${tail.slice(-10).join("\n")}\n`);
        process.exitCode = 2;
        stopAll();
      });
    }, 2000);
  });
}

// ---------------------------------------------------------------------------
// deploy

/** Static checks of wrangler.jsonc against what the Worker's code expects. */
export function checkWranglerConfig(dir: string, config: WranglerConfig): Check[] {
  const checks: Check[] = [];
  const add = (name: string, ok: boolean, detail: string) => checks.push({ name, ok, detail });
  const bindings = new Map((config.durable_objects?.bindings ?? []).map((b) => [b.name, b.class_name]));
  const sqlite = new Set((config.migrations ?? []).flatMap((m) => m.new_sqlite_classes ?? []));
  for (const [binding, cls] of [
    ["SANDBOX", "SandboxObject"],
    ["REGISTRY", "RegistryObject"],
  ] as const) {
    add(
      `durable object ${binding}`,
      bindings.get(binding) === cls && sqlite.has(cls),
      bindings.get(binding) === cls
        ? sqlite.has(cls)
          ? `${cls}, SQLite storage`
          : `${cls} is not in a new_sqlite_classes migration (the StateStore needs SQLite)`
        : `binding ${binding} → ${cls} is missing`,
    );
  }
  let profiles: Record<string, string> = {};
  try {
    profiles = JSON.parse(config.vars?.CONTAINER_PROFILES ?? '{"default":"SANDBOX_CONTAINER"}');
    add(
      "CONTAINER_PROFILES",
      typeof profiles === "object" && "default" in profiles,
      JSON.stringify(profiles),
    );
  } catch {
    add("CONTAINER_PROFILES", false, "vars.CONTAINER_PROFILES is not JSON");
  }
  for (const [profile, binding] of Object.entries(profiles)) {
    const cls = bindings.get(binding);
    const container = (config.containers ?? []).find((c) => c.class_name === cls);
    if (!cls || !container) {
      add(`profile ${profile}`, false, `binding ${binding} has no Durable Object class with a container`);
      continue;
    }
    const types = ["lite", "basic", "standard-1", "standard-2", "standard-3", "standard-4"];
    const it = container.instance_type;
    const typeOk = it === undefined || (typeof it === "string" ? types.includes(it) : typeof it === "object");
    if (!typeOk || !(Number.isInteger(container.max_instances) && (container.max_instances ?? 0) > 0)) {
      add(
        `profile ${profile}`,
        false,
        `${cls}: instance_type must be one of ${types.join(", ")} (or {vcpu, memory_mib, disk_mb}) and max_instances a positive integer`,
      );
      continue;
    }
    const dockerfile = resolve(dir, container.image);
    const context = resolve(dir, container.image_build_context ?? dirname(container.image));
    add(
      `profile ${profile}`,
      sqlite.has(cls) && existsSync(dockerfile),
      `${cls}: ${container.instance_type ?? "default instance"} ×${container.max_instances ?? "?"}, image ${dockerfile}${existsSync(dockerfile) ? "" : " (missing)"}, context ${context}`,
    );
  }
  const r2 = (config.r2_buckets ?? []).find((b) => b.binding === "CHECKPOINTS");
  add("r2 bucket CHECKPOINTS", Boolean(r2), r2 ? r2.bucket_name : "binding CHECKPOINTS is missing");
  return checks;
}

/** The sandbox image's build context for wrangler: sandboxd's bundle and (possibly no) extra CAs. */
function assembleImageContext(target: string): void {
  const dist = dirname(sandboxdEntry());
  if (!existsSync(sandboxdEntry())) {
    throw new AlpineError("provider_unavailable", "sandboxd is not built; run `npm run build`");
  }
  rmSync(target, { recursive: true, force: true });
  mkdirSync(join(target, "sandboxd"), { recursive: true });
  mkdirSync(join(target, "certs"), { recursive: true });
  for (const f of readdirSync(dist).filter((f) => f.endsWith(".js")))
    copyFileSync(join(dist, f), join(target, "sandboxd", f));
  copyFileSync(join(imageDir(), "Dockerfile"), join(target, "Dockerfile"));
}

/** Whether a Docker daemon answers here (DOCKER_HOST and contexts as the user's own `docker`). */
async function dockerAnswers(): Promise<boolean> {
  const { docker } = await import("../providers/docker-cli.ts");
  try {
    const r = await docker(["version", "--format", "{{.Server.Version}}"], {
      reject: false,
      timeoutMs: 10_000,
    });
    return r.exitCode === 0 && r.stdout.trim() !== "";
  } catch {
    // No docker CLI, or no daemon behind it: the dry run then validates without building.
    return false;
  }
}

export async function cloudDeployCommand(ctx: Context, opts: { dryRun: boolean }): Promise<void> {
  const progress = stderrProgress(ctx.globals);
  const dir = workerDir();
  const configPath = join(dir, "wrangler.jsonc");
  const config = parseJsonc(readFileSync(configPath, "utf8")) as WranglerConfig;
  const checks = checkWranglerConfig(dir, config);
  const notChecked: string[] = [];
  const run = wranglerRunner(wranglerBin(), dir);
  const token = process.env.ALPINE_CONTROL_PLANE_TOKEN ?? "";
  checks.push({
    name: "ALPINE_CONTROL_PLANE_TOKEN",
    ok: token.length >= 16,
    detail: token.length >= 16 ? "set (at least 16 characters)" : "not set, or shorter than 16 characters",
  });
  const base = mkdtempSync(join(tmpdir(), "alpine-deploy-"));
  try {
    progress.step("assembling the sandbox image's build context");
    assembleImageContext(join(dir, ".image-context"));
    checks.push({ name: "image build context", ok: true, detail: join(dir, ".image-context") });
    const docker = await dockerAnswers();
    progress.step(
      docker
        ? "bundling the Worker and building the container images (wrangler deploy --dry-run)"
        : "bundling the Worker (wrangler deploy --dry-run, offline; no Docker, so no image build)",
    );
    const env = wranglerEnv(base, {});
    const dry = await wranglerDryRun({
      dir,
      config,
      env,
      outdir: join(base, "bundle"),
      run: wranglerRunner(wranglerBin(), dir),
      docker,
    });
    checks.push(...dry.checks);
    notChecked.push(...dry.notChecked);
    notChecked.push(
      "Cloudflare account, API token and workers.dev subdomain (needs the network)",
      "that the R2 bucket exists (created by a real deploy if missing)",
      "Containers availability on your plan (Workers Paid) and instance_type limits",
    );
    const failed = checks.filter((c) => !c.ok);
    if (opts.dryRun || failed.length > 0) {
      const out = {
        dry_run: opts.dryRun,
        ok: failed.length === 0,
        checks,
        not_checked: notChecked,
        deployed: false,
        url: null,
      };
      if (failed.length > 0) {
        // One JSON document: the error, with every check in its details.
        if (!ctx.globals.json) {
          for (const c of checks) process.stderr.write(`${c.ok ? "ok  " : "FAIL"} ${c.name}: ${c.detail}\n`);
        }
        throw new AlpineError(
          "config_invalid",
          `the deployment is not ready: ${failed.map((c) => c.name).join(", ")}`,
          {
            failed: failed.map((c) => ({ name: c.name, detail: c.detail })),
            checks,
            not_checked: notChecked,
          },
        );
      }
      if (ctx.globals.json) return printJson(out);
      for (const c of checks) process.stdout.write(`${c.ok ? "ok  " : "FAIL"} ${c.name}: ${c.detail}\n`);
      process.stdout.write(`not checked offline:\n${notChecked.map((n) => `  - ${n}`).join("\n")}\n`);
      return;
    }
    const cloudEnv = wranglerEnv(base, {});
    delete cloudEnv.CLOUDFLARE_CF_FETCH_ENABLED;
    if (!process.env.CLOUDFLARE_API_TOKEN) {
      throw new AlpineError(
        "config_invalid",
        "CLOUDFLARE_API_TOKEN is not set; create one with Workers, Durable Objects, R2 and Containers edit rights",
        { key: "CLOUDFLARE_API_TOKEN" },
      );
    }
    const bucket =
      config.r2_buckets?.find((b) => b.binding === "CHECKPOINTS")?.bucket_name ?? "alpine-checkpoints";
    progress.step(`creating R2 bucket ${bucket} (if missing)`);
    const r2 = await run(["r2", "bucket", "create", bucket], cloudEnv);
    if (r2.code !== 0 && !/already exists|already own/i.test(r2.output)) {
      throw new AlpineError("control_plane_error", `wrangler r2 bucket create failed`, {
        output: r2.output.slice(-2000),
      });
    }
    progress.step("wrangler deploy (builds and pushes the sandbox image)");
    const deployed = await run(["deploy", "--config", configPath], cloudEnv);
    if (deployed.code !== 0) {
      throw new AlpineError("control_plane_error", "wrangler deploy failed", {
        output: deployed.output.slice(-2000),
      });
    }
    progress.step("setting the ALPINE_CONTROL_PLANE_TOKEN secret");
    const secret = await run(
      ["secret", "put", "ALPINE_CONTROL_PLANE_TOKEN", "--config", configPath],
      cloudEnv,
      {
        input: token,
      },
    );
    if (secret.code !== 0) {
      throw new AlpineError("control_plane_error", "wrangler secret put failed", {
        output: secret.output.slice(-2000),
      });
    }
    const url = /https:\/\/\S+\.workers\.dev/.exec(deployed.output)?.[0] ?? null;
    const out = { dry_run: false, ok: true, checks, not_checked: [], deployed: true, url };
    if (ctx.globals.json) return printJson(out);
    process.stdout.write(
      `deployed${url ? ` to ${url}` : ""}\nnext: set sandbox.provider: cloudflare and sandbox.control_plane_url${url ? `: ${url}` : ""}, then \`alpine auth sync\`\n`,
    );
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
}
