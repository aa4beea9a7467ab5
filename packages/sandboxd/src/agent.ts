import { AlpineError } from "@alpine/core/errors";
import type { TaskStatus } from "@alpine/core/sandboxd-api";
import type { AgentState } from "@alpine/core/schemas";
import type { SessionStatus } from "@opencode-ai/sdk/v2";
import type { Logger } from "./log.ts";
import type { OpencodeSupervisor } from "./opencode.ts";
import { activeSessions, createSession, newestSession, promptAsync } from "./opencode-api.ts";
import { sleep } from "./proc.ts";
import { takeSseEvents } from "./sse.ts";

/*
 * OpenCode's SSE stream is read with plain fetch rather than the SDK client:
 * sandboxd must know exactly when the /event subscription is live (the
 * `server.connected` event) before it sends a prompt, must drop and re-open it
 * when OpenCode restarts on a new port, and must notice a stuck stream; the
 * SDK's SSE helper reconnects on its own and hides all three. The REST calls
 * are in opencode-api.ts.
 */

interface TaskInternal extends TaskStatus {
  /** prompt_async answered 204. */
  accepted: boolean;
  /** A busy status for the session arrived after the prompt. */
  sawBusy: boolean;
}

interface SessionInfo {
  status: "idle" | "busy" | "retry";
  /** Open permission requests / questions. */
  waiting: Set<string>;
  error: boolean;
}

interface OcEvent {
  type: string;
  properties?: Record<string, unknown>;
}

/** How long a task waits for OpenCode's event stream before saying OpenCode is not answering. */
const EVENT_STREAM_WAIT_MS = 30_000;

export function summarise(prompt: string): string {
  const one = prompt.replace(/\s+/g, " ").trim();
  return one.length > 80 ? `${one.slice(0, 77)}...` : one;
}

/**
 * Follows OpenCode's /event stream: derives the agent's state and last
 * activity, and runs tasks (a task completes on the `session.idle` that
 * follows its prompt, never on prompt_async's 204).
 */
export class AgentTracker {
  private sessions = new Map<string, SessionInfo>();
  private connected = false;
  private generation = 0;
  private abort: AbortController | null = null;
  private waiters: (() => void)[] = [];
  private lastEventAt = 0;
  private enabled = false;
  private idleByConstruction = false;
  private everConnected = false;
  private clientSeen = false;
  private task: TaskInternal | null = null;
  /** A runTask is between its checks and the prompt's answer. */
  private starting = false;
  /** The session tasks continue when they name none (created by the first task). */
  private taskSession: string | null = null;
  /** The session the person last used, in the UI (noteSessionUsed) or by a task: tasks continue it. */
  private usedSession: string | null = null;
  lastActivity: Date | null = null;
  lastSession: string | null = null;

  constructor(
    private readonly oc: OpencodeSupervisor,
    private readonly model: string | undefined,
    private readonly log: Logger,
  ) {
    oc.on("ready", () => {
      if (this.enabled) this.connect();
    });
    oc.on("down", () => this.onDown());
  }

  /**
   * Starts following OpenCode's events (now if it is up, else when it is).
   * Called once the checkout exists: the subscription creates OpenCode's
   * instance for the workspace, which must see the checked-out project.
   */
  enable(): void {
    if (this.enabled) return;
    this.enabled = true;
    if (this.oc.ready) this.connect();
  }

  /**
   * A brand-new OpenCode (no stored session, nothing but sandboxd has talked
   * to it) is idle until the event stream says otherwise: until the stream
   * first connects, OpenCode goes down, or a client reaches OpenCode through
   * the UI proxy (it could start a session we would not yet see).
   */
  assumeIdleUntilConnected(): void {
    if (!this.everConnected && !this.clientSeen) this.idleByConstruction = true;
  }

  /** The UI proxy forwarded a request to OpenCode: sessions may now exist that the stream has not shown. */
  noteClientRequest(): void {
    this.clientSeen = true;
    this.idleByConstruction = false;
  }

