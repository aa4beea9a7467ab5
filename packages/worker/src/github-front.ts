import {
  AlpineError,
  ConfigSchema,
  type ExportResult,
  NDJSON,
  type RemoteEvent,
  type SandboxRecord,
  toAlpineError,
} from "@alpine/core";
import { formatUsage } from "@alpine/core/budget";
import {
  admits,
  allowListOf,
  doneComment,
  githubSandboxName,
  githubSignalOf,
  parseAlpineCommand,
  verifyGithubSignature,
} from "@alpine/core/github-front";
import type { Context } from "hono";
import type { DoStateStore } from "./do-store.ts";
import type { Env } from "./env.ts";
import { errorResponse } from "./http.ts";
import { uiLinks } from "./ui-origin.ts";

/**
 * GitHub as a front door of the control plane (docs/cloudflare.md, "Tasks from GitHub").
 *
 * The Worker's side, `POST /github/webhook`: a signed `issue_comment` event whose comment starts
 * `/alpine <task>`, by a user the allow-list admits, launches (or continues) the sandbox of that
 * issue or pull request, owned by `github:<login>`, and acknowledges it with a reaction and a
 * comment. The sandbox object's side, `reportToGithub`: when the agent is done it exports the work
 * (a pull request opened or updated) and comments with the link, the cost and the files; needs
 * input, errors and budgets are commented too, each once per task (a ledger in the object's storage).
 */

/** Commands a user may give per window (ALPINE_GITHUB_RATE_LIMIT, default 20 an hour). */
const RATE_WINDOW_MS = 3600_000;

/** Where a GitHub-started sandbox came from; kept in its object's storage (`github:origin`). */
export interface GithubOrigin {
  /** `owner/name` */
  repo: string;
  number: number;
  /** A pull request's comment: the sandbox works on the pull request's head branch. */
  head_ref: string | null;
  /** The control plane's origin the webhook reached (links in comments). */
  origin: string;
  /** The pull request this sandbox's work went to (opened or found), once known. */
  pr_url: string | null;
}

const ORIGIN_KEY = "github:origin";
const SENT_PREFIX = "github:sent:";
const TRIES_PREFIX = "github:tries:";
/** Attempts at a report (export, pull request, comment) before it is given up with an error comment. */
const REPORT_TRIES = 3;

// ---------- the GitHub REST API ----------

/** The few REST calls the front door makes, with the deployment's token, against GITHUB_API_URL. */
export class GithubApi {
  constructor(
    private readonly base: string,
    private readonly token: string,
  ) {}

  async call<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(`${this.base.replace(/\/+$/, "")}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${this.token}`,
        accept: "application/vnd.github+json",
        "user-agent": "alpine",
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    // A body that is not JSON still has its status, which decides below.
    const value = (await res.json().catch(() => ({}))) as Record<string, unknown>;
    if (!res.ok) {
      throw new AlpineError(
        res.status === 401 || res.status === 403 ? "github_auth_missing" : "pr_failed",
        `GitHub answered ${method} ${path} with ${res.status}: ${String(value.message ?? "")}`,
        { status: res.status },
      );
    }
    return value as T;
  }

  react(repo: string, commentId: number, content: "+1" | "eyes" | "confused"): Promise<unknown> {
    return this.call("POST", `/repos/${repo}/issues/comments/${commentId}/reactions`, { content });
  }

  comment(repo: string, number: number, body: string): Promise<unknown> {
    return this.call("POST", `/repos/${repo}/issues/${number}/comments`, { body });
  }

  pull(repo: string, number: number) {
    return this.call<{ head: { ref: string; repo: { full_name: string } | null }; html_url: string }>(
      "GET",
      `/repos/${repo}/pulls/${number}`,
    );
  }

  /** The open pull request from `branch` of this repo, if there is one. */
  async openPullFrom(repo: string, branch: string): Promise<string | null> {
    const owner = repo.split("/")[0];
    const list = await this.call<unknown>(
      "GET",
      `/repos/${repo}/pulls?state=open&head=${encodeURIComponent(`${owner}:${branch}`)}`,
    );
    const first = Array.isArray(list) ? (list[0] as { html_url?: string } | undefined) : undefined;
    return first?.html_url ?? null;
  }

  async orgsOf(login: string): Promise<string[]> {
    const list = await this.call<unknown>("GET", `/users/${encodeURIComponent(login)}/orgs`);
    return Array.isArray(list) ? list.map((o) => String((o as { login?: unknown }).login ?? "")) : [];
  }
}

