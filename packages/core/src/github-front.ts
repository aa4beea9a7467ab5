/**
 * GitHub as a front door of the control plane (docs/cloudflare.md, "Tasks from GitHub"): the pure
 * parts. The webhook's signature, the `/alpine <task>` command of a comment, the sandbox's name
 * for an issue or pull request, the allow-list, the per-user rate limit and what a sandbox's
 * agent state is worth reporting back. WebCrypto only (no `node:`): the Worker runs it.
 */
import { hmacSha256, hmacSha256Verify, toHex } from "./hmac.ts";
import { NAME_PATTERN } from "./names.ts";
import { type NotifyEvent, type NotifyTask, notifyEventFor } from "./notify.ts";
import { type AllowList, signInDecision } from "./permissions.ts";
import type { SandboxRecord } from "./schemas.ts";

/**
 * Whether `header` (`X-Hub-Signature-256: sha256=<hex>`) is the HMAC-SHA256 of the raw `body`
 * under `secret`. WebCrypto's `verify` compares the MACs itself (in constant time); a header of
 * the wrong form, an empty secret or a different MAC is false.
 */
export async function verifyGithubSignature(
  secret: string,
  body: string,
  header: string | null | undefined,
): Promise<boolean> {
  if (!secret || !header) return false;
  const m = /^sha256=([0-9a-f]{64})$/i.exec(header.trim());
  if (!m) return false;
  const mac = new Uint8Array(32);
  for (let i = 0; i < 32; i++) mac[i] = Number.parseInt(m[1]!.slice(i * 2, i * 2 + 2), 16);
  return hmacSha256Verify(secret, body, mac);
}

/** `sha256=<hex>` of `body` under `secret`: what GitHub sends (and the tests sign with). */
export async function signGithubPayload(secret: string, body: string): Promise<string> {
  return `sha256=${toHex(await hmacSha256(secret, body))}`;
}

/**
 * The task of a comment that starts with `/alpine ` (leading blank lines and spaces allowed):
 * the rest of the comment, trimmed. `/alpine` alone, `/alpinex …` or a command later in the
 * comment is no command (null): only a comment meant for alpine starts it.
 */
export function parseAlpineCommand(body: string | null | undefined): string | null {
  const m = /^\s*\/alpine(?:[ \t]+|\r?\n)([\s\S]*)$/.exec(body ?? "");
  const task = m?.[1]?.trim();
  return task ? task : null;
}

/** FNV-1a, 32 bits, as 8 hex digits: a short stable suffix (not a security property). */
function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, "0");
}

/**
 * The sandbox of an issue or pull request: `gh-<owner>-<repo>-<number>`, lowercase, other
 * characters as `-`. The same issue always names the same sandbox (a reply continues it); a name
 * over 50 characters keeps its start and number and gets a hash of the full name, so two long
 * names that share a start still differ.
 */
export function githubSandboxName(fullName: string, number: number): string {
  const slug = fullName
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "");
  const tail = `-${number}`;
  let name = `gh-${slug}${tail}`;
  if (name.length > 50) {
    const hash = `-${fnv1a(fullName.toLowerCase())}`;
    name = `gh-${slug.slice(0, 50 - 3 - hash.length - tail.length).replace(/-+$/, "")}${hash}${tail}`;
  }
  if (!NAME_PATTERN.test(name)) throw new Error(`internal: ${name} is not a sandbox name`);
  return name;
}

/**
 * Whether `login` may start work: listed as a user or an admin, or a member of a listed org
 * (`orgsOf` asks GitHub, only when orgs are listed and the login is not already admitted).
 * GitHub logins are case-insensitive. An empty allow-list admits no one.
 */
export async function admits(
  list: AllowList,
  login: string,
  orgsOf: (login: string) => Promise<string[]>,
): Promise<boolean> {
  // The same rule as a sign-in (permissions.ts); GitHub is asked for orgs only when it can matter.
  if (signInDecision(list, login, []).allowed) return true;
  if (list.orgs.length === 0) return false;
  return signInDecision(list, login, await orgsOf(login)).allowed;
}

/** One user's fixed window: when it began and how many commands it admitted. */
export interface RateWindow {
  start: number;
  count: number;
}

/**
 * The per-user rate limit: at most `limit` commands a window of `windowMs`. A command in a new
 * window starts it at 1; a refused command does not count (the window is kept as it was).
 */
export function rateLimitDecision(
  previous: RateWindow | null,
  now: number,
  opts: { limit: number; windowMs: number },
): { allowed: boolean; window: RateWindow; retryAfterMs: number } {
  if (!previous || now - previous.start >= opts.windowMs || now < previous.start) {
    return {
      allowed: opts.limit > 0,
      window: { start: now, count: opts.limit > 0 ? 1 : 0 },
      retryAfterMs: 0,
    };
  }
  if (previous.count < opts.limit) {
    return { allowed: true, window: { start: previous.start, count: previous.count + 1 }, retryAfterMs: 0 };
  }
  return { allowed: false, window: previous, retryAfterMs: previous.start + opts.windowMs - now };
}

/** What a sandbox started from GitHub reports back, and the ledger key that keeps it to once. */
export interface GithubSignal {
  event: NotifyEvent;
  /** Per sandbox, task (its session and start) and event: a repeated alarm finds it sent. */
  key: string;
}

/** The signal the record's agent state is worth (core's notify rule), or null. */
export function githubSignalOf(record: SandboxRecord): GithubSignal | null {
  const task: NotifyTask | null = record.task
    ? {
        session_id: record.task.session_id ?? "-",
        prompt_summary: record.task.prompt_summary,
        state: record.task.state ?? "running",
        started_at: record.task.started_at,
      }
    : null;
  const event = notifyEventFor(record.agent, task);
  if (!event) return null;
  return { event, key: `${task ? `${task.session_id}@${task.started_at}` : "-"}/${event}` };
}

/** A code span that a backtick in `text` cannot end. */
function code(text: string): string {
  return text.includes("`") ? `\`\` ${text} \`\`` : `\`${text}\``;
}

/** The comment for a finished task: the pull request, what the agent spent, the files it changed. */
export function doneComment(opts: {
  name: string;
  prUrl: string | null;
  branch: string;
  updated: boolean;
  cost: string | null;
  files: string[];
}): string {
  const shown = opts.files.slice(0, 30).map((f) => `- ${code(f)}`);
  if (opts.files.length > 30) shown.push(`- … and ${opts.files.length - 30} more`);
  const where = opts.prUrl
    ? `${opts.updated ? "Updated" : "Opened"} ${opts.prUrl}`
    : `Pushed to ${code(opts.branch)}`;
  return [
    `alpine: the agent in sandbox ${code(opts.name)} is done. ${where}.`,
    "",
    `Cost: ${opts.cost ?? "not reported"}.`,
    "",
    opts.files.length ? `Changed files (${opts.files.length}):` : "No files changed.",
    ...shown,
  ].join("\n");
}
