import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { dirname, join } from "node:path";
import { AlpineError } from "@alpine/core/errors";
import { visiblePaths } from "./bwrap.ts";
import { lineSplitter } from "./log.ts";
import { BRIDGE_READY, hostForwarder } from "./net-bridge.ts";
import {
  bwrapLayout,
  confinedCommand,
  type OpencodeOptions,
  opencodeCommand,
  opencodeEnv,
  xdgDirs,
} from "./opencode-env.ts";
import { descendants, isAlive, signal, sleep } from "./proc.ts";

const LISTENING = /opencode server listening on\s+(\S+)/;

let fetchWarmed = false;

/**
 * Node loads its fetch (undici) at the first call: 60-100 ms of CPU here. sandboxd's first call
 * is the health probe right after OpenCode listens, on the way to "ready"; made now, while
 * OpenCode boots for seconds, that load is off the path. A data: URL touches no network.
 */
function warmFetch(): void {
  if (fetchWarmed) return;
  fetchWarmed = true;
  fetch("data:,")
    .then((r) => r.arrayBuffer())
    .catch(() => {
      // Only a warm-up: the real calls report their own failures.
    });
}
/**
 * OpenCode listens after ≈1.3 s of one core; ten starting at once on a loaded
 * 2-core machine took more than 30 s here, and killing a slow start only
 * makes it start again from nothing. A stuck start is rare: wait long.
 */
const START_TIMEOUT_MS = 90_000;
// Exits are seen at once (onExit); the health probe only catches a hung OpenCode. It must never
// mistake a loaded machine for a hang: killing a working agent loses its turn. So a probe may take
// seconds, and only ~6 failed probes in a row (at least ≈12 s, ≈40 s when each times out) count.
const HEALTH_INTERVAL_MS = 2000;
const HEALTH_TIMEOUT_MS = 5000;
const UNHEALTHY_AFTER = 6;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 10_000;
/** A run this long resets the backoff. */
const STABLE_MS = 30_000;

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Runs `opencode serve` on 127.0.0.1 (optionally under bubblewrap), waits for
 * it, probes its health, restarts it with exponential backoff when it exits or
 * stops answering. Emits "ready" after every (re)start and "down" when it goes.
 */
export class OpencodeSupervisor extends EventEmitter {
  readonly password = randomBytes(24).toString("base64url");
  port: number | null = null;
  version: string | null = null;
  restarts = 0;
  ready = false;
  startedAt: Date | null = null;

  private child: ChildProcess | null = null;
  private stopping = false;
  private backoffMs = BACKOFF_MIN_MS;
  private healthTimer: NodeJS.Timeout | null = null;
  /** A probe is in flight: the interval does not stack another on a slow one. */
  private probing = false;
  private restartTimer: NodeJS.Timeout | null = null;
  private failures = 0;
  /** The sandboxed OpenCode's host pid, once found under bwrap. */
  private inner: { child: ChildProcess; pid: number } | null = null;
  /** Set once the first start succeeded: from then on exits are restarted. */
  private supervising = false;
  /** The first start in flight: a second caller (init after a warm start) waits for the same one. */
  private starting: Promise<void> | null = null;
  /** The running OpenCode answered a health probe (its first comes right after it listens). */
  private answered = false;
  /** Extra host paths visible read-only inside bubblewrap (a repo's object cache). */
  private readonly readOnly: string[] = [];
  /** In a closed namespace: the host port that leads to OpenCode through the bridge (net-bridge.ts). */
  private forwarder: Server | null = null;

