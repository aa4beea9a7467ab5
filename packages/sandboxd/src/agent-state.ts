import type { Usage } from "@alpine/core/sandboxd-api";
import type { AgentState } from "@alpine/core/schemas";
import type { Message, Part } from "@opencode-ai/sdk/v2";

/*
 * The agent's state and its one-line reason, derived from what OpenCode's events and
 * messages say (docs/json-contract.md, "Agent states"). Pure: agent.ts feeds it the
 * sessions it follows; the unit tests feed it tables.
 */

/** What sandboxd knows of one OpenCode session. */
export interface SessionView {
  status: "idle" | "busy" | "retry";
  /** OpenCode reported idle but the last assistant message is not complete yet: still working. */
  settling: boolean;
  /** Open permission requests / questions: id → what it asks. */
  waiting: Map<string, string>;
  /** The retry OpenCode is in: why and when it tries next. */
  retry: string | null;
  /** Why the session's last turn failed (model error, tool failure). */
  error: string | null;
  /** What the budget spent when it stopped the session's turn. */
  budget: string | null;
}

/** Outside any session: OpenCode itself went down while a task ran. */
export interface TrackerView {
  crash: string | null;
}

const oneLine = (s: string, max = 300) => {
  const t = s.replace(/\s+/g, " ").trim();
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
};

/**
 * The state, most pressing first: a question for the person, a retry, work in progress,
 * a budget stop, an error, idle.
 */
export function deriveAgent(
  sessions: Iterable<SessionView>,
  tracker: TrackerView,
): { state: AgentState; reason: string | null } {
  const all = [...sessions];
  const asking = all.find((s) => s.waiting.size > 0);
  if (asking) {
    const asks = [...asking.waiting.values()];
    return {
      state: "needs_input",
      reason: asks.length > 1 ? `${asks[0]} (+${asks.length - 1} more)` : asks[0]!,
    };
  }
  const retrying = all.find((s) => s.status === "retry");
  if (retrying) return { state: "retry", reason: retrying.retry };
  if (all.some((s) => s.status === "busy" || s.settling)) return { state: "busy", reason: null };
  const budget = all.find((s) => s.budget);
  if (budget) return { state: "budget", reason: budget.budget };
  const failed = all.find((s) => s.error);
  if (failed) return { state: "error", reason: failed.error };
  if (tracker.crash) return { state: "error", reason: tracker.crash };
  return { state: "idle", reason: null };
}

/** `permission.asked`'s properties → `asks permission: bash "rm -rf build"`. */
export function permissionReason(p: Record<string, unknown>): string {
  const what = typeof p.permission === "string" ? p.permission : "a tool";
  const patterns = Array.isArray(p.patterns)
    ? p.patterns.filter((x): x is string => typeof x === "string")
    : [];
  return oneLine(
    `asks permission: ${what}${patterns.length ? ` ${patterns.map((x) => JSON.stringify(x)).join(", ")}` : ""}`,
  );
}

/** `question.asked`'s properties → `asks: Which database? [Postgres | SQLite]`. */
export function questionReason(p: Record<string, unknown>): string {
  const qs = Array.isArray(p.questions) ? (p.questions as { question?: unknown; options?: unknown }[]) : [];
  const first = qs[0];
  const text = typeof first?.question === "string" ? first.question : "a question";
  const labels = Array.isArray(first?.options)
    ? (first.options as { label?: unknown }[])
        .map((o) => o.label)
        .filter((l): l is string => typeof l === "string")
    : [];
  const more = qs.length > 1 ? ` (+${qs.length - 1} more)` : "";
  return oneLine(`asks: ${text}${labels.length ? ` [${labels.join(" | ")}]` : ""}${more}`);
}

/** `session.status` retry → `retrying after: Internal Server Error (attempt 2, next at 12:00:04Z)`. */
export function retryReason(status: { attempt?: unknown; message?: unknown; next?: unknown }): string {
  const message = typeof status.message === "string" && status.message ? status.message : "an upstream error";
  const attempt = typeof status.attempt === "number" ? `attempt ${status.attempt}` : null;
  const next =
    typeof status.next === "number" && Number.isFinite(status.next)
      ? `next at ${new Date(status.next).toISOString().slice(11, 19)}Z`
      : null;
  const when = [attempt, next].filter(Boolean).join(", ");
  return oneLine(`retrying after: ${message}${when ? ` (${when})` : ""}`);
}

interface OcError {
  name?: string;
  data?: { message?: string; statusCode?: number; providerID?: string };
}

/** An OpenCode message/session error → `model error (HTTP 400): …`, `model auth failed (openai): …`. */
export function errorReason(err: unknown): string {
  const e = (err ?? {}) as OcError;
  const message = e.data?.message || e.name || "the agent reported an error";
  switch (e.name) {
    case "APIError":
      return oneLine(`model error${e.data?.statusCode ? ` (HTTP ${e.data.statusCode})` : ""}: ${message}`);
    case "ProviderAuthError":
      return oneLine(
        `model auth failed${e.data?.providerID ? ` (${e.data.providerID})` : ""}: ${message}; run \`alpine auth sync\``,
      );
    case "MessageAbortedError":
      return oneLine(`the turn was aborted: ${message}`);
    default:
      return oneLine(`${e.name ?? "error"}: ${message}`);
  }
}

/** Tokens and cost of one assistant message; null for a user message. */
export function messageUsage(info: Message): Usage | null {
  if (info.role !== "assistant") return null;
  const t = info.tokens;
  return {
    input: t?.input ?? 0,
    output: t?.output ?? 0,
    reasoning: t?.reasoning ?? 0,
    cache_read: t?.cache?.read ?? 0,
    cache_write: t?.cache?.write ?? 0,
    cost: typeof info.cost === "number" ? info.cost : 0,
  };
}

export type TurnOutcome =
  | { finished: false }
  | {
      finished: true;
      state: "completed" | "failed" | "interrupted";
      reason: string | null;
      errorName: string | null;
    };

/**
 * Whether the session's turn really finished, from its messages (OpenCode has reported idle
 * before the last assistant message completed): the last message is an assistant message
 * with a completion time. Then how it ended: an error on the message (aborted: interrupted),
 * a tool that failed with nothing after it, or completed.
 */
export function turnOutcome(messages: readonly { info: Message; parts: readonly Part[] }[]): TurnOutcome {
  const last = messages[messages.length - 1];
  if (last?.info.role !== "assistant") return { finished: false };
  const info = last.info;
  if (info.error) {
    if (info.error.name === "MessageAbortedError")
      return {
        finished: true,
        state: "interrupted",
        reason: errorReason(info.error),
        errorName: info.error.name,
      };
    return { finished: true, state: "failed", reason: errorReason(info.error), errorName: info.error.name };
  }
  if (!info.time.completed) return { finished: false };
  if (info.finish === "tool-calls" || info.finish === "unknown") {
    const failedTool = [...last.parts]
      .reverse()
      .find((p): p is Extract<Part, { type: "tool" }> => p.type === "tool" && p.state.status === "error");
    if (failedTool && failedTool.state.status === "error") {
      return {
        finished: true,
        state: "failed",
        reason: oneLine(`tool ${failedTool.tool} failed: ${failedTool.state.error}`),
        errorName: "ToolError",
      };
    }
    // Tools ran and the model has not answered them yet: another step follows.
    if (info.finish === "tool-calls") return { finished: false };
  }
  return { finished: true, state: "completed", reason: null, errorName: null };
}
