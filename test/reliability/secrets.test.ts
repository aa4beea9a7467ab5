import { execFile, execFileSync } from "node:child_process";
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type E2EEnv, makeEnv, SECRETS, waitFor } from "../e2e/env.ts";
import { type GithubStub, startGithubStub } from "../e2e/fixtures/github-api.ts";
import { filesUnder } from "../helpers/files.ts";
import { killLeftovers, processesUnder, recorder, run, sandboxdsUnder, secretHits } from "./harness.ts";

const execFileAsync = promisify(execFile);

/**
 * Issue 7, secret hygiene (and the auth items that need a real sandbox): the whole lifecycle
 * with recognisable secrets — auth sync, launch with a task, status/list/diff/logs/open, a
 * second task, checkpoint, export (push with the git credential store), export --pr (with
 * GITHUB_TOKEN), export --patch, teardown, resume, export from the checkpoint, teardown
 * --force — while the workspace and OpenCode's data hold symlinks to the host's credential
 * files. Then everything alpine wrote is scanned: its home (state DB, logs), every checkpoint
 * extracted, every JSON output and stderr, process arguments and environments sampled
 * throughout, the workspace's git config and remotes, the pushed branches and the patch.
 */
const GH_TOKEN = "ghs_RELIABILITYTOKEN0123456789abcdef";
const ALL = [SECRETS.gitToken, SECRETS.modelKey, SECRETS.forbiddenKey, GH_TOKEN];
const record = recorder("secrets");
let e: E2EEnv;
let gh: GithubStub;
const outputs: string[] = [];
const argv = new Set<string>();
const environs = new Set<string>();
let sampler: NodeJS.Timeout;
const ids = new Set<string>();
const pushed: string[] = [];
/** The workspace's .git/config and remote URLs, read while it was live. */
const gitConfigs: string[] = [];
let patchFile = "";

const alpine = async (args: string[], env: NodeJS.ProcessEnv = {}) => {
  const r = await run(args, { env: { ...e.env, ...env }, cwd: e.cwd });
  outputs.push(r.stdout, r.stderr);
  return r;
};

/** Every process's arguments, and the environment of the sandbox's own processes, right now. */
function sample(): void {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      argv.add(readFileSync(`/proc/${entry}/cmdline`, "utf8"));
    } catch {
      // gone
    }
  }
  for (const p of processesUnder(e.alpineHome)) {
    try {
      environs.add(readFileSync(`/proc/${p.pid}/environ`, "utf8"));
    } catch {
      // gone
    }
  }
}

beforeAll(async () => {
  gh = await startGithubStub({ token: GH_TOKEN });
  // The git server plays GitHub: it takes the token as x-access-token, from the credential store or GITHUB_TOKEN.
  e = await makeEnv({
    gitUser: "x-access-token",
    gitPassword: GH_TOKEN,
    repoName: "acme/app",
    yaml: ["github:", `  api_url: ${gh.apiUrl}`],
  });
  sampler = setInterval(sample, 100);
});
afterAll(async () => {
  clearInterval(sampler);
  await run(["teardown", "vault", "--force", "--json"], { env: e.env, cwd: e.cwd });
  killLeftovers(e.alpineHome);
  await gh.close();
  await e.close();
  rmSync(e.root, { recursive: true, force: true });
});

const name = "vault";
let id = "";
const sandboxDir = () => join(e.alpineHome, "sandboxes", id);
const workspace = () => join(sandboxDir(), "workspace");
// biome-ignore lint/suspicious/noExplicitAny: CLI JSON output
type Json = any;
const ok = async (args: string[], env: NodeJS.ProcessEnv = {}): Promise<Json> => {
  const r = await alpine([...args, "--json"], env);
  expect(r.code, `${args.join(" ")}: ${r.stdout}${r.stderr}`).toBe(0);
  return r.json();
};

/** A copy of $ALPINE_HOME as it is now (links copied as links): runtime dirs and logs go with a teardown. */
const snapshots: string[] = [];
function snapshotHome(label: string): void {
  const dest = join(e.root, `home-${label}`);
  execFileSync("cp", ["-a", e.alpineHome, dest]);
  snapshots.push(dest);
}

function readGitConfig(): void {
  gitConfigs.push(readFileSync(join(workspace(), ".git", "config"), "utf8"));
  gitConfigs.push(execFileSync("git", ["-C", workspace(), "remote", "-v"], { encoding: "utf8" }));
}

