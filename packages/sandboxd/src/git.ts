import { existsSync, statSync } from "node:fs";
import { AlpineError } from "@alpine/core/errors";
import { credentialHelperSnippet, credentialPayload } from "@alpine/core/git-credential-pipe";
import type { CredentialTarget, GitCredentials } from "./credentials.ts";
import type { Hashed } from "./files.ts";
import type { Logger } from "./log.ts";
import { type RunResult, run, runToFile } from "./proc.ts";

/** A repo argument after validation. `url` is what git gets: never with userinfo. */
export interface ResolvedRepo {
  /** What the user gave, minus any password: recorded and compared on re-init. */
  display: string;
  url: string;
  local: boolean;
  /** Where credentials may be sent (http/https only). */
  target: CredentialTarget | null;
  /** user:password found in the URL, moved out of it. */
  urlCredentials?: GitCredentials;
}

const CONTROL = /[\u0000-\u001f\u007f]/;
const TRANSPORT_HELPER = /^[A-Za-z][A-Za-z0-9+.-]*::/;
const SCP_LIKE = /^(?:[^@/\s]+@)?[^@/:\s]+:(?!\/\/)/;
const ALLOWED_SCHEMES = new Set(["http:", "https:", "ssh:", "git:", "file:"]);

/** Rejects option injection and odd transports before git ever sees the value. */
export function resolveRepo(repo: string): ResolvedRepo {
  const fail = (why: string): never => {
    throw new AlpineError("repo_resolution_failed", `repo '${safeShow(repo)}' is not usable: ${why}`, {
      repo: safeShow(repo),
    });
  };
  if (!repo) fail("it is empty");
  if (CONTROL.test(repo)) fail("it contains control characters");
  if (repo.startsWith("-")) fail("it starts with '-'");
  if (TRANSPORT_HELPER.test(repo)) fail("remote-helper transports (<transport>::…) are not allowed");
  if (repo.startsWith("/")) {
    if (!existsSync(repo)) fail("no such local path");
    return { display: repo, url: repo, local: true, target: null };
  }
  if (/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(repo)) {
    let u: URL;
    try {
      u = new URL(repo);
    } catch {
      return fail("it is not a valid URL");
    }
    if (!ALLOWED_SCHEMES.has(u.protocol))
      fail(`scheme ${u.protocol} is not supported (use https, ssh, git or file)`);
    if (u.hostname.startsWith("-")) fail("its host starts with '-'");
    let urlCredentials: GitCredentials | undefined;
    if ((u.protocol === "http:" || u.protocol === "https:") && (u.username || u.password)) {
      urlCredentials = { username: decodeURIComponent(u.username), password: decodeURIComponent(u.password) };
      u.username = "";
      u.password = "";
    }
    const url = u.toString();
    const target =
      u.protocol === "http:" || u.protocol === "https:"
        ? { protocol: u.protocol.slice(0, -1), host: u.host }
        : null;
    if (u.protocol === "file:") return { display: url, url, local: true, target: null };
    return { display: url, url, local: false, target, urlCredentials };
  }
  if (SCP_LIKE.test(repo)) return { display: repo, url: repo, local: false, target: null };
  return fail("use a git URL or an absolute local path");
}

/** Refs may be any revision git can resolve, but never an option or a control sequence. */
export function checkRef(ref: string): void {
  if (!ref || CONTROL.test(ref) || ref.startsWith("-") || /\s/.test(ref)) {
    throw new AlpineError("repo_resolution_failed", `ref '${safeShow(ref)}' is not a valid git ref`, {
      ref: safeShow(ref),
    });
  }
}

function branchInvalid(branch: string, why: string): AlpineError {
  return new AlpineError("branch_invalid", `branch '${safeShow(branch)}' is invalid: ${why}`, {
    branch: safeShow(branch),
  });
}

