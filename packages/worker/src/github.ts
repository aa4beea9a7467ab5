import type { AlpineConfig, PullRequestOpener } from "@alpine/core";
import { AlpineError } from "@alpine/core/errors";

/** Hosts whose pushes need credentials under github.require_auth (same rule as the CLI). */
export function isGithubHost(host: string, config: AlpineConfig): boolean {
  if (host === "github.com" || host.endsWith(".github.com")) return true;
  try {
    const api = new URL(config.github.api_url).hostname;
    return host === api || host === api.replace(/^api\./, "");
  } catch {
    return false; // github.api_url is not a URL: no host matches it
  }
}

export function requiresAuth(repo: string, config: AlpineConfig): boolean {
  if (!config.github.require_auth) return false;
  try {
    return isGithubHost(new URL(repo).hostname, config);
  } catch {
    return false; // not a URL (a local path): no GitHub host to authenticate to
  }
}

function repoOf(remote: string): { owner: string; repo: string } {
  let url: URL;
  try {
    url = new URL(remote);
  } catch {
    throw new AlpineError("pr_failed", `cannot open a pull request for ${remote}: not a GitHub URL`, {
      repo: remote,
    });
  }
  const parts = url.pathname
    .replace(/^\/+|\/+$/g, "")
    .replace(/\.git$/, "")
    .split("/");
  if (parts.length < 2)
    throw new AlpineError("pr_failed", `cannot tell owner/repo from ${remote}`, { repo: remote });
  return { owner: parts.at(-2)!, repo: parts.at(-1)! };
}

/**
 * Pull requests through the GitHub REST API with plain fetch (octokit is a
 * Node-first dependency the Worker does not need). The token is the one the
 * CLI sent with this export request; it is never stored.
 */
export class FetchPullRequests implements PullRequestOpener {
  constructor(
    private readonly config: AlpineConfig,
    private readonly token: string | null,
  ) {}

  async open(opts: Parameters<PullRequestOpener["open"]>[0]): Promise<{ url: string }> {
    const token = this.token ?? opts.credentials?.password;
    if (!token) {
      throw new AlpineError(
        "github_auth_missing",
        "opening a pull request needs GITHUB_TOKEN or GH_TOKEN",
        {},
      );
    }
    const { owner, repo } = repoOf(opts.repo);
    const api = this.config.github.api_url.replace(/\/+$/, "");
    const headers = {
      authorization: `Bearer ${token}`,
      accept: "application/vnd.github+json",
      "user-agent": "alpine",
      "content-type": "application/json",
    };
    const call = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`${api}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(30_000),
      });
      // A body that is not JSON still has its status, which decides below.
      const value = (await res.json().catch(() => ({}))) as Record<string, unknown>;
      if (res.status === 401 || res.status === 403) {
        throw new AlpineError("github_auth_missing", `GitHub refused the token (${res.status})`, {
          status: res.status,
        });
      }
      if (!res.ok) {
        throw new AlpineError(
          "pr_failed",
          `GitHub did not open the pull request: ${String(value.message ?? res.status)}`,
          { status: res.status },
        );
      }
      return value;
    };
    const base = opts.base ?? String((await call("GET", `/repos/${owner}/${repo}`)).default_branch ?? "main");
    const pr = await call("POST", `/repos/${owner}/${repo}/pulls`, {
      head: opts.head,
      base,
      title: opts.title,
      body: opts.body,
    });
    return { url: String(pr.html_url) };
  }
}
