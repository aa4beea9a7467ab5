import type { AlpineConfig, PullRequestOpener } from "@alpine/core";
import { AlpineError } from "@alpine/core/errors";

/** owner/name of a GitHub remote URL (https://host/owner/name(.git)). */
export function githubRepoOf(remote: string): { owner: string; repo: string } {
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

/** Pull requests through the GitHub REST API (octokit), at github.api_url (GitHub Enterprise too). */
export class GithubPullRequests implements PullRequestOpener {
  constructor(private readonly config: AlpineConfig) {}

  async open(opts: Parameters<PullRequestOpener["open"]>[0]): Promise<{ url: string }> {
    const token = process.env.GITHUB_TOKEN || process.env.GH_TOKEN || opts.credentials?.password;
    if (!token) {
      throw new AlpineError(
        "github_auth_missing",
        "opening a pull request needs GITHUB_TOKEN or GH_TOKEN",
        {},
      );
    }
    const { Octokit } = await import("@octokit/rest");
    const octokit = new Octokit({ auth: token, baseUrl: this.config.github.api_url, userAgent: "alpine" });
    const { owner, repo } = githubRepoOf(opts.repo);
    try {
      const base = opts.base ?? (await octokit.rest.repos.get({ owner, repo })).data.default_branch;
      const pr = await octokit.rest.pulls.create({
        owner,
        repo,
        head: opts.head,
        base,
        title: opts.title,
        body: opts.body,
      });
      return { url: pr.data.html_url };
    } catch (err) {
      const status = (err as { status?: number }).status;
      const message = (err as Error).message;
      if (status === 401 || status === 403) {
        throw new AlpineError("github_auth_missing", `GitHub refused the token (${status}): ${message}`, {
          status,
        });
      }
      throw new AlpineError("pr_failed", `GitHub did not open the pull request: ${message}`, {
        status: status ?? null,
      });
    }
  }
}