function githubApi(env: Env): GithubApi {
  const token = env.GITHUB_APP_TOKEN;
  if (!token) {
    throw new AlpineError("github_auth_missing", "the control plane has no GITHUB_APP_TOKEN secret", {});
  }
  return new GithubApi(env.GITHUB_API_URL || "https://api.github.com", token);
}

/**
 * The config GitHub-started sandboxes run with: ALPINE_GITHUB_CONFIG (alpine.yaml's content as
 * JSON: model, auth providers, budgets…), its `github.api_url` set to GITHUB_API_URL.
 */
export function githubLaunchConfig(env: Env): Record<string, unknown> {
  let raw: unknown = {};
  try {
    raw = JSON.parse(env.ALPINE_GITHUB_CONFIG || "{}");
  } catch (err) {
    throw new AlpineError("config_invalid", `ALPINE_GITHUB_CONFIG is not JSON: ${String(err)}`, {});
  }
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) {
    throw new AlpineError(
      "config_invalid",
      "ALPINE_GITHUB_CONFIG must be a JSON object (alpine.yaml as JSON)",
      {},
    );
  }
  const config = raw as Record<string, unknown>;
  const github = { ...((config.github as Record<string, unknown> | undefined) ?? {}) };
  if (env.GITHUB_API_URL) github.api_url = env.GITHUB_API_URL;
  const out = { ...config, github };
  const parsed = ConfigSchema.safeParse(out);
  if (!parsed.success) {
    throw new AlpineError("config_invalid", "ALPINE_GITHUB_CONFIG is not a valid alpine config", {
      issues: parsed.error.issues.map((i) => ({ path: i.path.join("."), message: i.message })),
    });
  }
  return out;
}

// ---------- the webhook (the Worker) ----------

interface CommentEvent {
  action?: string;
  comment?: { id?: number; body?: string; user?: { login?: string; type?: string } };
  issue?: { number?: number; pull_request?: unknown };
  repository?: { full_name?: string; clone_url?: string };
}

const accepted = (what: string, extra: Record<string, unknown> = {}) =>
  Response.json({ ok: true, [what]: true, ...extra }, { status: 202 });