  get state(): AgentState {
    if (!this.oc.ready) return "unknown";
    if (!this.connected) return this.idleByConstruction ? "idle" : "unknown";
    const all = [...this.sessions.values()];
    if (all.some((s) => s.waiting.size > 0)) return "needs_input";
    if (all.some((s) => s.status === "busy")) return "busy";
    if (all.some((s) => s.status === "retry")) return "retry";
    if (all.some((s) => s.error)) return "error";
    return "idle";
  }

  get sessionId(): string | null {
    return this.task?.session_id ?? this.lastSession ?? this.taskSession;
  }

  /**
   * The conversation: the session the person last used, in the UI or the CLI (a task). A task
   * that names no session continues it, and `alpine open` lands on it (docs/opencode.md).
   */
  get conversation(): string | null {
    return this.usedSession ?? this.taskSession;
  }

  /** The UI proxy saw the person prompt in, or load the page of, a session (ui-session.ts). */
  noteSessionUsed(sessionId: string): void {
    if (this.usedSession !== sessionId) this.log.debug("conversation moved", { session_id: sessionId });
    this.usedSession = sessionId;
  }

  /** Makes tasks without a session id continue `sessionId` (after a restore: the newest session). */
  adoptTaskSession(sessionId: string): void {
    this.taskSession ??= sessionId;
  }

  taskStatus(): TaskStatus | null {
    if (!this.task) return null;
    const { accepted: _a, sawBusy: _b, ...pub } = this.task;
    return { ...pub };
  }

  isTaskRunning(): boolean {
    return this.task?.state === "running";
  }

  close(): void {
    this.generation++;
    this.abort?.abort();
    this.connected = false;
  }

  private session(id: string): SessionInfo {
    let s = this.sessions.get(id);
    if (!s) {
      s = { status: "idle", waiting: new Set(), error: false };
      this.sessions.set(id, s);
    }
    return s;
  }

  private onDown(): void {
    this.idleByConstruction = false;
    this.generation++;
    this.abort?.abort();
    this.connected = false;
    this.sessions.clear();
    if (this.task?.state === "running") {
      this.finishTask(
        "failed",
        new AlpineError("task_failed", "OpenCode stopped while the task was running; it is being restarted", {
          session_id: this.task.session_id,
        }),
      );
    }
  }

  private connect(): void {
    const gen = ++this.generation;
    this.abort?.abort();
    void this.loop(gen);
  }

