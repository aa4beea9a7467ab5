import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { getPriority, setPriority } from "node:os";
import { type Hashed, writeHashed } from "./files.ts";

export interface RunOptions {
  cwd?: string;
  env: NodeJS.ProcessEnv;
  input?: string;
  timeoutMs?: number;
  /** Cap on captured stdout (bytes); the rest is dropped. */
  maxStdout?: number;
  /** Written to an extra pipe at fd 3, then closed (git credentials: core/git-credential-pipe.ts). */
  fd3?: string;
  /** How much nicer than sandboxd the command runs (background work that must not slow what runs beside it). */
  nice?: number;
}

/** Lowers the child's priority right after it started (what it spawns from then on inherits it). */
function applyNice(child: ChildProcess, opts: RunOptions): void {
  if (!opts.nice || !child.pid) return;
  try {
    // It starts at ours (inherited): relative to that, within the range anyone may set.
    setPriority(child.pid, Math.min(19, getPriority(child.pid) + opts.nice));
  } catch {
    // Gone already, or a platform without priorities: it then simply runs at ours.
  }
}

/** stdio for spawn, with the fd 3 pipe when there is something to hand over on it. */
function stdioFor(opts: RunOptions, stdin: "pipe" | "ignore"): ("pipe" | "ignore")[] {
  return opts.fd3 === undefined ? [stdin, "pipe", "pipe"] : [stdin, "pipe", "pipe", "pipe"];
}

/** Hands the fd 3 payload over and closes our end (git reads it at most once). */
function feedFd3(child: ChildProcess, opts: RunOptions): void {
  if (opts.fd3 === undefined) return;
  const pipe = child.stdio[3] as NodeJS.WritableStream | null | undefined;
  if (!pipe) return;
  pipe.on("error", () => {});
  pipe.end(opts.fd3);
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

const live = new Set<ChildProcess>();

/** Kills every command `run` started that is still running (at shutdown). */
export function killRunning(): void {
  for (const c of live) c.kill("SIGKILL");
}

/** Runs a command without a shell, capturing its output. Never rejects for a non-zero exit. */
export function run(cmd: string, args: string[], opts: RunOptions): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    let child: ChildProcess;
    try {
      child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: stdioFor(opts, "pipe") });
    } catch (err) {
      reject(err);
      return;
    }
    live.add(child);
    applyNice(child, opts);
    feedFd3(child, opts);
    child.once("close", () => live.delete(child));
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outBytes = 0;
    const max = opts.maxStdout ?? 256 * 1024 * 1024;
    let timedOut = false;
    const timer =
      opts.timeoutMs !== undefined
        ? setTimeout(() => {
            timedOut = true;
            child.kill("SIGKILL");
          }, opts.timeoutMs)
        : undefined;
    child.stdout?.on("data", (c: Buffer) => {
      if (outBytes < max) out.push(c);
      outBytes += c.length;
    });
    child.stderr?.on("data", (c: Buffer) => {
      if (err.length < 1000) err.push(c);
    });
    child.stdin?.on("error", () => {});
    child.stdin?.end(opts.input ?? "");
    child.on("error", (e) => {
      if (timer) clearTimeout(timer);
      reject(e);
    });
    child.on("close", (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
        timedOut,
      });
    });
  });
}

/**
 * Runs a command without a shell, streaming its stdout into a new file (sha256
 * and size computed while writing). The file is removed unless the command
 * exits 0.
 */
export function runToFile(
  cmd: string,
  args: string[],
  opts: RunOptions,
  file: string,
): Promise<RunResult & Partial<Hashed>> {
  return new Promise((resolve, reject) => {
    let child: ChildProcess;
    try {
      child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: stdioFor(opts, "ignore") });
    } catch (err) {
      reject(err);
      return;
    }
    live.add(child);
    applyNice(child, opts);
    feedFd3(child, opts);
    let timedOut = false;
    const timer =
      opts.timeoutMs !== undefined
        ? setTimeout(() => {
            timedOut = true;
            child.kill("SIGKILL");
          }, opts.timeoutMs)
        : undefined;
    const err: Buffer[] = [];
    child.stderr?.on("data", (c: Buffer) => {
      if (err.length < 1000) err.push(c);
    });
    const written = writeHashed(child.stdout!, file).then(
      (h) => ({ ok: true as const, h }),
      (e: unknown) => ({ ok: false as const, e }),
    );
    const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
      child.once("close", (code, signal) => r({ code, signal })),
    );
    child.once("error", (e) => {
      if (timer) clearTimeout(timer);
      live.delete(child);
      reject(e);
    });
    void Promise.all([closed, written]).then(([{ code, signal }, w]) => {
      if (timer) clearTimeout(timer);
      live.delete(child);
      const stderr = Buffer.concat(err).toString("utf8");
      if (code !== 0 || !w.ok) {
        rmSync(file, { force: true });
        resolve({
          code: code === 0 ? 1 : code,
          signal,
          stdout: "",
          stderr: w.ok ? stderr : `${stderr}\n${String((w.e as Error)?.message ?? w.e)}`,
          timedOut,
        });
        return;
      }
      resolve({ code, signal, stdout: "", stderr, timedOut, ...w.h });
    });
  });
}

/** Pids of all live descendants of pid (Linux /proc; empty elsewhere). */
export function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    // No /proc (not Linux): no descendants can be found.
    return [];
  }
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      // pid (comm) state ppid … — comm may contain spaces and parentheses.
      const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const ppid = Number(rest[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(name));
      children.set(ppid, list);
    } catch {
      // raced with exit
    }
  }
  const result: number[] = [];
  const queue = [pid];
  while (queue.length) {
    const p = queue.shift()!;
    for (const c of children.get(p) ?? []) {
      result.push(c);
      queue.push(c);
    }
  }
  return result;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // ESRCH: already gone, which is what the signal was for.
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
