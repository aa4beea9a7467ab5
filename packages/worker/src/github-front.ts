import { AlpineError, type ExportResult, type SandboxRecord, toAlpineError } from "@alpine/core";
import { formatUsage } from "@alpine/core/budget";
import { doneComment, githubSignalOf } from "@alpine/core/github-front";
import { type GithubAppEnv, installationToken } from "./github-app.ts";

/**
 * GitHub as a front door of the control plane (docs/cloudflare.md, "Tasks from GitHub").
 *
 * The Worker's side (github-webhook.ts), `POST /github/webhook`: a signed `issue_comment` event
 * whose comment starts `/alpine <task>`, by a user the allow-list admits, launches (or continues)
 * the sandbox of that issue or pull request, owned by `github:<login>`, and acknowledges it with a
 * reaction and a comment. The sandbox object's side, here: when the agent is done it exports the
 * work (a pull request opened or updated) and comments with the link, the cost and the files; needs
 * input, errors and budgets are commented too, each once per task (a ledger in the object's
 * storage). The REST client both sides use is here too.
 */

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
  /** The App's installation the webhook came through (`installation.id`): whose token acts. */
  installation_id: number | null;
}

const ORIGIN_KEY = "github:origin";
const SENT_PREFIX = "github:sent:";
const TRIES_PREFIX = "github:tries:";
/** Attempts at a report (export, pull request, comment) before it is given up with an error comment. */
const REPORT_TRIES = 3;

/** The Worker's bindings the GitHub API needs (env.ts): the App (github-app.ts). */
export type GithubTokenEnv = GithubAppEnv;

// ---------- the GitHub REST API ----------

/** The few REST calls the front door makes, with an installation's token, against GITHUB_API_URL. */
export class GithubApi {
  constructor(
    private readonly base: string,
    /** The installation token: also git's password (`x-access-token`) for one clone or push. */
    readonly token: string,
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
        res.status === 401 || res.status === 403 ? "github_auth_missing" : "control_plane_error",
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

/** The API as the App's installation `installationId` (its token cached per isolate, github-app.ts). */
export async function githubApi(env: GithubTokenEnv, installationId: number | null): Promise<GithubApi> {
  const token = await installationToken(env, installationId ?? 0);
  return new GithubApi(env.GITHUB_API_URL || "https://api.github.com", token);
}

// ---------- reporting back (the sandbox object, contract 2) ----------

/** The object's key/value storage (DoStateStore's): where the origin and the ledger are kept. */
interface Kv {
  getKv(key: string): string | null;
  setKv(key: string, value: string | null): void;
}

export interface ReportDeps {
  env: GithubTokenEnv;
  store: Kv;
  /** The export of this sandbox with `token` (the installation's) for the push and the pull request. */
  exportWork(input: { branch?: string; pr: boolean }, token: string): Promise<ExportResult>;
}

export function rememberOrigin(store: Kv, origin: GithubOrigin): void {
  const kept = originOf(store);
  // A continued sandbox keeps the pull request its earlier work went to.
  store.setKv(ORIGIN_KEY, JSON.stringify({ ...origin, pr_url: kept?.pr_url ?? origin.pr_url }));
}

function originOf(store: Kv): GithubOrigin | null {
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
    api = await githubApi(deps.env, origin.installation_id);
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
    const result = await deps.exportWork({ branch: origin.head_ref, pr: false }, api.token);
    prUrl = (await api.pull(origin.repo, origin.number)).html_url;
    updated = true;
    return doneFor(record, result, prUrl, updated, origin.head_ref);
  }
  if (!prUrl) {
    prUrl = await api.openPullFrom(origin.repo, record.branch);
    updated = prUrl !== null;
  }
  const result = await deps.exportWork({ pr: prUrl === null }, api.token);
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