/** `POST /github/webhook`. */
export async function githubWebhook(c: Context<{ Bindings: Env }>): Promise<Response> {
  const env = c.env;
  const body = await c.req.text();
  if (
    !(await verifyGithubSignature(env.GITHUB_WEBHOOK_SECRET ?? "", body, c.req.header("x-hub-signature-256")))
  ) {
    return errorResponse(
      new AlpineError(
        "unauthorized",
        env.GITHUB_WEBHOOK_SECRET
          ? "the webhook's X-Hub-Signature-256 is missing or wrong"
          : "the control plane has no GITHUB_WEBHOOK_SECRET secret",
        {},
      ),
    );
  }
  const kind = c.req.header("x-github-event") ?? "";
  if (kind === "ping") return Response.json({ ok: true, pong: true });
  let event: CommentEvent;
  try {
    event = JSON.parse(body) as CommentEvent;
  } catch {
    return errorResponse(new AlpineError("usage_invalid", "the webhook's body is not JSON", {}));
  }
  if (kind !== "issue_comment" || event.action !== "created") return accepted("ignored", { event: kind });
  const task = parseAlpineCommand(event.comment?.body);
  const login = event.comment?.user?.login ?? "";
  const repo = event.repository?.full_name ?? "";
  const number = event.issue?.number;
  const commentId = event.comment?.id;
  const cloneUrl = event.repository?.clone_url ?? "";
  if (!task || event.comment?.user?.type === "Bot") return accepted("ignored");
  if (!login || !/^[\w.-]+\/[\w.-]+$/.test(repo) || !Number.isInteger(number) || !cloneUrl) {
    return errorResponse(
      new AlpineError("usage_invalid", "the issue_comment event lacks its repository, issue or user", {}),
    );
  }
  const registry = env.REGISTRY.getByName("registry");
  const delivery = c.req.header("x-github-delivery") ?? "";
  if (!delivery)
    return errorResponse(new AlpineError("usage_invalid", "the webhook has no X-GitHub-Delivery", {}));
  if (!(await registry.claimDelivery(delivery))) return Response.json({ ok: true, duplicate: true });

  const api = githubApi(env);
  const list = allowListOf(env);
  if (!(await admits(list, login, (who) => api.orgsOf(who)))) {
    // No answer on GitHub: a comment to everyone who types the command would be a way to make noise.
    console.log("alpine: a /alpine command from a user the allow-list does not admit", { login, repo });
    return accepted("ignored", { not_allowed: true });
  }
  const issue = number as number;
  const limit = Math.max(0, Number(env.ALPINE_GITHUB_RATE_LIMIT ?? 20));
  const rate = await registry.admitCommand(login, { limit, windowMs: RATE_WINDOW_MS });
  if (!rate.allowed) {
    const minutes = Math.max(1, Math.ceil(rate.retryAfterMs / 60_000));
    await api.comment(
      repo,
      issue,
      `alpine: @${login}, you have given ${limit} commands this hour, the most allowed; try again in ${minutes} min.`,
    );
    return accepted("rate_limited");
  }

  const name = githubSandboxName(repo, issue);
  const origin = new URL(c.req.url).origin;
  let headRef: string | null = null;
  if (event.issue?.pull_request) {
    const pull = await api.pull(repo, issue);
    if (pull.head.repo?.full_name?.toLowerCase() !== repo.toLowerCase()) {
      await api.comment(
        repo,
        issue,
        "alpine: this pull request's branch is in a fork; alpine works only on branches of this repository.",
      );
      return accepted("refused", { fork: true });
    }
    headRef = pull.head.ref;
  }
  const config = githubLaunchConfig(env);
  if (typeof commentId === "number") await api.react(repo, commentId, "eyes");
  const sandbox = env.SANDBOX.getByName(name);
  await sandbox.rememberGithub(name, { repo, number: issue, head_ref: headRef, origin, pr_url: null });
  const links = uiLinks(env, origin, name);
  await api.comment(
    repo,
    issue,
    [
      `alpine: working on it in sandbox \`${name}\` for @${login}.`,
      "",
      `Dashboard: ${origin}/ · sandbox: ${links.web}`,
    ].join("\n"),
  );
  const admin = list.admins.includes(login.toLowerCase());
  const res = await sandbox.fetch(
    new Request("https://sandbox-object/launch", {
      method: "POST",
      headers: {
        accept: NDJSON,
        "content-type": "application/json",
        "x-alpine-name": name,
        "x-alpine-origin": origin,
        // Contract 1 (identity.ts's Principal): the sandbox's owner at its first launch.
        "x-alpine-principal": JSON.stringify({ id: `github:${login}`, login, admin, via: "github-app" }),
      },
      body: JSON.stringify({
        repo: cloneUrl,
        ...(headRef ? { ref: headRef } : {}),
        task,
        config,
        // This request only: the object never stores it (it asks for it again to push).
        credentials: { username: "x-access-token", password: env.GITHUB_APP_TOKEN },
      }),
    }),
  );
  // The launch streams on in the object (it runs to its end without a reader); a failure is
  // commented on the issue while this Worker invocation lasts.
  c.executionCtx.waitUntil(reportLaunchFailure(res, api, repo, issue, name));
  return accepted("launched", { sandbox: name });
}

/** Reads the launch's NDJSON answer to its result; a failed launch is commented on the issue. */
async function reportLaunchFailure(
  res: Response,
  api: GithubApi,
  repo: string,
  issue: number,
  name: string,
): Promise<void> {
  try {
    let failure: string | null = null;
    if (!(res.headers.get("content-type") ?? "").includes(NDJSON)) {
      const value = (await res.json().catch(() => ({}))) as { error?: string };
      if (!res.ok) failure = value.error ?? `status ${res.status}`;
    } else {
      const text = await res.text();
      for (const line of text.split("\n")) {
        if (!line.trim()) continue;
        const ev = JSON.parse(line) as RemoteEvent;
        if (ev.type === "result" && !ev.ok) failure = `${ev.error.error} (${ev.error.reason_code})`;
      }
    }
    if (failure) await api.comment(repo, issue, `alpine: sandbox \`${name}\` could not start: ${failure}`);
  } catch (err) {
    console.warn("alpine: reading a GitHub launch's result failed", { name, error: String(err) });
  }
}

// ---------- reporting back (the sandbox object, contract 2) ----------

export interface ReportDeps {
  env: Env;
  store: DoStateStore;
  /** The export of this sandbox with the deployment's token for the push and the pull request. */
  exportWork(input: { branch?: string; pr: boolean }): Promise<ExportResult>;
}

