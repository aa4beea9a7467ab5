// Shared pieces of the reliability suite: the CLI's fault-hook test bundle, runners for the
// production and the test CLI, a recorder of rows for docs/reliability.md, and process checks.
import { type ChildProcess, spawn } from "node:child_process";
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createConnection } from "node:net";
import { join } from "node:path";
import { build } from "esbuild";
import { CLI, type CliResult, ROOT } from "../helpers/cli.ts";
import { filesUnder } from "../helpers/files.ts";
import { isSandboxdCommand } from "../helpers/procs.ts";

export { CLI, ROOT };

const CACHE = join(ROOT, "node_modules", ".cache", "alpine-test", `reliability-${process.pid}`);
const BANNER = {
  js: "import { createRequire as __alpineCreateRequire } from 'node:module'; const require = __alpineCreateRequire(import.meta.url);",
};
let built: Promise<{ prod: string; faults: string }> | undefined;

/**
 * Private bundles of the CLI and sandboxd, built from the sources like scripts/build.mjs does,
 * under node_modules/.cache (one set per test process, removed at exit):
 *
 *   node_modules/@alpine/sandboxd/dist/   sandboxd + its git credential helper (found by the CLI's
 *                                         require.resolve before the workspace package)
 *   cli-prod/alpine.js                    `__ALPINE_FAULTS__ = false`, as `npm ci` builds it
 *   cli-faults/alpine.js                  `__ALPINE_FAULTS__ = true`: honours ALPINE_FAULT_AT /
 *                                         ALPINE_FAULT_ACTION (packages/cli/src/faults.ts)
 *
 * Private, so a `npm run build` elsewhere (which empties packages/<name>/dist) cannot pull the
 * ground from under a running test; opencode-ai and better-sqlite3 resolve from the repo.
 */
export function buildClis(): Promise<{ prod: string; faults: string }> {
  built ??= (async () => {
    rmSync(CACHE, { recursive: true, force: true });
    process.once("exit", () => rmSync(CACHE, { recursive: true, force: true }));
    // Test workers are not always let to run their exit handlers: clear bundles of dead ones.
    const parent = join(CACHE, "..");
    for (const d of existsSync(parent) ? readdirSync(parent) : []) {
      const pid = Number(/^(?:reliability|cli-faults)-(\d+)$/.exec(d)?.[1]);
      if (!pid || pid === process.pid) continue;
      try {
        process.kill(pid, 0);
      } catch {
        rmSync(join(parent, d), { recursive: true, force: true });
      }
    }
    const common = {
      bundle: true,
      platform: "node" as const,
      target: "node22",
      format: "esm" as const,
      logLevel: "warning" as const,
      external: ["better-sqlite3", "opencode-ai", "playwright-core"],
      banner: BANNER,
    };
    const sandboxd = join(CACHE, "node_modules", "@alpine", "sandboxd");
    mkdirSync(sandboxd, { recursive: true });
    writeFileSync(
      join(sandboxd, "package.json"),
      JSON.stringify({
        name: "@alpine/sandboxd",
        type: "module",
        exports: { "./package.json": "./package.json" },
      }),
    );
    const cli = (define: string, dir: string) =>
      build({
        ...common,
        entryPoints: { alpine: join(ROOT, "packages/cli/src/main.ts") },
        outdir: join(CACHE, dir),
        splitting: true,
        chunkNames: "chunks/[name]-[hash]",
        define: { __ALPINE_FAULTS__: define },
      });
    await Promise.all([
      build({
        ...common,
        entryPoints: {
          sandboxd: join(ROOT, "packages/sandboxd/src/main.ts"),
        },
        outdir: join(sandboxd, "dist"),
      }),
      cli("false", "cli-prod"),
      cli("true", "cli-faults"),
    ]);
    return { prod: join(CACHE, "cli-prod", "alpine.js"), faults: join(CACHE, "cli-faults", "alpine.js") };
  })();
  return built;
}

/** The CLI with the fault hook (see buildClis). */
export async function buildFaultCli(): Promise<string> {
  return (await buildClis()).faults;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** The CLI entry to run; default: the private production bundle (see buildClis). */
  bin?: string;
  timeoutMs?: number;
}

function childEnv(env: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: process.env.HOME, NO_COLOR: "1", ...env };
}

function result(code: number, stdout: string, stderr: string): CliResult {
  return {
    code,
    stdout,
    stderr,
    json: () => {
      try {
        return JSON.parse(stdout);
      } catch {
        throw new Error(`not JSON (exit ${code}): ${stdout}\nstderr: ${stderr}`);
      }
    },
  };
}

/** Runs the CLI to its end. */
export async function run(args: string[], opts: RunOptions = {}): Promise<CliResult> {
  const bin = opts.bin ?? (await buildClis()).prod;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], {
      cwd: opts.cwd ?? ROOT,
      env: childEnv(opts.env),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`alpine ${args.join(" ")} timed out\n${stderr}`));
    }, opts.timeoutMs ?? 120_000);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      resolve(result(code ?? (signal ? 128 : -1), stdout, stderr));
    });
  });
}

