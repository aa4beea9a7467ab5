import { AlpineError, allowListOf, ConfigSchema, mayAct, NDJSON, type RemoteEvent } from "@alpine/core";
import {
  admits,
  githubSandboxName,
  parseAlpineCommand,
  verifyGithubSignature,
} from "@alpine/core/github-front";
import type { Context } from "hono";
import type { Env } from "./env.ts";
import { type GithubApi, githubApi } from "./github-front.ts";
import { errorResponse } from "./http.ts";
import { PRINCIPAL_HEADER, type Principal } from "./identity.ts";
import { uiLinks } from "./ui-origin.ts";

/**
 * `POST /github/webhook`, the Worker's side of GitHub's front door (github-front.ts has the
 * sandbox object's side and the API client; docs/cloudflare.md, "Tasks from GitHub").
 */

/** Commands a user may give per window (ALPINE_GITHUB_RATE_LIMIT, default 20 an hour). */
const RATE_WINDOW_MS = 3600_000;

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
  /** The App's installation the event came through (a GitHub App's webhook always names it). */
  installation?: { id?: number };
}

const accepted = (what: string, extra: Record<string, unknown> = {}) =>
  Response.json({ ok: true, [what]: true, ...extra }, { status: 202 });

/** `POST /github/webhook`. */
// biome-ignore lint/suspicious/noExplicitAny: only Bindings is read; the app's Variables do not matter here
export async function githubWebhook(c: Context<{ Bindings: Env; Variables: any }>): Promise<Response> {
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

  // Until the launch is handed to the sandbox's object, a failure (GitHub's API down) gives the
  // delivery back, so that GitHub's redelivery can try again.
  let handedOff = false;
  try {
    const installationId = event.installation?.id ?? null;
    const api = await githubApi(env, installationId);
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
    const admin = list.admins.includes(login.toLowerCase());
    const principal: Principal = { id: `github:${login}`, login, admin, via: "github-app" };
    // Someone else's live sandbox: refused here, before any "working on it", as its object would refuse the task.
    const existing = (await registry.list()).find((i) => i.name === name);
    if (existing && existing.state !== "destroyed" && !mayAct(principal, existing)) {
      await api.comment(
        repo,
        issue,
        `alpine: @${login}, sandbox \`${name}\` belongs to someone else; only its owner or an admin may give it tasks.`,
      );
      return accepted("refused", { forbidden: true });
    }
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
    await sandbox.rememberGithub(name, {
      repo,
      number: issue,
      head_ref: headRef,
      origin,
      pr_url: null,
      installation_id: installationId,
    });
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
    handedOff = true;
    const res = await sandbox.fetch(
      new Request("https://sandbox-object/launch", {
        method: "POST",
        headers: {
          accept: NDJSON,
          "content-type": "application/json",
          "x-alpine-name": name,
          "x-alpine-origin": origin,
          // Contract 1 (identity.ts's Principal): the sandbox's owner at its first launch.
          [PRINCIPAL_HEADER]: JSON.stringify(principal),
        },
        body: JSON.stringify({
          repo: cloneUrl,
          ...(headRef ? { ref: headRef } : {}),
          task,
          config,
          // This request only: the object never stores it (it asks for it again to push).
          credentials: { username: "x-access-token", password: api.token },
        }),
      }),
    );
    // The launch streams on in the object (it runs to its end without a reader); a failure is
    // commented on the issue while this Worker invocation lasts.
    c.executionCtx.waitUntil(reportLaunchFailure(res, api, repo, issue, name));
    return accepted("launched", { sandbox: name });
  } catch (err) {
    if (!handedOff) await registry.releaseDelivery(delivery);
    throw err;
  }
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