export function rememberOrigin(store: DoStateStore, origin: GithubOrigin): void {
  const kept = originOf(store);
  // A continued sandbox keeps the pull request its earlier work went to.
  store.setKv(ORIGIN_KEY, JSON.stringify({ ...origin, pr_url: kept?.pr_url ?? origin.pr_url }));
}

function originOf(store: DoStateStore): GithubOrigin | null {
  const raw = store.getKv(ORIGIN_KEY);
  return raw ? (JSON.parse(raw) as GithubOrigin) : null;
}

/**
 * Reports the agent's new state on the issue or pull request the sandbox was started from: done
 * (export, pull request, comment), needs input, error, budget. Each at most once per task (the
 * ledger key is written when its comment went out); a failed attempt is tried again by the next
 * alarm, REPORT_TRIES times, then given up with an error comment. Never throws: the alarm's own
 * policy goes on whatever happened here.
 */
export async function reportToGithub(deps: ReportDeps, record: SandboxRecord): Promise<void> {
  const origin = originOf(deps.store);
  if (!origin) return;
  const signal = githubSignalOf(record);
  if (!signal) return;
  const key = `${record.id}/${signal.key}`;
  if (deps.store.getKv(SENT_PREFIX + key)) return;
  let api: GithubApi;
  try {
    api = githubApi(deps.env);
  } catch (err) {
    console.warn("alpine: cannot report to GitHub", { name: record.name, error: String(err) });
    return;
  }
  const tries = Number(deps.store.getKv(TRIES_PREFIX + key) ?? 0) + 1;
  try {
    const body = await reportBody(deps, api, origin, record, signal.event);
    await api.comment(origin.repo, origin.number, body);
    deps.store.setKv(SENT_PREFIX + key, new Date().toISOString());
    deps.store.setKv(TRIES_PREFIX + key, null);
  } catch (err) {
    const error = toAlpineError(err);
    console.warn("alpine: reporting to GitHub failed", { name: record.name, tries, error: error.toJSON() });
    deps.store.setKv(TRIES_PREFIX + key, String(tries));
    if (tries < REPORT_TRIES) return;
    // Given up: said once on the issue (best effort), never tried again.
    deps.store.setKv(SENT_PREFIX + key, new Date().toISOString());
    await api
      .comment(
        origin.repo,
        origin.number,
        `alpine: sandbox \`${record.name}\` finished, but reporting its work failed: ${error.message} (${error.reason})`,
      )
      .catch((e: unknown) => console.warn("alpine: the give-up comment failed too", { error: String(e) }));
  }
}

async function reportBody(
  deps: ReportDeps,
  api: GithubApi,
  origin: GithubOrigin,
  record: SandboxRecord,
  event: NonNullable<ReturnType<typeof githubSignalOf>>["event"],
): Promise<string> {
  const name = `\`${record.name}\``;
  const reason = record.agent_reason ?? record.error?.error ?? null;
  if (event === "input") {
    return `alpine: the agent in sandbox ${name} needs input${reason ? `: ${reason}` : "."}\n\nAnswer with \`/alpine <your answer>\`.`;
  }
  if (event === "error") return `alpine: the agent in sandbox ${name} failed${reason ? `: ${reason}` : "."}`;
  if (event === "budget") {
    return `alpine: the agent in sandbox ${name} stopped at its budget${reason ? `: ${reason}` : "."}`;
  }
  // done: the work goes to the pull request's branch, or to the sandbox's own with a pull request.
  let prUrl = origin.pr_url;
  let updated = prUrl !== null;
  if (origin.head_ref) {
    const result = await deps.exportWork({ branch: origin.head_ref, pr: false });
    prUrl = (await api.pull(origin.repo, origin.number)).html_url;
    updated = true;
    return doneFor(record, result, prUrl, updated, origin.head_ref);
  }
  if (!prUrl) {
    prUrl = await api.openPullFrom(origin.repo, record.branch);
    updated = prUrl !== null;
  }
  const result = await deps.exportWork({ pr: prUrl === null });
  prUrl = prUrl ?? result.pr_url;
  if (prUrl) rememberOrigin(deps.store, { ...origin, pr_url: prUrl });
  return doneFor(result.record, result, prUrl, updated, record.branch);
}

function doneFor(
  record: SandboxRecord,
  result: ExportResult,
  prUrl: string | null,
  updated: boolean,
  branch: string,
): string {
  const usage = result.record.usage ?? record.usage;
  return doneComment({
    name: record.name,
    prUrl,
    branch,
    updated,
    cost: usage ? formatUsage(usage) : null,
    files: result.record.changes?.files ?? [],
  });
}