export interface Interrupted {
  /** The step the process reached (from its marker line). */
  step: string;
  /** When the SIGKILL was sent (ms since the epoch). */
  killedAt: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the fault bundle with ALPINE_FAULT_AT=step (pause), waits until the process reports
 * that it reached the step, and SIGKILLs it from outside. Fails if it ends without reaching it.
 */
export async function killAt(step: string, args: string[], opts: RunOptions = {}): Promise<Interrupted> {
  const bin = opts.bin ?? (await buildFaultCli());
  const child: ChildProcess = spawn(process.execPath, [bin, ...args], {
    cwd: opts.cwd ?? ROOT,
    env: childEnv({ ...opts.env, ALPINE_FAULT_AT: step, ALPINE_FAULT_ACTION: "pause" }),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d) => (stdout += d));
  const exited = new Promise<NodeJS.Signals | null>((resolve) =>
    child.once("exit", (_code, signal) => resolve(signal)),
  );
  const reached = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), opts.timeoutMs ?? 90_000);
    child.stderr!.on("data", (d) => {
      stderr += d;
      if (stderr.includes(`ALPINE_FAULT_REACHED ${step} `)) {
        clearTimeout(timer);
        resolve(true);
      }
    });
    child.once("exit", () => {
      clearTimeout(timer);
      resolve(stderr.includes(`ALPINE_FAULT_REACHED ${step} `));
    });
  });
  const killedAt = Date.now();
  child.kill("SIGKILL");
  const signal = await exited;
  if (!reached) {
    throw new Error(`alpine ${args.join(" ")} never reached ${step}\nstdout: ${stdout}\nstderr: ${stderr}`);
  }
  return { step, killedAt, signal, stdout, stderr };
}

// ---------------------------------------------------------------------------
// Rows for docs/reliability.md (scripts/gen-reliability.mjs reads them).

export const RESULTS_DIR = join(ROOT, "test-results", "reliability");

export type Row =
  | {
      kind: "fault";
      fault: string;
      what_happened: string;
      lost: string;
      recovery_ms: number | null;
      recovery: string;
    }
  | { kind: "input"; surface: string; input: string; reason_code: string; outcome: string }
  | { kind: "auth"; target: string; credential: string; outcome: string }
  | { kind: "race"; round: string; processes: number; outcomes: string; events: string }
  | { kind: "secret"; scanned: string; items: number; hits: number }
  | {
      kind: "hostile";
      provider: string;
      attempt: string;
      command: string;
      /** What the agent got, shortened, secrets redacted. */
      got: string;
      verdict: string;
      /** A planted canary or secret was in what the agent got (only for an attempt marked as a known gap). */
      leaked: boolean;
    };

/**
 * Collects one test file's rows in test-results/reliability/<suite>.<pid>.jsonl. The tree may be
 * shared by several runs at once, so each run writes its own file; files of runs whose process
 * is gone are removed, and scripts/gen-reliability.mjs takes each suite's newest run.
 */
export function recorder(suite: string) {
  mkdirSync(RESULTS_DIR, { recursive: true });
  for (const f of readdirSync(RESULTS_DIR)) {
    const m = /^(.+)\.(\d+)\.jsonl$/.exec(f) ?? /^(.+)\.jsonl$/.exec(f);
    if (!m || m[1] !== suite) continue;
    const pid = Number(m[2]);
    let alive = false;
    try {
      if (pid) process.kill(pid, 0);
      alive = pid > 0;
    } catch {
      alive = false;
    }
    if (!alive || pid === process.pid) rmSync(join(RESULTS_DIR, f), { force: true });
  }
  const file = join(RESULTS_DIR, `${suite}.${process.pid}.jsonl`);
  writeFileSync(file, "");
  const started = new Date().toISOString();
  return (row: Row) => {
    appendFileSync(
      file,
      `${JSON.stringify({ suite, run: started, at: new Date().toISOString(), ...row })}\n`,
    );
  };
}

/** Shows a hostile value in the doc: control characters escaped, long values shortened. */
export function show(value: string, max = 60): string {
  const escaped = value.replace(
    /[\u0000-\u001f\u007f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
  return escaped.length > max ? `${escaped.slice(0, max - 12)}… (${value.length} chars)` : escaped;
}

// ---------------------------------------------------------------------------
// Secret scans.

/** Files under dir (symlinks not followed) whose bytes contain a secret, except those `allow` names. */
export function secretHits(dir: string, secrets: string[], allow: (path: string) => boolean = () => false) {
  const hits: { path: string; secret: string }[] = [];
  for (const path of filesUnder(dir)) {
    if (allow(path)) continue;
    const bytes = readFileSync(path);
    for (const s of secrets) if (bytes.includes(s)) hits.push({ path, secret: s.slice(0, 8) });
  }
  return hits;
}

// ---------------------------------------------------------------------------
// Processes and ports.

export interface Proc {
  pid: number;
  cmd: string;
  cwd: string;
}

/** Every process whose working directory or command line is under `dir` (e.g. an ALPINE_HOME). */
export function processesUnder(dir: string): Proc[] {
  const out: Proc[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    let cmd = "";
    let cwd = "";
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim();
      cwd = readlinkSync(`/proc/${pid}/cwd`);
    } catch {
      continue; // gone, or a kernel thread
    }
    if (!cmd) continue;
    if (cwd.startsWith(dir) || cmd.includes(dir)) out.push({ pid, cmd, cwd });
  }
  return out;
}

/** sandboxd processes (one per live local sandbox) under an ALPINE_HOME. */
export function sandboxdsUnder(alpineHome: string): Proc[] {
  return processesUnder(alpineHome).filter((p) => isSandboxdCommand(p.cmd));
}

/**
 * Last line of a test's cleanup: SIGKILLs the process group of every sandboxd still running
 * under alpineHome (their OpenCode goes with them), for when a failed test could not tear its
 * sandboxes down. Only processes this test's own ALPINE_HOME holds are touched.
 */
export function killLeftovers(alpineHome: string): number {
  const left = sandboxdsUnder(alpineHome);
  for (const p of left) {
    try {
      process.kill(-p.pid, "SIGKILL");
    } catch {
      try {
        process.kill(p.pid, "SIGKILL");
      } catch {
        // gone meanwhile
      }
    }
  }
  return left.length;
}

export function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: "127.0.0.1", port });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
