import { AlpineError } from "@alpine/core/errors";
import type { Message, Part, Session, SessionPromptAsyncData, SessionStatus } from "@opencode-ai/sdk/v2";

/*
 * OpenCode's REST calls that sandboxd makes, with plain fetch rather than the
 * SDK client: every call gets a short timeout, and the running OpenCode's
 * address changes when it restarts on a new port. The SDK's generated types
 * describe the bodies. (The /event stream is followed in agent.ts.)
 */

/** Where the running OpenCode answers, and the Authorization header it wants. */
export interface OpencodeEndpoint {
  readonly baseUrl: string;
  readonly authorization: string;
}

const CALL_TIMEOUT_MS = 10_000;

function headers(oc: OpencodeEndpoint, json = false): Record<string, string> {
  const h: Record<string, string> = { authorization: oc.authorization };
  if (json) h["content-type"] = "application/json";
  return h;
}

/** POST /session: a new session's id; task_failed when OpenCode refuses. */
export async function createSession(oc: OpencodeEndpoint): Promise<string> {
  const res = await fetch(`${oc.baseUrl}/session`, {
    method: "POST",
    headers: headers(oc, true),
    body: "{}",
    signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
  });
  if (!res.ok) {
    const body = await res.text().catch((err: unknown) => `(body unreadable: ${String(err)})`);
    throw new AlpineError("task_failed", `OpenCode could not create a session (HTTP ${res.status})`, {
      body: body.slice(0, 500),
    });
  }
  const session = (await res.json()) as Session;
  return session.id;
}

/** POST /session/:id/prompt_async with `text` (and `model` as "provider/model" when set); the raw answer. */
export function promptAsync(
  oc: OpencodeEndpoint,
  sessionId: string,
  text: string,
  model: string | undefined,
): Promise<Response> {
  const body: NonNullable<SessionPromptAsyncData["body"]> = { parts: [{ type: "text", text }] };
  if (model) {
    const slash = model.indexOf("/");
    body.model = { providerID: model.slice(0, slash), modelID: model.slice(slash + 1) };
  }
  return fetch(`${oc.baseUrl}/session/${encodeURIComponent(sessionId)}/prompt_async`, {
    method: "POST",
    headers: headers(oc, true),
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
  });
}

/** GET /session/status: the sessions that are not idle, or null when OpenCode did not answer 2xx. */
export async function activeSessions(oc: OpencodeEndpoint): Promise<Record<string, SessionStatus> | null> {
  const res = await fetch(`${oc.baseUrl}/session/status`, {
    headers: headers(oc),
    signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
  });
  if (!res.ok) return null;
  return (await res.json()) as Record<string, SessionStatus>;
}

/** The most recently updated top-level session OpenCode lists for `directory` (asked for 1.5 s at most), or null. */
export async function newestSession(oc: OpencodeEndpoint, directory: string): Promise<string | null> {
  const res = await fetch(`${oc.baseUrl}/session?directory=${encodeURIComponent(directory)}`, {
    headers: headers(oc),
    signal: AbortSignal.timeout(1500),
  });
  if (!res.ok) return null;
  const list = (await res.json()) as Session[];
  if (!Array.isArray(list)) return null;
  const newest = list
    .filter((s) => typeof s?.id === "string" && !s.parentID)
    .sort((a, b) => (b.time?.updated ?? 0) - (a.time?.updated ?? 0))[0];
  return newest?.id ?? null;
}

/** POST /session/:id/abort: stops the session's turn (what it did so far stays); false when OpenCode refused. */
export async function abortSession(oc: OpencodeEndpoint, sessionId: string): Promise<boolean> {
  const res = await fetch(`${oc.baseUrl}/session/${encodeURIComponent(sessionId)}/abort`, {
    method: "POST",
    headers: headers(oc),
    signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
  });
  await res.body?.cancel();
  return res.ok;
}

/** GET /session/:id/message: the session's messages with their parts, oldest first; null when OpenCode did not answer 2xx. */
export async function sessionMessages(
  oc: OpencodeEndpoint,
  sessionId: string,
): Promise<{ info: Message; parts: Part[] }[] | null> {
  const res = await fetch(`${oc.baseUrl}/session/${encodeURIComponent(sessionId)}/message`, {
    headers: headers(oc),
    signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
  });
  if (!res.ok) {
    await res.body?.cancel();
    return null;
  }
  const list = (await res.json()) as { info: Message; parts: Part[] }[];
  return Array.isArray(list) ? list : null;
}
