/**
 * sandboxd: the one process in every sandbox. Reads its config (secrets
 * included) as one JSON object on stdin, listens, writes exactly one line on
 * stdout ({"event":"listening","port":N,"pid":P}), then logs to log_file (and
 * stderr too with log_stderr: in a container).
 */
import { dirname } from "node:path";
import { AlpineError, toAlpineError } from "@alpine/core/errors";
import { validateName } from "@alpine/core/names";
import { PASS_THROUGH_ENV } from "@alpine/core/sandbox-env";
import {
  type CheckpointManifestData,
  type SandboxdConfig,
  SandboxdConfigSchema,
} from "@alpine/core/sandboxd-api";
import { Auth } from "./auth.ts";
import { checkpointDirOf } from "./checkpoint.ts";
import { IdleSuspend } from "./idle-suspend.ts";
import { Logger } from "./log.ts";
import { Sandbox } from "./sandbox.ts";
import { holdForCollection, writeExitCheckpoint } from "./sandbox-checkpoint.ts";
import { prestartRestore } from "./sandbox-restore.ts";
import { createApi } from "./server.ts";

// The parent may close our stdout/stderr at any time; a write must never kill us.
process.stdout.on("error", () => {});
process.stderr.on("error", () => {});

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

function fatal(err: AlpineError, log?: Logger): never {
  log?.error("sandboxd cannot start", { error: err.toJSON() });
  process.stdout.write(JSON.stringify({ event: "error", error: err.toJSON() }) + "\n");
  process.stderr.write(`sandboxd: ${err.message}\n`);
  process.exit(1);
}

function parseConfig(text: string): SandboxdConfig {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new AlpineError("config_invalid", "sandboxd expects one JSON object on stdin");
  }
  const parsed = SandboxdConfigSchema.safeParse(value);
  if (!parsed.success) {
    throw new AlpineError("config_invalid", "sandboxd config is invalid", {
      issues: parsed.error.issues.map((i) => ({ path: i.path.join("."), message: i.message })),
    });
  }
  validateName(parsed.data.name);
  checkpointDirOf(parsed.data);
  return parsed.data;
}

/** Every string under a key that looks secret (apiKey, token, password…), for log redaction. */
function secretStrings(value: unknown, all: boolean, out: string[] = []): string[] {
  if (typeof value === "string") {
    if (all) out.push(value);
  } else if (Array.isArray(value)) {
    for (const v of value) secretStrings(v, all, out);
  } else if (value && typeof value === "object") {
    for (const [k, v] of Object.entries(value))
      secretStrings(v, all || /key|token|secret|password|auth/i.test(k), out);
  }
  return out;
}

async function main(): Promise<void> {
  let config: SandboxdConfig;
  try {
    config = parseConfig(await readStdin());
  } catch (err) {
    fatal(toAlpineError(err));
  }
  // Started by `alpine launch` before its sandbox was known (packages/cli/bin/early-sandboxd.js):
  // the home and working dir a provider's spawn gives sandboxd come from the config instead.
  if (process.env.ALPINE_SANDBOXD_EARLY === "1") {
    delete process.env.ALPINE_SANDBOXD_EARLY;
    process.env.HOME = config.home_dir;
    process.chdir(dirname(config.workspace_dir));
  }
  const log = new Logger(config.log_file, { component: "sandboxd" }, config.log_stderr ?? false);
  log.addSecret(config.token);
  for (const s of secretStrings(config.opencode.auth, true)) log.addSecret(s);
  for (const s of secretStrings(config.opencode.config, false)) log.addSecret(s);
  for (const s of config.secrets ?? []) if (s.value) log.addSecret(s.value);
  // A proxy URL may carry a password.
  for (const v of Object.values(config.env ?? {})) if (v.includes("@")) log.addSecret(v);

  // Only the names the host may hand on (proxies, npm registry); OpenCode's env is built from ours.
  for (const name of PASS_THROUGH_ENV) {
    const value = config.env?.[name];
    if (value) process.env[name] = value;
  }
  const sandbox = new Sandbox(config, log);
  const auth = new Auth(config.token, config.sandbox_id);
  // OpenCode's ≈1 s boot overlaps the rest of ours and the launcher's init request.
  if (config.prestart && !config.warm) sandbox.prestart(config.prestart.repo);
  // The same for a restore: OpenCode starts on the checkpoint's data while the workspace comes back.
  if (config.prestart_restore && !config.prestart && !config.warm)
    prestartRestore(sandbox, config.prestart_restore.opencode_data);

  let stopping = false;
  let exitCheckpoint: CheckpointManifestData | null = null;
  const shutdown = async (why: string) => {
    if (stopping) return;
    stopping = true;
    log.info("shutting down", { why });
    // A signal from the platform (a rollout replacing the container) would lose the disk: save
    // unsaved work first and keep the API up until the control plane has copied it.
    if (why === "SIGTERM" && config.exit_checkpoint) await saveBeforeExit(config.exit_checkpoint.hold_ms);
    server.close();
    try {
      await sandbox.shutdown();
    } catch (err) {
      log.error("shutdown failed", { error: String(err) });
    }
    server.closeAllConnections();
    log.info("stopped");
    process.exit(0);
  };
  const saveBeforeExit = async (holdMs: number) => {
    try {
      exitCheckpoint = await writeExitCheckpoint(sandbox);
      if (!exitCheckpoint) return;
      const id = exitCheckpoint.checkpoint_id;
      log.info("exit checkpoint written; held for the control plane", { checkpoint_id: id, hold_ms: holdMs });
      const taken = await holdForCollection(sandbox, id, holdMs);
      log.info(taken ? "exit checkpoint taken" : "exit checkpoint not taken in time", { checkpoint_id: id });
    } catch (err) {
      log.error("exit checkpoint failed", { error: toAlpineError(err).toJSON() });
    }
  };
  const idle = new IdleSuspend(sandbox, log, () => void shutdown("idle"));
  idle.configure(config.idle_suspend?.after_ms ?? null);
  const server = createApi({
    sandbox,
    auth,
    log,
    onShutdown: () => void shutdown("api"),
    exitCheckpoint: () => exitCheckpoint,
    idle,
  });

  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
  process.on("uncaughtException", (err) =>
    log.error("uncaught exception", { error: String(err.stack ?? err) }),
  );
  process.on("unhandledRejection", (err) => log.error("unhandled rejection", { error: String(err) }));

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(config.port, config.host, () => resolve());
  }).catch((err: Error) => {
    fatal(
      new AlpineError(
        "provider_unavailable",
        `sandboxd cannot listen on ${config.host}:${config.port}: ${err.message}`,
      ),
      log,
    );
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : config.port;
  log.info("listening", {
    port,
    pid: process.pid,
    sandbox_id: config.sandbox_id,
    name: config.name,
    isolation: config.isolation,
    workspace_dir: config.workspace_dir,
  });
  process.stdout.write(JSON.stringify({ event: "listening", port, pid: process.pid }) + "\n");
  if (config.warm) {
    // A warm-pool runtime: OpenCode boots now; one nobody adopts goes away by itself.
    sandbox.warmStart();
    setTimeout(() => {
      if (!sandbox.adopted) void shutdown("warm sandboxd was not adopted in time");
    }, config.warm.idle_exit_ms).unref();
  }
}

void main();
