import type { Budget } from "@alpine/core";
import { addUsage, budgetReached, ZERO_USAGE } from "@alpine/core/budget";
import { AlpineError } from "@alpine/core/errors";
import type { TaskStatus, Usage } from "@alpine/core/sandboxd-api";
import type { AgentState } from "@alpine/core/schemas";
import type { Message, SessionStatus } from "@opencode-ai/sdk/v2";
import {
  deriveAgent,
  errorReason,
  messageUsage,
  permissionReason,
  questionReason,
  retryReason,
  type SessionView,
  turnOutcome,
} from "./agent-state.ts";
import type { Logger } from "./log.ts";
import type { OpencodeSupervisor } from "./opencode.ts";
import {
  abortSession,
  activeSessions,
  createSession,
  newestSession,
  promptAsync,
  sessionMessages,
} from "./opencode-api.ts";
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
  /** Set when sandboxd aborted the turn for the budget: what was spent. */
  budgetStop: string | null;
}

type SessionInfo = SessionView;

/** What one assistant message spent, and where it belongs. */
interface MessageSpend {
  sessionId: string;
  created: number;
  usage: Usage;
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
  /**
   * After a restore: the conversation to continue (the newest session) and what the sessions
   * spent before, read from OpenCode in the background (restoreHistory). A task waits for it.
   */
  private history: Promise<void> | null = null;
  /** The session tasks continue when they name none (created by the first task). */
  private taskSession: string | null = null;
  /** The session the person last used, in the UI (noteSessionUsed) or by a task: tasks continue it. */
  private usedSession: string | null = null;
  /** Why OpenCode went down under a running task (the agent is in error until the next task). */
  private crash: string | null = null;
  /** The limits the last task came with (config `sandbox.budget` plus raises). */
  private budget: Budget | undefined;
  /** Every assistant message seen (events and session listings), by id. */
  private spend = new Map<string, MessageSpend>();
  /** Sessions whose turn end is being confirmed from their messages. */
  private confirming = new Set<string>();
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
    return deriveAgent(this.sessions.values(), { crash: this.crash }).state;
  }

  /** One line a person reads: what the agent asks, the upstream error, what the budget spent; null when idle or busy. */
  get reason(): string | null {
    if (!this.oc.ready) return this.crash;
    if (!this.connected) return null;
    return deriveAgent(this.sessions.values(), { crash: this.crash }).reason;
  }

  /** What every session spent, as far as sandboxd has seen (events, and the task session's messages). */
  get usage(): Usage {
    let total = ZERO_USAGE;
    for (const m of this.spend.values()) total = addUsage(total, m.usage);
    return total;
  }

  private taskUsage(task: TaskStatus): Usage {
    const since = Date.parse(task.started_at) - 1000;
    let total = ZERO_USAGE;
    for (const m of this.spend.values()) {
      if (m.sessionId === task.session_id && m.created >= since) total = addUsage(total, m.usage);
    }
    return total;
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

  /**
   * A restored sandbox goes on where it was: its newest session in `directory` becomes the task
   * session, and what that session spent counts against the budget. Both are asked of OpenCode
   * in the background, so "ready" does not wait for OpenCode's instance bootstrap (its first
   * request about the workspace, 0.3-0.7 s); the next task waits for them instead.
   */
  restoreHistory(directory: string): void {
    this.history = (async () => {
      // The listing is asked for 1.5 s at most: after the stream's bootstrap it answers at once.
      await this.waitConnected(EVENT_STREAM_WAIT_MS);
      const latest = await this.latestSession(directory);
      if (!latest) return;
      this.adoptTaskSession(latest);
      await this.loadSpend(latest);
    })();
  }

  taskStatus(): TaskStatus | null {
    if (!this.task) return null;
    const { accepted: _a, sawBusy: _b, budgetStop: _c, ...pub } = this.task;
    return { ...pub, usage: this.taskUsage(this.task) };
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
      s = { status: "idle", settling: false, waiting: new Map(), retry: null, error: null, budget: null };
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
    this.confirming.clear();
    if (this.task?.state === "running") {
      this.crash =
        "OpenCode stopped while the task was running (it is restarted; the task's turn ended there)";
      this.finishTask(
        "interrupted",
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
          s.error = null;
          s.retry = status === "retry" ? retryReason(p.status as { attempt?: unknown }) : null;
          if (task) task.sawBusy = true;
        } else if (status === "idle") {
          this.onIdle(sid, s, task, gen);
        }
        break;
      }
      case "session.idle": {
        if (!sid) break;
        this.onIdle(sid, this.session(sid), task, gen);
        break;
      }
      case "message.updated": {
        const info = p.info as Message | undefined;
        if (sid && info) this.noteMessage(info);
        break;
      }
      case "session.error": {
        const err = p.error as { name?: string; data?: { message?: string } } | undefined;
        const running = this.task?.state === "running" ? this.task : null;
        const mine = running && (!sid || running.session_id === sid) ? running : null;
        const aborted = err?.name === "MessageAbortedError";
        const reason = errorReason(err);
        // An abort is no failure: the budget stop (or a person in the UI) ended the turn.
        if (sid && !aborted) this.session(sid).error = reason;
        this.log.warn("agent error", { session_id: sid ?? null, error: reason.slice(0, 500) });
        if (mine) {
          if (mine.budgetStop) {
            this.finishTask(
              "interrupted",
              new AlpineError("budget_reached", mine.budgetStop, { session_id: mine.session_id }),
            );
          } else {
            this.finishTask(
              aborted ? "interrupted" : "failed",
              new AlpineError("task_failed", `the agent ${aborted ? "was stopped" : "failed"}: ${reason}`, {
                session_id: mine.session_id,
                error_name: err?.name ?? null,
              }),
            );
          }
        }
        break;
      }
      case "permission.asked":
      case "permission.v2.asked":
      case "question.asked":
      case "question.v2.asked": {
        const what = ev.type.startsWith("question") ? questionReason(p) : permissionReason(p);
        if (sid && typeof p.id === "string") this.session(sid).waiting.set(p.id, what);
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
        if (st.type === "retry") this.session(id).retry = retryReason(st);
      }
      const task = this.task;
      // Only when the task was seen running: right after a prompt OpenCode reports idle too early.
      if (task?.state === "running" && task.sawBusy && !active[task.session_id]) {
        this.log.info("task's session went idle while the event stream was down", {
          session_id: task.session_id,
        });
        void this.confirmTurn(task.session_id, gen, 0);
      } else {
        // What the task session spent before this stream (OpenCode restarted, a reused workspace).
        const sid = this.taskSession ?? this.lastSession;
        if (sid) void this.loadSpend(sid);
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

  /**
   * OpenCode says the session is idle. With a task running there, it is only believed once the
   * session's messages show the turn finished (OpenCode has reported idle too early).
   */
  private onIdle(sid: string, s: SessionInfo, task: TaskInternal | null, gen: number): void {
    s.status = "idle";
    s.retry = null;
    if (task && (task.accepted || task.sawBusy)) {
      s.settling = true;
      void this.confirmTurn(sid, gen, 0);
    }
  }

  /** Records what an assistant message spent, then holds the agent to its budget. */
  private noteMessage(info: Message): void {
    const usage = messageUsage(info);
    if (!usage) return;
    this.spend.set(info.id, { sessionId: info.sessionID, created: info.time.created, usage });
    this.checkBudget(info.sessionID);
  }

  /**
   * A budget reached stops the spending session's turn (OpenCode's abort keeps everything the
   * agent did so far) and leaves the agent in `budget` with what was spent.
   */
  private checkBudget(sid: string): void {
    const running = this.task?.state === "running" ? this.task : null;
    const hit = budgetReached(
      { task: running ? this.taskUsage(running) : ZERO_USAGE, sandbox: this.usage },
      this.budget,
    );
    if (!hit) return;
    const target = hit.scope === "task" && running ? running.session_id : sid;
    const s = this.session(target);
    if (s.budget) return;
    s.budget = hit.reason;
    if (running?.session_id === target) running.budgetStop = hit.reason;
    this.log.warn("budget reached: stopping the agent's turn", { session_id: target, reason: hit.reason });
    if (s.status === "idle" && !s.settling) return;
    abortSession(this.oc, target).catch((err: unknown) =>
      this.log.warn("could not abort the session for the budget", { session_id: target, error: String(err) }),
    );
  }

  /** Reads a session's messages into `spend` (what it spent before sandboxd followed it). */
  private async loadSpend(sid: string): Promise<void> {
    try {
      const messages = await sessionMessages(this.oc, sid);
      for (const m of messages ?? []) {
        const usage = messageUsage(m.info);
        if (usage) this.spend.set(m.info.id, { sessionId: sid, created: m.info.time.created, usage });
      }
    } catch (err) {
      // Only the totals shown depend on it; events keep them from here on.
      this.log.debug("could not read the session's messages", { session_id: sid, error: String(err) });
    }
  }

  /**
   * Confirms from the session's messages that the turn finished, then ends the task by how the
   * turn ended. Not finished yet: asks again shortly while OpenCode still calls it idle.
   */
  private async confirmTurn(sid: string, gen: number, attempt: number): Promise<void> {
    if (attempt === 0 && this.confirming.has(sid)) return;
    this.confirming.add(sid);
    let messages: Awaited<ReturnType<typeof sessionMessages>> = null;
    try {
      messages = await sessionMessages(this.oc, sid);
    } catch (err) {
      this.log.debug("could not read the session's messages", { session_id: sid, error: String(err) });
    }
    if (gen !== this.generation) return;
    const s = this.session(sid);
    for (const m of messages ?? []) {
      const usage = messageUsage(m.info);
      if (usage) this.spend.set(m.info.id, { sessionId: sid, created: m.info.time.created, usage });
    }
    const outcome = messages ? turnOutcome(messages) : { finished: false as const };
    const task = this.task?.state === "running" && this.task.session_id === sid ? this.task : null;
    if (!outcome.finished) {
      // Busy again (the loop went on), or still idle with the turn open: look again, for 30 s at most.
      if (s.status === "idle" && attempt < 60) {
        if (attempt === 0)
          this.log.info("OpenCode reported idle before the turn finished", { session_id: sid });
        await sleep(500);
        if (gen === this.generation && s.status === "idle") return this.confirmTurn(sid, gen, attempt + 1);
      }
      this.confirming.delete(sid);
      if (s.status === "idle" && task) {
        this.log.warn("the turn never showed finished; taking OpenCode's idle", { session_id: sid });
        s.settling = false;
        this.finishTask("completed", null);
      }
      return;
    }
    this.confirming.delete(sid);
    s.settling = false;
    if (outcome.state === "failed") s.error = outcome.reason;
    this.checkBudget(sid);
    if (!task) return;
    if (task.budgetStop) {
      this.finishTask(
        outcome.state === "completed" ? "completed" : "interrupted",
        outcome.state === "completed"
          ? null
          : new AlpineError("budget_reached", task.budgetStop, { session_id: sid }),
      );
    } else if (outcome.state === "completed") {
      this.finishTask("completed", null);
    } else {
      this.finishTask(
        outcome.state,
        new AlpineError(
          "task_failed",
          `the agent ${outcome.state === "failed" ? "failed" : "was stopped"}: ${outcome.reason}`,
          {
            session_id: sid,
            error_name: outcome.errorName,
          },
        ),
      );
    }
  }

  private finishTask(state: "completed" | "failed" | "interrupted", error: AlpineError | null): void {
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
    opts: { newSession?: boolean; fallback?: string; budget?: Budget } = {},
  ): Promise<{ session_id: string }> {
    // A restored sandbox's conversation and spend first: the session and the budget depend on them.
    if (this.history) await this.history;
    if (this.task?.state === "running" || this.starting) {
      throw new AlpineError("agent_busy", "a task is already running in this sandbox", {
        session_id: this.task?.session_id ?? null,
      });
    }
    if (opts.budget) this.budget = opts.budget;
    // The sandbox's whole budget spent: a new turn would only be stopped again.
    const spent = budgetReached({ task: ZERO_USAGE, sandbox: this.usage }, { sandbox: this.budget?.sandbox });
    if (spent) {
      throw new AlpineError("budget_reached", spent.reason, { reason: spent.reason });
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
        budgetStop: null,
      };
      // Set before the prompt goes out: its events may arrive before the 204.
      this.task = t;
      const s = this.session(id);
      s.status = "busy";
      s.error = null;
      s.budget = null;
      s.settling = false;
      this.crash = null;
      // A new task is a new start: earlier budget stops in other sessions are history.
      for (const other of this.sessions.values()) other.budget = null;
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