  private async loop(gen: number): Promise<void> {
    let delay = 250;
    while (gen === this.generation && this.oc.ready) {
      const ac = new AbortController();
      this.abort = ac;
      // No server.connected within 5 s, or silence longer than three of OpenCode's
      // 10 s heartbeats: the stream is stuck; open a new one.
      const opened = Date.now();
      this.lastEventAt = opened;
      const watchdog = setInterval(() => {
        const now = Date.now();
        if ((!this.connected && now - opened > 5000) || now - this.lastEventAt > 35_000) ac.abort();
      }, 1000);
      try {
        const res = await fetch(`${this.oc.baseUrl}/event`, {
          headers: { authorization: this.oc.authorization, accept: "text/event-stream" },
          signal: ac.signal,
        });
        if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
        const decoder = new TextDecoder();
        let buf = "";
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          buf += decoder.decode(chunk, { stream: true }).replace(/\r\n/g, "\n");
          const { data, rest } = takeSseEvents(buf);
          buf = rest;
          for (const payload of data) {
            try {
              this.handle(JSON.parse(payload) as OcEvent, gen);
            } catch (err) {
              this.log.debug("unparseable opencode event", { error: String(err) });
            }
          }
          delay = 250;
        }
      } catch (err) {
        if (gen === this.generation) this.log.debug("opencode event stream dropped", { error: String(err) });
      } finally {
        clearInterval(watchdog);
      }
      if (gen !== this.generation) return;
      this.connected = false;
      await sleep(delay);
      delay = Math.min(delay * 2, 2000);
    }
  }

  private handle(ev: OcEvent, gen: number): void {
    if (gen !== this.generation) return;
    this.lastEventAt = Date.now();
    const p = ev.properties ?? {};
    const sid = typeof p.sessionID === "string" ? p.sessionID : undefined;
    if (ev.type === "server.connected") {
      const first = !this.connected;
      this.connected = true;
      this.everConnected = true;
      this.idleByConstruction = false;
      for (const w of this.waiters.splice(0)) w();
      if (first) void this.reconcile(gen);
      return;
    }
    if (sid && ev.type !== "session.deleted") {
      this.lastActivity = new Date();
      this.lastSession = sid;
    }
    const task = this.task?.state === "running" && this.task.session_id === sid ? this.task : null;
    switch (ev.type) {
      case "session.status": {
        if (!sid) break;
        const status = (p.status as SessionStatus | undefined)?.type;
        const s = this.session(sid);
        if (status === "busy" || status === "retry") {
          s.status = status;
          s.error = false;
          if (task) task.sawBusy = true;
        } else if (status === "idle") {
          s.status = "idle";
        }
        break;
      }
      case "session.idle": {
        if (!sid) break;
        const s = this.session(sid);
        s.status = "idle";
        if (task && (task.accepted || task.sawBusy)) this.finishTask("completed", null);
        break;
      }
      case "session.error": {
        const err = p.error as { name?: string; data?: { message?: string } } | undefined;
        const message = err?.data?.message ?? err?.name ?? "the agent reported an error";
        if (sid) this.session(sid).error = true;
        this.log.warn("agent error", { session_id: sid ?? null, error: message.slice(0, 500) });
        const running = this.task?.state === "running" ? this.task : null;
        if (running && (!sid || running.session_id === sid)) {
          this.finishTask(
            "failed",
            new AlpineError("task_failed", `the agent failed: ${message.slice(0, 300)}`, {
              session_id: running.session_id,
              error_name: err?.name ?? null,
            }),
          );
        }
        break;
      }
      case "permission.asked":
      case "permission.v2.asked":
      case "question.asked":
      case "question.v2.asked": {
        if (sid && typeof p.id === "string") this.session(sid).waiting.add(p.id);
        break;
      }
      case "permission.replied":
      case "permission.v2.replied":
      case "question.replied":
      case "question.rejected":
      case "question.v2.replied":
      case "question.v2.rejected": {
        const id =
          typeof p.requestID === "string" ? p.requestID : typeof p.id === "string" ? p.id : undefined;
        if (sid && id) this.session(sid).waiting.delete(id);
        break;
      }
      case "session.deleted": {
        if (sid) this.sessions.delete(sid);
        if (sid && this.taskSession === sid) this.taskSession = null;
        if (sid && this.usedSession === sid) this.usedSession = null;
        break;
      }
    }
  }

  /** After (re)connecting: events may have been missed; ask OpenCode which sessions are not idle. */
  private async reconcile(gen: number): Promise<void> {
    try {
      const active = await activeSessions(this.oc);
      if (!active || gen !== this.generation) return;
      for (const [id, s] of this.sessions) {
        if (!active[id]) s.status = "idle";
      }
      for (const [id, st] of Object.entries(active)) {
        if (st.type === "busy" || st.type === "retry") this.session(id).status = st.type;
      }
      const task = this.task;
      // Only when the task was seen running: right after a prompt OpenCode reports idle too early.
      if (task?.state === "running" && task.sawBusy && !active[task.session_id]) {
        this.log.info("task finished while the event stream was down", { session_id: task.session_id });
        this.finishTask("completed", null);
      }
    } catch (err) {
      this.log.debug("session status reconcile failed", { error: String(err) });
    }
  }

  /** The most recently updated top-level session OpenCode lists for `directory` (asked for 1.5 s at most), or null. */
  async latestSession(directory: string): Promise<string | null> {
    if (!this.oc.ready) return null;
    try {
      return await newestSession(this.oc, directory);
    } catch (err) {
      // Only a landing page or a default session depends on it: without an answer there is none.
      this.log.debug("could not list opencode's sessions", { error: String(err) });
      return null;
    }
  }

  /** Resolves true once the event stream is live (false after ms). */
  waitConnected(ms: number): Promise<boolean> {
    if (this.connected) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        resolve(true);
      };
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== done);
        resolve(false);
      }, ms);
      this.waiters.push(done);
    });
  }

  private finishTask(state: "completed" | "failed", error: AlpineError | null): void {
    const task = this.task;
    if (task?.state !== "running") return;
    task.state = state;
    task.finished_at = new Date().toISOString();
    task.error = error ? error.toJSON() : null;
    this.log.info("task finished", { session_id: task.session_id, state, error: error?.message ?? null });
  }

  /**
   * Sends a prompt. Without session_id it continues the sandbox's task session
   * (created by the first task), so follow-up tasks keep the agent's context.
   */
  async runTask(
    prompt: string,
    sessionId?: string,
    opts: { newSession?: boolean; fallback?: string } = {},
  ): Promise<{ session_id: string }> {
    if (this.task?.state === "running" || this.starting) {
      throw new AlpineError("agent_busy", "a task is already running in this sandbox", {
        session_id: this.task?.session_id ?? null,
      });
    }
    this.starting = true;
    try {
      return await this.startTask(prompt, sessionId, opts);
    } finally {
      this.starting = false;
    }
  }

  private async startTask(
    prompt: string,
    sessionId?: string,
    opts: { newSession?: boolean; fallback?: string } = {},
  ): Promise<{ session_id: string }> {
    // The first subscription builds OpenCode's instance for the workspace (it scans the project),
    // which on a loaded machine, under bubblewrap's bridge, takes seconds: a task waits for it.
    if (!this.oc.ready || !(await this.waitConnected(EVENT_STREAM_WAIT_MS))) {
      throw new AlpineError("sandbox_unavailable", "OpenCode is not answering right now (restarting?)");
    }
    let sid = sessionId ?? (opts.newSession ? null : (this.conversation ?? opts.fallback ?? null));
    const known = sid ? this.sessions.get(sid) : undefined;
    if (sid && known && known.status !== "idle") {
      throw new AlpineError("agent_busy", "the agent is working in that session", { session_id: sid });
    }
    if (!sid) sid = await createSession(this.oc);
    // status.task is the last prompt OpenCode accepted: a refused one leaves it as it was.
    const previous = this.task;
    const begin = (id: string): TaskInternal => {
      const t: TaskInternal = {
        session_id: id,
        prompt_summary: summarise(prompt),
        state: "running",
        started_at: new Date().toISOString(),
        finished_at: null,
        error: null,
        accepted: false,
        sawBusy: false,
      };
      // Set before the prompt goes out: its events may arrive before the 204.
      this.task = t;
      const s = this.session(id);
      s.status = "busy";
      s.error = false;
      this.lastActivity = new Date();
      this.lastSession = id;
      return t;
    };
    const refused = (id: string, e: AlpineError): AlpineError => {
      if (this.task?.session_id === id && !this.task.accepted) {
        this.task = previous;
        const s = this.sessions.get(id);
        if (s?.status === "busy") s.status = "idle";
      }
      return e;
    };
    let task = begin(sid);
    let res: Response;
    try {
      res = await promptAsync(this.oc, sid, prompt, this.model);
      if (res.status === 404 && !sessionId) {
        // The remembered session is gone (deleted in the UI): start a new one.
        refused(sid, new AlpineError("usage_invalid", "session gone"));
        sid = await createSession(this.oc);
        task = begin(sid);
        res = await promptAsync(this.oc, sid, prompt, this.model);
      }
    } catch (err) {
      if (err instanceof AlpineError) throw refused(sid, err);
      throw refused(
        sid,
        new AlpineError("sandbox_unavailable", `OpenCode did not take the prompt: ${String(err)}`),
      );
    }
    if (!res.ok) {
      const body = (await res.text().catch((err: unknown) => `(body unreadable: ${String(err)})`)).slice(
        0,
        500,
      );
      throw refused(
        sid,
        res.status === 404
          ? new AlpineError("usage_invalid", `OpenCode has no session '${sid}'`, { session_id: sid })
          : new AlpineError("task_failed", `OpenCode refused the prompt (HTTP ${res.status})`, { body }),
      );
    }
    task.accepted = true;
    this.taskSession = sid;
    this.usedSession = sid;
    this.log.info("task started", { session_id: sid, prompt_chars: prompt.length });
    return { session_id: sid };
  }
}
