import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { filesUnder } from "../helpers/files.ts";
import { type GitServer, startGitServer } from "./fixtures/git-server.ts";
import { type StubModel, startStubModel, stubOpencodeConfig } from "./fixtures/stub-model.ts";

export { filesUnder };

/** Recognisable secrets: every scan looks for these exact strings. */
export const SECRETS = {
  gitToken: "ghp_E2EGITTOKEN0123456789abcdef",
  modelKey: "sk-E2EMODELKEY0123456789abcdef",
  forbiddenKey: "sk-E2EFORBIDDEN0123456789abcdef",
};

export interface E2EEnv {
  root: string;
  home: string; // the user's $HOME for alpine processes
  alpineHome: string;
  cwd: string; // where alpine.yaml lives
  env: NodeJS.ProcessEnv;
  git: GitServer;
  model: StubModel;
  repoUrl: string;
  close(): Promise<void>;
}

/**
 * A user's machine in a temp dir: a HOME whose git credential store knows the
 * git server's token, an OpenCode auth.json with an allowed and a forbidden
 * provider, an alpine.yaml pointing OpenCode at the stub model.
 */
export interface EnvOptions {
  gitUser?: string;
  gitPassword?: string;
  /** Other git credentials the git server accepts (git-server.ts's `alsoAccepts`). */
  gitAlsoAccepts?: (username: string, password: string) => boolean;
  repoName?: string;
  /** More alpine.yaml lines (top-level sections other than opencode). */
  yaml?: string[];
  /** Merged over the stub's OpenCode config (`opencode.config`), e.g. `permission`. */
  opencodeConfig?: Record<string, unknown>;
  /**
   * The dir the environment is made in (default the system's temp dir). The hostile-agent suite
   * uses one outside /tmp: a local sandbox's own /tmp hides the host's, so canaries there prove nothing.
   */
  parent?: string;
}

export async function makeEnv(opts: EnvOptions = {}): Promise<E2EEnv> {
  const root = mkdtempSync(join(opts.parent ?? tmpdir(), "alpine-e2e-"));
  const home = join(root, "home");
  const alpineHome = join(root, "alpine-home");
  const cwd = join(root, "project");
  for (const d of [home, alpineHome, cwd]) mkdirSync(d, { recursive: true });

  const gitUser = opts.gitUser ?? "alice";
  const gitPassword = opts.gitPassword ?? SECRETS.gitToken;
  const git = await startGitServer({
    username: gitUser,
    password: gitPassword,
    alsoAccepts: opts.gitAlsoAccepts,
  });
  const repoUrl = await git.createRepo(opts.repoName ?? "app", {
    "README.md": "# app\n",
    "src/main.txt": "hello\n",
  });
  const model = await startStubModel({ apiKey: SECRETS.modelKey });

  // The host's git knows the token through its credential store (as `gh auth setup-git` would arrange).
  writeFileSync(
    join(home, ".gitconfig"),
    "[credential]\n\thelper = store\n[user]\n\tname = Alice\n\temail = alice@example.com\n",
  );
  const credUrl = new URL(repoUrl);
  writeFileSync(join(home, ".git-credentials"), `http://${gitUser}:${gitPassword}@${credUrl.host}\n`);
  chmodSync(join(home, ".git-credentials"), 0o600);

  const authDir = join(home, ".local", "share", "opencode");
  mkdirSync(authDir, { recursive: true });
  writeFileSync(
    join(authDir, "auth.json"),
    JSON.stringify({
      stub: { type: "api", key: SECRETS.modelKey },
      forbidden: { type: "api", key: SECRETS.forbiddenKey },
    }),
    { mode: 0o600 },
  );

  const stub = stubOpencodeConfig(model.baseURL);
  writeFileSync(
    join(cwd, "alpine.yaml"),
    `${[
      "opencode:",
      `  model: ${stub.model}`,
      "  auth_providers: [stub]",
      `  config: ${JSON.stringify({ ...stub.config, ...opts.opencodeConfig })}`,
      ...(opts.yaml ?? []),
    ].join("\n")}\n`,
  );

  const env: NodeJS.ProcessEnv = {
    HOME: home,
    ALPINE_HOME: alpineHome,
    XDG_CONFIG_HOME: join(home, ".config"),
    XDG_DATA_HOME: join(home, ".local", "share"),
    XDG_STATE_HOME: join(home, ".local", "state"),
    GIT_CONFIG_NOSYSTEM: "1",
    // OpenCode installs a plugin from the npm registry at start; tests keep all traffic on 127.0.0.1.
    npm_config_registry: "http://127.0.0.1:9/",
  };
  return {
    root,
    home,
    alpineHome,
    cwd,
    env,
    git,
    model,
    repoUrl,
    async close() {
      await Promise.allSettled([git.close(), model.close()]);
    },
  };
}

