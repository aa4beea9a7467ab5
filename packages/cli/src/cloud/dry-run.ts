import { spawn } from "node:child_process";
import { existsSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { WranglerConfig } from "./wrangler-config.ts";

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

const stripAnsi = (s: string) => s.replace(/\u001b\[[0-9;]*m/g, "");

/** The last meaningful lines of wrangler's output, for a failed check's detail. */
export const outputTail = (output: string, lines = 8) =>
  stripAnsi(output)
    .trim()
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .slice(-lines)
    .join(" | ");

/** Runs wrangler (a Node script) with args; resolves with its exit code and merged output. */
export type WranglerRunner = (
  args: string[],
  env: NodeJS.ProcessEnv,
  opts?: { input?: string; cwd?: string },
) => Promise<{ code: number; output: string }>;

export function wranglerRunner(bin: string, defaultCwd: string): WranglerRunner {
  return (args, env, opts = {}) =>
    new Promise((resolveRun, reject) => {
      const child = spawn(process.execPath, [bin, ...args], {
        cwd: opts.cwd ?? defaultCwd,
        env,
        stdio: ["pipe", "pipe", "pipe"],
      });
      let output = "";
      child.stdout.on("data", (d) => (output += d));
      child.stderr.on("data", (d) => (output += d));
      child.once("error", reject);
      child.stdin.end(opts.input ?? "");
      child.once("exit", (code) => resolveRun({ code: code ?? -1, output }));
    });
}

/**
 * `wrangler deploy --dry-run` of the config as it will be deployed, `containers` included,
 * so wrangler validates that block too (class names bound to Durable Objects, instance types,
 * image paths). With a Docker daemon wrangler also builds every image, as the real deploy
 * will; without one it is told `--containers-rollout=none`, which still validates the block
 * but builds nothing, and the image build is reported as not checked.
 *
 * The copy is written next to the original (relative image paths resolve as they do for it),
 * with `main` made absolute, and removed afterwards.
 */
export async function wranglerDryRun(opts: {
  dir: string;
  config: WranglerConfig;
  env: NodeJS.ProcessEnv;
  outdir: string;
  run: WranglerRunner;
  /** Whether a Docker daemon answers (then the images are built). */
  docker: boolean;
}): Promise<{ checks: Check[]; notChecked: string[] }> {
  const { dir, config } = opts;
  const dryConfig = join(dir, `.wrangler-dry-run-${process.pid}.json`);
  writeFileSync(dryConfig, JSON.stringify({ ...config, main: resolve(dir, config.main ?? "src/index.ts") }));
  const args = ["deploy", "--dry-run", "--outdir", opts.outdir, "--config", dryConfig];
  if (!opts.docker) args.push("--containers-rollout=none");
  const dry = await opts.run(args, opts.env).finally(() => rmSync(dryConfig, { force: true }));
  const bundle = join(opts.outdir, "index.js");
  const ok = dry.code === 0 && existsSync(bundle);
  const containers = config.containers ?? [];
  const checks: Check[] = [
    {
      name: "worker bundle",
      ok,
      detail: ok
        ? `${(statSync(bundle).size / 1024).toFixed(0)} KiB, bindings and the containers block (${containers.length} ${containers.length === 1 ? "class" : "classes"}) checked by wrangler`
        : outputTail(dry.output),
    },
  ];
  const notChecked: string[] = [];
  if (opts.docker) {
    checks.push({
      name: "container images",
      ok,
      detail: ok
        ? `built with Docker by wrangler (${containers.map((c) => c.class_name).join(", ")})`
        : "not built: the dry run failed (see worker bundle)",
    });
  } else {
    notChecked.push(
      "the container image build (no Docker daemon answers here: wrangler validated the containers block but built no image; with Docker the dry run builds them)",
    );
  }
  return { checks, notChecked };
}