export function safeShow(s: string): string {
  return s
    .replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`)
    .slice(0, 200);
}

export interface GitRunOptions {
  cwd?: string;
  /** Extra environment (GIT_DIR, GIT_INDEX_FILE…). */
  env?: Record<string, string>;
  credentials?: { credentials: GitCredentials; target: CredentialTarget };
  /** Default 120 s; a clone passes its own. */
  timeoutMs?: number;
  /** Use a config sandboxd controls (no system/global config, no $HOME). */
  isolatedConfig?: string;
  /** Written to git's stdin. */
  input?: string;
}

/**
 * Runs git for sandboxd. Always: no terminal prompts, no hooks, no fsmonitor,
 * no credential helper except sandboxd's own (and only when a command carries
 * credentials), `--` before positional arguments at the call sites.
 */
export class GitRunner {
  /** Work git yields the CPU to while it runs (yieldWhile): OpenCode's boot. */
  private yielding = 0;

  constructor(private readonly log: Logger) {}

  /**
   * Runs the git commands started until `work` settles at a lower priority. A restore's git work
   * has seconds of slack while OpenCode boots beside it on the same cores, and ready waits for
   * both: the boot, the longer of the two, then gets the CPU first.
   */
  yieldWhile(work: Promise<unknown>): void {
    this.yielding++;
    const done = () => {
      this.yielding--;
    };
    work.then(done, done);
  }

  baseEnv(isolatedHome?: string): Record<string, string> {
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin",
      HOME: isolatedHome ?? process.env.HOME ?? "/",
      LANG: "C",
      LC_ALL: "C",
      GIT_TERMINAL_PROMPT: "0",
      GIT_ALLOW_PROTOCOL: "file:git:http:https:ssh",
      GIT_SSH_COMMAND: process.env.GIT_SSH_COMMAND ?? "ssh -o BatchMode=yes",
    };
    for (const k of [
      "SSH_AUTH_SOCK",
      "HTTPS_PROXY",
      "HTTP_PROXY",
      "NO_PROXY",
      "https_proxy",
      "http_proxy",
      "no_proxy",
    ]) {
      const v = process.env[k];
      if (v) env[k] = v;
    }
    // Never the global config: $HOME may be the sandbox home, which the agent writes
    // (url.insteadOf, http.proxy… must not steer sandboxd's own git). The system config stays
    // (proxies, CA bundles) except for commands that read the agent's workspace.
    env.GIT_CONFIG_GLOBAL = "/dev/null";
    if (isolatedHome) {
      env.GIT_CONFIG_NOSYSTEM = "1";
      env.XDG_CONFIG_HOME = isolatedHome;
    }
    return env;
  }

  async run(args: string[], opts: GitRunOptions = {}): Promise<RunResult> {
    return this.exec(args, opts, (cmd, argv, o) => run(cmd, argv, o));
  }

  /** Runs git with its stdout streamed into a new file (sha256 and size computed while writing). */
  async runToFile(
    args: string[],
    file: string,
    opts: GitRunOptions = {},
  ): Promise<RunResult & Partial<Hashed>> {
    return this.exec(args, opts, (cmd, argv, o) => runToFile(cmd, argv, o, file));
  }

  private async exec<R extends RunResult>(
    args: string[],
    opts: GitRunOptions,
    runner: (cmd: string, argv: string[], o: Parameters<typeof run>[2]) => Promise<R>,
  ): Promise<R> {
    const pre = [
      "-c",
      "core.hooksPath=/dev/null",
      "-c",
      "core.fsmonitor=false",
      "-c",
      "core.askPass=",
      "-c",
      "safe.directory=*",
      "-c",
      "credential.helper=",
      // Nothing sandboxd runs signs, garbage-collects or runs maintenance in the background.
      "-c",
      "commit.gpgSign=false",
      "-c",
      "gc.auto=0",
      "-c",
      "maintenance.auto=false",
    ];
    const env = { ...this.baseEnv(opts.isolatedConfig), ...opts.env };
    let fd3: string | undefined;
    if (opts.credentials) {
      // Over a pipe to this one command (see core/src/git-credential-pipe.ts).
      fd3 = credentialPayload(opts.credentials.credentials);
      pre.push("-c", `credential.helper=${credentialHelperSnippet(opts.credentials.target)}`);
    }
    const started = Date.now();
    const res = await runner("git", [...pre, ...args], {
      cwd: opts.cwd,
      env,
      input: opts.input,
      timeoutMs: opts.timeoutMs ?? 120_000,
      fd3,
      ...(this.yielding > 0 ? { nice: 10 } : {}),
    });
    this.log.debug("git", {
      args: args.slice(0, 8),
      code: res.code,
      ms: Date.now() - started,
      ...(res.code !== 0 ? { stderr: res.stderr.slice(0, 2000) } : {}),
    });
    return res;
  }

  /** Runs git and throws `reason` (with git's stderr in details) on a non-zero exit. */
  async ok(
    args: string[],
    opts: GitRunOptions & { reason?: ConstructorParameters<typeof AlpineError>[0] } = {},
  ): Promise<string> {
    const res = await this.run(args, opts);
    if (res.code !== 0) {
      throw new AlpineError(
        opts.reason ?? "internal_error",
        `git ${args[0]} failed: ${firstLine(res.stderr)}`,
        {
          stderr: res.stderr.slice(0, 2000),
        },
      );
    }
    return res.stdout;
  }

  /** `git check-ref-format --branch`, plus the cases it lets through. */
  async checkBranch(branch: string): Promise<string> {
    if (!branch) throw branchInvalid(branch, "it is empty");
    if (CONTROL.test(branch)) throw branchInvalid(branch, "it contains control characters");
    if (branch.startsWith("-")) throw branchInvalid(branch, "it starts with '-'");
    if (branch.includes("@{") || branch === "HEAD" || branch.startsWith("refs/")) {
      throw branchInvalid(branch, "use a plain branch name like alpine/<name>");
    }
    const res = await this.run(["check-ref-format", "--branch", branch], { isolatedConfig: "/nonexistent" });
    if (res.code !== 0 || res.stdout.trim() !== branch) throw branchInvalid(branch, "git does not accept it");
    return branch;
  }
}

export function firstLine(s: string): string {
  const lines = s
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
  return (lines.find((l) => /^(fatal|error):/.test(l)) ?? lines[0] ?? "").slice(0, 300);
}

/** Is this clone failure the network/auth kind (retryable) rather than a bad input? */
export function cloneFailureReason(stderr: string): "repo_unreachable" | "repo_resolution_failed" {
  if (
    /does not appear to be a git repository|not a git repository|No such file or directory/i.test(stderr) &&
    !/Could not read from remote/i.test(stderr)
  ) {
    return "repo_resolution_failed";
  }
  return "repo_unreachable";
}

export function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    // Missing or unreadable: not a directory sandboxd can use.
    return false;
  }
}

/** Author and committer for a commit sandboxd makes (control characters and <> removed). */
export function identityEnv(who: { name: string; email: string }, date?: string): Record<string, string> {
  const clean = (v: string) => v.replace(/[\u0000-\u001f\u007f<>]/g, "").trim();
  const env: Record<string, string> = {
    GIT_AUTHOR_NAME: clean(who.name),
    GIT_AUTHOR_EMAIL: clean(who.email),
    GIT_COMMITTER_NAME: clean(who.name),
    GIT_COMMITTER_EMAIL: clean(who.email),
  };
  if (date) {
    env.GIT_AUTHOR_DATE = date;
    env.GIT_COMMITTER_DATE = date;
  }
  return env;
}