/** Files under dir whose bytes contain any of the secrets (paths in `allow` excepted). */
export function filesContaining(
  dir: string,
  secrets: string[],
  allow: (path: string) => boolean = () => false,
) {
  const hits: { path: string; secret: string }[] = [];
  for (const path of filesUnder(dir)) {
    if (allow(path)) continue;
    let bytes: Buffer;
    try {
      bytes = readFileSync(path);
    } catch (err) {
      // Removed between the listing and the read (a live sandbox's OpenCode runs git gc in its
      // snapshot repo: gc.pid comes and goes): a file that is gone holds no secret.
      if ((err as NodeJS.ErrnoException).code === "ENOENT") continue;
      throw err;
    }
    for (const s of secrets) if (bytes.includes(s)) hits.push({ path, secret: s });
  }
  return hits;
}

/** Command lines of every process on the machine right now. */
/**
 * Unpacks checkpoint artifacts (files of an object store: git bundles, tar.gz archives; anything
 * else is left out) into `out` so a scan sees contents, not compressed bytes: each archive
 * extracted, every bundle fetched into one bare repo (thin bundles need what they build on:
 * upstream's commits from `upstreamRepo`, then the earlier bundles, fetched in rounds) and its
 * objects written out. Throws when a bundle never applies or the repo does not check out.
 */
export function unpackCheckpointArtifacts(files: string[], upstreamRepo: string, out: string): void {
  const repo = join(out, "bundles.git");
  execFileSync("git", ["init", "--quiet", "--bare", repo]);
  execFileSync("git", ["-C", repo, "fetch", "--quiet", upstreamRepo, "+refs/heads/*:refs/upstream/*"]);
  let bundles: string[] = [];
  for (const [i, obj] of files.entries()) {
    const head = readFileSync(obj).subarray(0, 20);
    const text = head.toString("latin1");
    if (text.startsWith("# v2 git bundle") || text.startsWith("# v3 git bundle")) bundles.push(obj);
    else if (head[0] === 0x1f && head[1] === 0x8b) {
      const dir = join(out, String(i));
      mkdirSync(dir);
      execFileSync("tar", ["-xzf", obj, "-C", dir]);
    }
  }
  // Each round fetches the bundles whose prerequisites have arrived.
  for (let round = 0; bundles.length > 0 && round < 20; round++) {
    bundles = bundles.filter((b, i) => {
      try {
        execFileSync("git", ["-C", repo, "fetch", "--quiet", b, `+refs/*:refs/b${round}_${i}/*`], {
          stdio: "pipe",
        });
        return false;
      } catch {
        return true;
      }
    });
  }
  if (bundles.length) throw new Error(`checkpoint bundles that never applied: ${bundles.join(", ")}`);
  execFileSync("git", ["-C", repo, "fsck", "--no-progress"], { stdio: "pipe" });
  const all = execFileSync("git", ["-C", repo, "cat-file", "--batch-all-objects", "--batch"], {
    maxBuffer: 64 * 1024 * 1024,
  });
  writeFileSync(join(out, "objects.txt"), all);
}

export function processArgs(): string[] {
  return execFileSync("ps", ["-eo", "args"], { encoding: "utf8" }).split("\n");
}

export function processesMatching(needle: string): string[] {
  return processArgs().filter((a) => a.includes(needle) && !a.startsWith("ps "));
}

export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | null | false>,
  opts: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 250));
  }
}

/**
 * fetch for test links, `*.localhost` included: a sandbox's UI under `alpine cloud dev` is at
 * `http://<name>.localhost:<port>`, which browsers resolve to the loopback but this machine's
 * resolver (and so Node's fetch) does not. Such a host is connected to on 127.0.0.1, with the
 * URL's host as the Host header; every other URL goes to the global fetch.
 */
export async function fetchLink(url: string, init: RequestInit = {}): Promise<Response> {
  const u = new URL(url);
  if (!u.hostname.endsWith(".localhost")) return fetch(url, init);
  const { request } = await import("node:http");
  const { Readable } = await import("node:stream");
  const headers = Object.fromEntries(new Headers(init.headers).entries());
  return new Promise<Response>((resolve, reject) => {
    const req = request(
      url,
      {
        method: init.method ?? "GET",
        headers,
        lookup: (_host, _opts, cb) => cb(null, [{ address: "127.0.0.1", family: 4 }]),
        signal: init.signal ?? undefined,
      },
      (res) => {
        const out = new Headers();
        for (const [name, value] of Object.entries(res.headers)) {
          for (const v of Array.isArray(value) ? value : value === undefined ? [] : [value])
            out.append(name, v);
        }
        const status = res.statusCode ?? 502;
        const empty =
          status === 204 || status === 304 || (status >= 300 && status < 400) || init.method === "HEAD";
        if (empty) res.resume();
        // Redirects are never followed here (the tests read them with redirect: "manual").
        resolve(
          new Response(empty ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), {
            status,
            headers: out,
          }),
        );
      },
    );
    req.on("error", reject);
    req.end(typeof init.body === "string" ? init.body : undefined);
  });
}