  constructor(private readonly opts: OpencodeOptions) {
    super();
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get authorization(): string {
    return "Basic " + Buffer.from(`opencode:${this.password}`).toString("base64");
  }

  /** The process sandboxd started (bwrap, or OpenCode itself): every process of the agent descends from it under bubblewrap. */
  get rootPid(): number | null {
    const child = this.child;
    return child?.pid && child.exitCode === null ? child.pid : null;
  }

  /** In a closed namespace: the dir of the bridge's sockets (previews go through its ports socket). */
  get namespaceDir(): string | undefined {
    return this.opts.isolation === "bubblewrap" ? this.opts.net?.namespaceDir : undefined;
  }

  /** The OpenCode process's pid on this host (inside bwrap: the sandboxed process, not bwrap). */
  get pid(): number | null {
    const child = this.child;
    if (!child?.pid || child.exitCode !== null) return null;
    if (this.opts.isolation === "none") return child.pid;
    if (this.inner?.child === child && isAlive(this.inner.pid)) return this.inner.pid;
    for (const p of descendants(child.pid)) {
      try {
        const argv0 = readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0")[0];
        if (argv0 === this.opts.bin) {
          this.inner = { child, pid: p };
          return p;
        }
      } catch {
        // That process exited meanwhile: it is not OpenCode.
      }
    }
    return child.pid;
  }

  /**
   * Whether OpenCode has stored anything (sessions live in its data dir:
   * `opencode.db` since 1.x, `storage/` before). Asked before the first start:
   * an empty data dir means the agent has no session, so nothing can be busy.
   */
  hasStoredData(): boolean {
    const data = join(this.opts.home, ".local", "share", "opencode");
    return existsSync(join(data, "opencode.db")) || existsSync(join(data, "storage"));
  }

  /** Dirs, auth.json; can run while the clone is still going. */
  prepare(): void {
    const o = this.opts;
    for (const d of [o.home, o.tmp, ...Object.values(xdgDirs(o.home))])
      mkdirSync(d, { recursive: true, mode: 0o700 });
    this.writeAuth(o.auth ?? {});
  }

  /**
   * Merges entries into OpenCode's auth.json (0600). OpenCode reads it when a
   * provider is first used, not at start (checked in docs/opencode.md), so a
   * warm OpenCode gets its credentials only when a launch adopts it.
   */
  writeAuth(auth: Record<string, unknown>): void {
    const authFile = join(this.opts.home, ".local", "share", "opencode", "auth.json");
    mkdirSync(dirname(authFile), { recursive: true, mode: 0o700 });
    let existing: Record<string, unknown> = {};
    try {
      existing = JSON.parse(readFileSync(authFile, "utf8")) as Record<string, unknown>;
    } catch {
      // None yet, or unreadable: rewritten whole from the entries given.
    }
    writeFileSync(authFile, JSON.stringify({ ...existing, ...auth }, null, 2), { mode: 0o600 });
    chmodSync(authFile, 0o600);
  }

  /**
   * Makes a host path readable inside bubblewrap even under a mask (the
   * repo's object cache the workspace borrows objects from). Only before the
   * first start: the mounts of a running OpenCode cannot change.
   */
  keepReadOnly(path: string): boolean {
    if (this.started) return false;
    this.readOnly.push(path);
    return true;
  }

  /** A shell command confined like OpenCode (same mounts, same variables but OpenCode's); see confinedCommand. */
  confined(
    shell: string,
    network: "egress" | "host",
    extraEnv: Record<string, string>,
  ): { cmd: string; args: string[]; env: Record<string, string> } {
    return confinedCommand(this.opts, this.readOnly, shell, network, extraEnv);
  }

  /** What OpenCode sees of the host (status): its mounts under bubblewrap, or everything. */
  confinement(): { isolation: "bubblewrap" | "none"; read_only: string[]; read_write: string[] } {
    const o = this.opts;
    if (o.isolation === "none") return { isolation: "none", read_only: [], read_write: [] };
    return { isolation: "bubblewrap", ...visiblePaths(bwrapLayout(o, this.readOnly)) };
  }

  /**
   * Resolves true once the running OpenCode has answered `GET /global/health`
   * (which also reports its version), false if it has not within ms.
   */
  waitAnswered(ms: number): Promise<boolean> {
    if (this.ready && this.answered) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.off("answered", done);
        resolve(false);
      }, ms);
      this.once("answered", done);
    });
  }

  /** Whether OpenCode was started (or is starting): its bubblewrap mounts are fixed from then on. */
  get started(): boolean {
    return this.starting !== null || this.supervising;
  }

  /**
   * First start: resolves when OpenCode listens (its `listening` line, no
   * polling); throws agent_start_failed. Afterwards it is supervised. Callers
   * during a start share it (a warm sandbox starts OpenCode before init).
   */
  start(): Promise<void> {
    if (this.supervising) return Promise.resolve();
    if (!this.starting) {
      this.starting = this.firstStart().finally(() => {
        this.starting = null;
      });
    }
    return this.starting;
  }

  private async firstStart(): Promise<void> {
    this.stopping = false;
    // Two more tries: the free port we picked may have been taken before OpenCode bound it.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.spawnOnce();
        break;
      } catch (err) {
        if (attempt >= 3 || this.stopping) throw err;
        this.opts.log.warn("opencode did not start; trying again", {
          attempt,
          error: (err as Error).message,
        });
      }
    }
    this.supervising = true;
  }

  /**
   * OpenCode's port as sandboxd calls it: a free one on 127.0.0.1, or in a
   * closed namespace a new host port bridged to OpenCode's socket (a new one
   * per start, as a restarted OpenCode gets a new port outside one).
   */
  private async hostPort(): Promise<number> {
    this.forwarder?.close();
    this.forwarder = null;
    const dir = this.opts.isolation === "bubblewrap" ? this.opts.net?.namespaceDir : undefined;
    if (!dir) return freePort();
    const f = await hostForwarder(join(dir, "opencode.sock"));
    this.forwarder = f.server;
    return f.port;
  }

  private async spawnOnce(): Promise<void> {
    await this.opts.netReady;
    const port = await this.hostPort();
    if (this.stopping) throw new AlpineError("agent_start_failed", "OpenCode was stopped while starting");
    const { cmd, args, bridged } = opencodeCommand(this.opts, port, this.readOnly);
    // Beside a bridge, OpenCode is reachable once both listen (whichever says so last).
    let listening = false;
    let bridgeUp = !bridged;
    const o = this.opts;
    const t0 = Date.now();
    // The bridge's program is long and says nothing: logged by its first words.
    const shown = args.map((a) => (a.length > 200 ? `${a.slice(0, 60)}…` : a));
    o.log.info("starting opencode", { cmd, args: shown, isolation: o.isolation });
    const child = spawn(cmd, args, {
      cwd: o.workspace,
      env: opencodeEnv(this.opts, this.password),
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    this.child = child;
    warmFetch();
    const tail: string[] = [];
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        fail(
          `OpenCode did not report listening within ${Math.round((o.startTimeoutMs ?? START_TIMEOUT_MS) / 1000)} s`,
        );
        this.killTree(child, "SIGKILL");
      }, o.startTimeoutMs ?? START_TIMEOUT_MS);
      const fail = (msg: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(new AlpineError("agent_start_failed", msg, { output: tail.slice(-20) }));
      };
      const onLine = (stream: string) => (line: string) => {
        if (!line) return;
        o.log.info("opencode", { source: "opencode", stream, line: line.slice(0, 4000) });
        tail.push(line.slice(0, 500));
        if (tail.length > 50) tail.shift();
        if (LISTENING.test(line)) listening = true;
        else if (line === BRIDGE_READY) bridgeUp = true;
        if (!settled && listening && bridgeUp) {
          settled = true;
          clearTimeout(timer);
          resolve();
        }
      };
      const out = lineSplitter(onLine("stdout"));
      const err = lineSplitter(onLine("stderr"));
      child.stdout?.on("data", (c: Buffer) => out.push(c));
      child.stderr?.on("data", (c: Buffer) => err.push(c));
      child.on("error", (e) => fail(`cannot run ${cmd}: ${e.message}`));
      child.on("exit", (code, sig) => {
        out.end();
        err.end();
        fail(`OpenCode exited before listening (code ${code}, signal ${sig})`);
        this.onExit(child, code, sig);
      });
    });
    this.port = port;
    this.answered = false;
    this.ready = true;
    this.startedAt = new Date();
    this.failures = 0;
    o.log.info("opencode listening", { port, ms: Date.now() - t0, pid: this.pid, restarts: this.restarts });
    this.startHealth(child);
    this.emit("ready");
  }

  private onExit(child: ChildProcess, code: number | null, sig: NodeJS.Signals | null): void {
    if (this.child !== child) return;
    const wasReady = this.ready;
    this.ready = false;
    this.stopHealth();
    this.opts.log.warn("opencode exited", { code, signal: sig, stopping: this.stopping });
    if (wasReady) this.emit("down");
    if (this.stopping || !this.supervising) return;
    const ranFor = this.startedAt ? Date.now() - this.startedAt.getTime() : 0;
    if (wasReady && ranFor > STABLE_MS) this.backoffMs = BACKOFF_MIN_MS;
    this.scheduleRestart();
  }

  private scheduleRestart(): void {
    if (this.stopping || this.restartTimer) return;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, BACKOFF_MAX_MS);
    this.opts.log.info("restarting opencode", { in_ms: delay });
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (this.stopping) return;
      this.restarts++;
      this.spawnOnce().catch((err: unknown) => {
        this.opts.log.error("opencode restart failed", { error: String((err as Error).message ?? err) });
        // onExit (or the start timeout's kill) schedules the next attempt.
        this.scheduleRestart();
      });
    }, delay);
  }

  private startHealth(child: ChildProcess): void {
    this.stopHealth();
    this.healthTimer = setInterval(() => {
      void this.probe(child);
    }, HEALTH_INTERVAL_MS);
    void this.probe(child);
  }

  private stopHealth(): void {
    if (this.healthTimer) clearInterval(this.healthTimer);
    this.healthTimer = null;
  }

  private async probe(child: ChildProcess): Promise<void> {
    if (this.child !== child || !this.ready || this.probing) return;
    this.probing = true;
    try {
      const res = await fetch(`${this.baseUrl}/global/health`, {
        headers: { authorization: this.authorization },
        signal: AbortSignal.timeout(HEALTH_TIMEOUT_MS),
      });
      const body = (await res.json()) as { healthy?: boolean; version?: string };
      if (!res.ok || body.healthy !== true) throw new Error(`HTTP ${res.status}`);
      if (body.version) this.version = body.version;
      this.failures = 0;
      if (!this.answered && this.child === child) {
        this.answered = true;
        this.emit("answered");
      }
    } catch (err) {
      if (this.child !== child || !this.ready) return;
      this.failures++;
      if (this.failures >= UNHEALTHY_AFTER) {
        this.opts.log.warn("opencode unhealthy; killing it", { failures: this.failures, error: String(err) });
        this.failures = 0;
        this.killTree(child, "SIGKILL");
      }
    } finally {
      this.probing = false;
    }
  }

  private killTree(child: ChildProcess, sig: NodeJS.Signals): void {
    if (!child.pid) return;
    // Own process group (detached): reaches the agent's tool processes too.
    try {
      process.kill(-child.pid, sig);
    } catch {
      // No group left; signal the child itself only while it has not been reaped (its pid is still its own).
      if (child.exitCode === null && child.signalCode === null) signal(child.pid, sig);
    }
  }

  /**
   * Makes OpenCode open its instance for the (still empty) workspace now:
   * loading config, plugins and tools the first time costs 150-350 ms here,
   * once per process. A warm sandbox does it while it waits; after the clone
   * it disposes that instance (disposeInstance) and the next request opens the
   * cloned repo in a fraction of the time (measured in docs/opencode.md).
   */
  async warmInstance(): Promise<boolean> {
    if (!this.ready) return false;
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), 30_000);
    try {
      const res = await fetch(`${this.baseUrl}/event`, {
        headers: { authorization: this.authorization, accept: "text/event-stream" },
        signal: ac.signal,
      });
      if (!res.ok || !res.body) return false;
      // The first event (server.connected) comes once the instance is up.
      await res.body.getReader().read();
      return true;
    } catch (err) {
      // Only a head start is lost: init opens the instance itself.
      this.opts.log.debug("warming opencode's instance failed", { error: String(err) });
      return false;
    } finally {
      clearTimeout(timer);
      ac.abort();
    }
  }

  /** Drops OpenCode's instance for the workspace, so the next request opens it afresh (as a git repo). */
  async disposeInstance(): Promise<void> {
    const res = await fetch(`${this.baseUrl}/instance/dispose`, {
      method: "POST",
      headers: { authorization: this.authorization },
      signal: AbortSignal.timeout(10_000),
    });
    await res.body?.cancel();
    if (!res.ok) throw new Error(`OpenCode refused to dispose its instance (HTTP ${res.status})`);
  }

  /** SIGTERM to OpenCode, SIGKILL to everything after graceMs. Idempotent. */
  async stop(graceMs = 3000): Promise<void> {
    this.stopping = true;
    this.supervising = false;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    this.stopHealth();
    const child = this.child;
    if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once("exit", () => r()));
    const inner = this.pid;
    // Under bwrap, bwrap does not forward signals: TERM the sandboxed OpenCode itself.
    if (inner && inner !== child.pid) signal(inner, "SIGTERM");
    else this.killTree(child, "SIGTERM");
    const timedOut = await Promise.race([exited.then(() => false), sleep(graceMs).then(() => true)]);
    if (timedOut) this.opts.log.warn("opencode did not stop in time; killing it", { grace_ms: graceMs });
    // Whatever is left in the group (or the bwrap pid namespace) goes too.
    this.killTree(child, "SIGKILL");
    if (timedOut) await Promise.race([exited, sleep(2000)]);
    if (child.exitCode === null && child.signalCode === null && isAlive(child.pid))
      signal(child.pid, "SIGKILL");
    this.ready = false;
    this.forwarder?.close();
    this.forwarder = null;
  }
}