/** The sockets a process listens on (from its own /proc view), as "a.b.c.d:port". */
function listening(pid: number): string[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  const out: string[] = [];
  for (const table of ["tcp", "tcp6"]) {
    for (const line of readFileSync(`/proc/${pid}/net/${table}`, "utf8").split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== "0A" || !inodes.has(f[9]!)) continue;
      const [hex, port] = f[1]!.split(":") as [string, string];
      const addr =
        table === "tcp"
          ? (hex.match(/../g) ?? [])
              .reverse()
              .map((b) => Number.parseInt(b, 16))
              .join(".")
          : hex === "00000000000000000000000001000000"
            ? "::1"
            : hex === "0000000000000000FFFF00000100007F"
              ? "::ffff:127.0.0.1"
              : `[${hex}]`;
      out.push(`${addr}:${Number.parseInt(port, 16)}`);
    }
  }
  return out;
}

describe("secret hygiene over the whole lifecycle", () => {
  it("runs the lifecycle with symlinks to the host's credentials in the workspace and in OpenCode's data", async () => {
    expect((await ok(["auth", "sync", "--providers", "stub"])).providers).toEqual(["stub"]);
    const launched = await ok([
      "launch",
      name,
      "--repo",
      e.repoUrl,
      "--task",
      "SLEEP 1500 WRITE NOTES.md notes",
    ]);
    id = launched.id;
    ids.add(id);
    await waitFor("completion", async () => (await ok(["status", name])).state === "completed", {
      timeoutMs: 60_000,
    });
    for (const cmd of [["list"], ["diff", name], ["logs", name], ["open", name, "--print"]]) await ok(cmd);
    await ok(["task", name, "--wait", "WRITE SECOND.md second"]);

    // The agent plants links to the host's secrets; alpine must store links, never their targets.
    const links: [string, string][] = [
      ["leak-git-credentials", join(e.home, ".git-credentials")],
      ["leak-auth.json", join(e.home, ".local", "share", "opencode", "auth.json")],
      ["leak-opencode-dir", join(e.home, ".local", "share", "opencode")],
      ["leak-alpine-credentials", join(e.alpineHome, "credentials.json")],
      ["leak-sandbox-auth", join(sandboxDir(), "home", ".local", "share", "opencode", "auth.json")],
    ];
    mkdirSync(join(workspace(), "links"), { recursive: true });
    for (const [link, target] of links) symlinkSync(target, join(workspace(), "links", link));
    const data = join(sandboxDir(), "home", ".local", "share", "opencode");
    mkdirSync(join(data, "storage", "planted"), { recursive: true });
    symlinkSync(join(e.home, ".git-credentials"), join(data, "storage", "planted", "git-credentials"));
    symlinkSync(join(data, "auth.json"), join(data, "storage", "planted", "auth.json"));
    symlinkSync(
      join(e.home, ".local", "share", "opencode"),
      join(data, "storage", "planted", "host-opencode"),
    );

    await ok(["checkpoint", name]);
    const push = await ok(["export", name]); // credentials from the git credential store
    pushed.push(push.commit);
    const pr = await ok(["export", name, "--branch", "alpine/pr", "--pr"], { GITHUB_TOKEN: GH_TOKEN });
    expect(pr.pr_url).toMatch(/pull\/1$/);
    pushed.push(pr.commit);
    patchFile = join(e.root, "work.patch");
    await ok(["export", name, "--patch", patchFile]);
    readGitConfig();

    // Every server alpine starts binds 127.0.0.1 (docs/architecture.md): sandboxd and OpenCode too.
    const [sbx] = sandboxdsUnder(e.alpineHome);
    const token = readFileSync(join(sandboxDir(), "token"), "utf8");
    const status = (await ok(["status", name])).runtime;
    const sd = (await (
      await fetch(`${status.web_url}/v1/status`, { headers: { authorization: `Bearer ${token}` } })
    ).json()) as Json;
    for (const [what, pid] of [
      ["sandboxd", sbx!.pid],
      ["OpenCode", sd.opencode.pid as number],
    ] as const) {
      const socks = listening(pid);
      expect(socks.length, what).toBeGreaterThan(0);
      for (const s of socks) expect(s, what).toMatch(/^(127\.0\.0\.1|::1|::ffff:127\.0\.0\.1):\d+$/);
      record({
        kind: "auth",
        target: `${what} listening sockets`,
        credential: "-",
        outcome: socks.join(", "),
      });
    }

    snapshotHome("first-runtime");
    const down = await ok(["teardown", name]);
    expect(down.checkpoint_id).toMatch(/^ckpt_/);
    const resumed = await ok(["launch", name]);
    expect(resumed.resumed).toBe(true);
    id = resumed.id;
    ids.add(id);
    // The links came back as links, pointing where they pointed.
    for (const [link, target] of links) expect(readlinkSync(join(workspace(), "links", link))).toBe(target);
    // A relaunched sandbox has a new token: the old one is expired.
    const newToken = readFileSync(join(sandboxDir(), "token"), "utf8");
    expect(newToken).not.toBe(token);
    const web = (await ok(["status", name])).runtime.web_url;
    const stale = await fetch(`${web}/v1/status`, { headers: { authorization: `Bearer ${token}` } });
    expect(stale.status).toBe(401);
    readGitConfig();
    record({
      kind: "auth",
      target: "GET /v1/status of a resumed sandbox",
      credential: "its previous runtime's token (expired)",
      outcome: "401",
    });

    snapshotHome("resumed-runtime");
    await ok(["teardown", name, "--force"]);
    await ok(["export", name, "--from-checkpoint", "--patch", join(e.root, "from-checkpoint.patch")]);
    sample();
  }, 300_000); // a whole lifecycle: launch, tasks, checkpoints, exports, teardown (≈70 s alone)

  it("alpine's home (state DB, logs, runtime dirs) holds no secret outside the two files meant for them", async () => {
    // credentials.json (auth sync's copy, 0600) and a live sandbox's own auth.json are the only places.
    const homes = [e.alpineHome, ...snapshots];
    const allowed = (p: string) =>
      homes.some((h) => p === join(h, "credentials.json")) ||
      /\/sandboxes\/[^/]+\/home\/\.local\/share\/opencode\/auth\.json$/.test(p);
    const files = homes.flatMap((h) => filesUnder(h));
    expect(files.some((f) => f.endsWith("state.db"))).toBe(true);
    expect(files.some((f) => f.endsWith("sandboxd.log"))).toBe(true);
    for (const h of homes) expect(secretHits(h, ALL, allowed)).toEqual([]);
    // The sandbox's own auth.json holds the allowed provider's entry with the broker's token: no key at all.
    for (const f of files.filter((f) => f.endsWith("opencode/auth.json"))) {
      expect(Object.keys(JSON.parse(readFileSync(f, "utf8")))).toContain("stub");
      expect(readFileSync(f, "utf8")).not.toContain(SECRETS.modelKey);
      expect(readFileSync(f, "utf8")).not.toContain(SECRETS.forbiddenKey);
    }
    record({
      kind: "secret",
      scanned: "$ALPINE_HOME while each runtime lived and after: state DB (+WAL), logs, runtime dirs",
      items: files.length,
      hits: 0,
    });
  });

  it("every checkpoint, extracted (git bundle → all objects, tar.gz → files), holds no secret and no link target", async () => {
    const out = mkdtempSync(join(tmpdir(), "alpine-rel-ckpt-"));
    let items = 0;
    for (const sid of ids) {
      const objects = filesUnder(join(e.alpineHome, "checkpoints", sid)).filter((f) =>
        /\/objects\/[0-9a-f]{64}$/.test(f),
      );
      // Incremental checkpoints are thin bundles: they build on the repo's upstream and on earlier
      // checkpoints of the sandbox. One repo per sandbox gets the upstream, then every bundle in an
      // order that works (each fetch needs its prerequisites), and every object of it is scanned.
      const repo = join(out, `${sid}-bundles`);
      execFileSync("git", ["init", "--quiet", "--bare", repo]);
      execFileSync("git", [
        "-C",
        repo,
        "fetch",
        "--quiet",
        e.git.repoPath("acme/app"),
        "+refs/heads/*:refs/upstream/*",
      ]);
      let pending = objects.filter((o) =>
        readFileSync(o).subarray(0, 20).toString("latin1").includes("git bundle"),
      );
      while (pending.length > 0) {
        const left = pending.filter((obj, i) => {
          try {
            execFileSync("git", ["-C", repo, "fetch", "--quiet", obj, `+refs/*:refs/ckpt${i}-${items}/*`], {
              stdio: "pipe",
            });
            items++;
            return false;
          } catch {
            return true; // a prerequisite comes from another bundle: tried again after it
          }
        });
        expect(
          left.length,
          "every bundle's prerequisites are in upstream or another checkpoint",
        ).toBeLessThan(pending.length);
        pending = left;
      }
      writeFileSync(
        join(repo, "objects.txt"),
        execFileSync("git", ["-C", repo, "cat-file", "--batch-all-objects", "--batch"], {
          maxBuffer: 256 * 1024 * 1024,
        }),
      );
      for (const [i, obj] of objects.entries()) {
        const dir = join(out, `${sid}-${i}`);
        mkdirSync(dir);
        const head = readFileSync(obj).subarray(0, 20).toString("latin1");
        if (head.includes("git bundle")) continue; // scanned above, with the sandbox's other bundles
        execFileSync("tar", ["-xzf", obj, "-C", dir]);
        // OpenCode's planted links stayed links (tar keeps them; their targets were never read).
        const links = execFileSync("find", [dir, "-type", "l"], { encoding: "utf8" });
        if (sid === [...ids][0]) expect(links).toContain("planted/git-credentials");
        items++;
      }
    }
    expect(items).toBeGreaterThanOrEqual(2);
    expect(secretHits(out, ALL)).toEqual([]);
    expect(filesUnder(out).some((f) => f.endsWith("auth.json"))).toBe(false);
    rmSync(out, { recursive: true, force: true });
    record({
      kind: "secret",
      scanned: "checkpoints, extracted (bundle objects, OpenCode data)",
      items,
      hits: 0,
    });
  });

  it("JSON outputs, stderr, process arguments and the sandbox's process environments hold no secret", () => {
    for (const text of outputs) for (const s of ALL) expect(text).not.toContain(s);
    for (const a of argv) for (const s of ALL) expect(a).not.toContain(s);
    for (const env of environs) for (const s of ALL) expect(env).not.toContain(s);
    expect(environs.size).toBeGreaterThan(0);
    record({
      kind: "secret",
      scanned: "CLI stdout/stderr (--json and errors)",
      items: outputs.length,
      hits: 0,
    });
    record({
      kind: "secret",
      scanned: "process arguments (/proc/*/cmdline every 100 ms)",
      items: argv.size,
      hits: 0,
    });
    record({
      kind: "secret",
      scanned: "environments of sandboxd, OpenCode, git (every 100 ms)",
      items: environs.size,
      hits: 0,
    });
  });

  it("the pushed branches, the pull request, the patches and the workspace's git config hold no secret", async () => {
    const bare = e.git.repoPath("acme/app");
    let items = 0;
    for (const commit of pushed) {
      const { stdout: list } = await execFileAsync("git", ["-C", bare, "rev-list", "--objects", commit]);
      const shas = list
        .split("\n")
        .filter(Boolean)
        .map((l) => l.split(" ")[0]!);
      const batch = execFile("git", ["-C", bare, "cat-file", "--batch"], { maxBuffer: 256 * 1024 * 1024 });
      batch.stdin!.end(`${shas.join("\n")}\n`);
      let text = "";
      batch.stdout!.on("data", (d) => (text += d));
      await new Promise((r) => batch.once("exit", r));
      for (const s of ALL) expect(text).not.toContain(s);
      items += shas.length;
    }
    for (const pr of gh.pulls) for (const s of ALL) expect(JSON.stringify(pr.body)).not.toContain(s);
    for (const f of [patchFile, join(e.root, "from-checkpoint.patch")]) {
      const text = readFileSync(f, "utf8");
      expect(text).toContain("links/leak-git-credentials");
      for (const s of ALL) expect(text).not.toContain(s);
    }
    // The workspace's git config and remotes, as read while it was live (before and after a resume).
    expect(gitConfigs.length).toBe(4);
    for (const text of gitConfigs) {
      for (const s of ALL) expect(text).not.toContain(s);
      expect(text).not.toMatch(/x-access-token@|:\/\/[^/\s]*:[^/\s]*@/);
    }
    expect(gitConfigs[1]).toContain(e.repoUrl);
    record({
      kind: "secret",
      scanned: "pushed branches (every object), PR bodies, patches",
      items: items + gh.pulls.length + 2,
      hits: 0,
    });
    record({
      kind: "secret",
      scanned: "the workspace's .git/config and remotes (live, and after resume)",
      items: gitConfigs.length,
      hits: 0,
    });
  });
});
