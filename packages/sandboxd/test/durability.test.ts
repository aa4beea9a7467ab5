import { execFile, execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
  chmodSync,
  createReadStream,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { request } from "node:http";
import { homedir } from "node:os";
import { join, relative } from "node:path";
import { Readable } from "node:stream";
import { promisify } from "node:util";
import type { AlpineError } from "@alpine/core/errors";
import type { CheckpointManifestData, SandboxdConfigInput } from "@alpine/core/sandboxd-api";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type GitServer, startGitServer } from "../../../test/e2e/fixtures/git-server.ts";
import { type StubModel, startStubModel, stubOpencodeConfig } from "../../../test/e2e/fixtures/stub-model.ts";
import { CHROMIUM, launchChromium } from "../../../test/helpers/chromium.ts";
import { checkpointDirOf, isArtifactName, isCheckpointId } from "../src/checkpoint.ts";
import { packOpencodeData, unpackOpencodeData } from "../src/opencode-data.ts";
import { git, type RunningSandboxd, readLog, startSandboxd, tempDir, waitFor, waitTask } from "./helpers.ts";

/*
 * Checkpoint → restore → export on the real stack: git, OpenCode (under
 * bubblewrap when available), the stub model and the authenticated git
 * smart-HTTP fixture. The tests run in order, each starting from where the
 * previous one left the sandboxes, as in real use.
 */

const API_KEY = `sk-stub-${randomBytes(8).toString("hex")}`;
const USER = "alice";
const TOKEN = `ghp_${randomBytes(12).toString("hex")}`;
const ISOLATION = existsSync("/usr/bin/bwrap") ? "bubblewrap" : "none";

let stub: StubModel;
let server: GitServer;
let repoUrl = "";
let opencode: SandboxdConfigInput["opencode"];
/** The sandbox that is checkpointed, then (same dirs) the one restored from it. */
let sbx: RunningSandboxd;
/** Fresh sandboxes for refused restores, a second restore, nothing-to-export. */
let spare: RunningSandboxd;
let plain: RunningSandboxd | undefined;
let manifest: CheckpointManifestData;
/** Artifacts as a checkpoint store would hold them. */
let store = "";
const timings: Record<string, number> = {};

function start(
  reuse?: RunningSandboxd["dirs"],
  extra: Partial<SandboxdConfigInput> = {},
): Promise<RunningSandboxd> {
  return startSandboxd(
    { isolation: ISOLATION, mask_paths: ISOLATION === "bubblewrap" ? [homedir()] : [], opencode, ...extra },
    reuse,
  );
}

beforeAll(async () => {
  stub = await startStubModel({ apiKey: API_KEY });
  const { model, config } = stubOpencodeConfig(stub.baseURL);
  opencode = { model, config, auth: { stub: { type: "api", key: API_KEY } } };
  server = await startGitServer({ username: USER, password: TOKEN });
  repoUrl = await server.createRepo("app", {
    "README.md": "# app\n",
    "src/main.txt": "hello\n",
    "gone.txt": "to be deleted\n",
    ".gitignore": "ignored/\n",
  });
  store = tempDir("alpine-store-");
  sbx = await start();
  await sbx.client.init({
    repo: repoUrl,
    branch: "alpine/demo",
    credentials: { username: USER, password: TOKEN },
  });
});

afterAll(async () => {
  await sbx?.kill();
  await spare?.kill();
  await plain?.kill();
  await server?.close();
  await stub?.close();
  console.log(`timings (ms): ${JSON.stringify(timings)}`);
});

// ---------------------------------------------------------------------------
// helpers

/** Every file under root (but .git and `skip`): type, exec bit and sha256, or the link target. */
function treeDigest(root: string, skip: string[] = []): Record<string, string> {
  const files: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      const rel = relative(root, p);
      if (rel === ".git" || skip.some((s) => rel === s || rel.startsWith(`${s}/`))) continue;
      const st = lstatSync(p);
      if (st.isSymbolicLink()) files[rel] = `link:${readlinkSync(p)}`;
      else if (st.isDirectory()) walk(p);
      else
        files[rel] =
          `${st.mode & 0o111 ? "x" : "-"}:${createHash("sha256").update(readFileSync(p)).digest("hex")}`;
    }
  };
  walk(root);
  return files;
}

async function cookieFor(s: RunningSandboxd): Promise<string> {
  const { code } = await s.client.login();
  const res = await fetch(`${s.baseUrl}/auth/${code}`, { redirect: "manual" });
  return (res.headers.get("set-cookie") ?? "").split(";")[0]!;
}

/** OpenCode's sessions (id, title, directory), read through sandboxd's UI proxy. */
async function sessions(s: RunningSandboxd, query = ""): Promise<string[]> {
  const res = await fetch(`${s.baseUrl}/session${query}`, { headers: { cookie: await cookieFor(s) } });
  expect(res.status).toBe(200);
  const list = (await res.json()) as { id: string; title: string; directory: string }[];
  return list.map((x) => `${x.id} ${x.directory} ${x.title}`).sort();
}

/** Raw HTTP (no client-side URL normalisation) with the bearer token. */
function raw(s: RunningSandboxd, method: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: "127.0.0.1", port: s.port, method, path, headers: { authorization: `Bearer ${s.token}` } },
      (res) => {
        let body = "";
        res.on("data", (d) => (body += d));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

function filesContaining(dir: string, needles: string[]): string[] {
  const hits: string[] = [];
  // Own walk: never through a symlink (readdir's recursive mode follows linked dirs).
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = lstatSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) {
        const text = readFileSync(p, "latin1");
        for (const n of needles) if (text.includes(n)) hits.push(`${relative(dir, p)}: ${n.slice(0, 12)}…`);
      }
    }
  };
  walk(dir);
  return hits;
}

/** Samples every process's argv and environment while fn runs. */
async function watchProcesses<T>(fn: () => Promise<T>): Promise<{ result: T; seen: string }> {
  let seen = "";
  let running = true;
  const sampler = (async () => {
    while (running) {
      for (const pid of readdirSync("/proc")) {
        if (!/^\d+$/.test(pid)) continue;
        for (const f of ["cmdline", "environ"]) {
          try {
            const text = readFileSync(`/proc/${pid}/${f}`, "latin1");
            if (text.includes(TOKEN)) seen += `${pid}/${f}\n`;
          } catch {
            // gone
          }
        }
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  try {
    return { result: await fn(), seen };
  } finally {
    running = false;
    await sampler;
  }
}

async function download(s: RunningSandboxd, m: CheckpointManifestData, dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  for (const a of m.artifacts) {
    const body = await s.client.checkpointArtifact(m.checkpoint_id, a.name);
    const buf = Buffer.from(await new Response(body).arrayBuffer());
    writeFileSync(join(dir, a.name), buf);
    expect(buf.length, a.name).toBe(a.bytes);
    expect(createHash("sha256").update(buf).digest("hex"), a.name).toBe(a.sha256);
  }
}

async function upload(s: RunningSandboxd, dir: string, name: string, bytes?: Buffer) {
  const body = bytes
    ? new Blob([new Uint8Array(bytes)]).stream()
    : (Readable.toWeb(createReadStream(join(dir, name))) as ReadableStream<Uint8Array>);
  return s.client.stageRestoreArtifact(name, body);
}

const ws = () => sbx.dirs.workspace;
const status = (dir: string) => git(dir, "status", "--porcelain=v1", "-uall");

// ---------------------------------------------------------------------------

describe("checkpoint", () => {
  let before: Record<string, string>;
  let statusBefore = "";
  let logBefore = "";
  let sessionsBefore: string[] = [];

  it("OpenCode gets npm_config_registry from sandboxd's env (no background plugin install)", async () => {
    const pid = (await sbx.client.status()).opencode.pid!;
    const env = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
    expect(env).toContain("npm_config_registry=http://127.0.0.1:9/");
    await sbx.client.task({ prompt: "WRITE NOTES.md notes from the agent" });
    expect((await waitTask(sbx.client)).task!.state).toBe("completed");
    expect(existsSync(join(sbx.dirs.home, ".npm"))).toBe(false);
  });

  it("captures commits, changes, untracked files, modes and links; touches nothing in the workspace", async () => {
    const w = ws();
    writeFileSync(join(w, "src/main.txt"), "hello, changed\n");
    git(w, "commit", "-qam", "agent commit");
    writeFileSync(join(w, "src/main.txt"), "hello, changed again (unstaged)\n");
    unlinkSync(join(w, "gone.txt"));
    mkdirSync(join(w, "deep/er"), { recursive: true });
    writeFileSync(join(w, "deep/er/run.sh"), "#!/bin/sh\necho run\n");
    chmodSync(join(w, "deep/er/run.sh"), 0o755);
    writeFileSync(join(w, "blob.bin"), Buffer.from([0, 1, 2, 255, 254, 0, 10, 13]));
    // Links pointing outside the workspace stay links: the host's files must not enter a checkpoint.
    symlinkSync("/etc/passwd", join(w, "link-out"));
    symlinkSync("/etc", join(w, "dir-out"));
    symlinkSync("README.md", join(w, "link-in"));
    mkdirSync(join(w, "ignored"));
    writeFileSync(join(w, "ignored/cache.txt"), "not in a checkpoint\n");
    git(w, "add", "NOTES.md"); // staged: comes back as untracked (the index is reset to HEAD)
    // Links in OpenCode's data dir (the agent can write it) are archived as links too.
    const data = join(sbx.dirs.home, ".local/share/opencode");
    symlinkSync("/etc/passwd", join(data, "leak"));
    symlinkSync("/etc", join(data, "snapshot", "leakdir"));

    before = treeDigest(w, ["ignored"]);
    statusBefore = status(w);
    logBefore = git(w, "log", "--format=%H %s");
    sessionsBefore = await sessions(sbx);
    expect(sessionsBefore.length).toBeGreaterThan(0);
    const index = readFileSync(join(w, ".git/index"));
    const refs = git(w, "for-each-ref", "--format=%(refname) %(objectname)");

    const t0 = Date.now();
    manifest = await sbx.client.checkpoint({ checkpoint_id: "ckpt_1", created_at: new Date().toISOString() });
    timings.checkpoint = Date.now() - t0;

    const head = git(w, "rev-parse", "HEAD").trim();
    const st = await sbx.client.status();
    expect(manifest).toMatchObject({
      schema_version: 1,
      checkpoint_id: "ckpt_1",
      sandbox_id: st.sandbox_id,
      branch: "alpine/demo",
      base_commit: st.workspace!.base_commit,
      head_commit: head,
      tree_hash: st.workspace!.tree_hash,
    });
    expect(manifest.artifacts.map((a) => a.name)).toEqual(["workspace.bundle", "opencode-data.tar.gz"]);
    // Nothing in the workspace changed: no private ref, same index, same refs, same status.
    expect(readFileSync(join(w, ".git/index")).equals(index)).toBe(true);
    expect(git(w, "for-each-ref", "--format=%(refname) %(objectname)")).toBe(refs);
    expect(status(w)).toBe(statusBefore);
    // The artifacts live in sandboxd's checkpoint dir, beside (not inside) the workspace.
    const dir = join(sbx.dirs.root, "checkpoints", "ckpt_1");
    expect(readdirSync(dir).sort()).toEqual(["manifest.json", "opencode-data.tar.gz", "workspace.bundle"]);
    expect(JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8"))).toEqual(manifest);
  });

  it("streams artifacts with their length; they match the manifest", async () => {
    const res = await fetch(`${sbx.baseUrl}/v1/checkpoints/ckpt_1/artifacts/workspace.bundle`, {
      headers: { authorization: `Bearer ${sbx.token}` },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/octet-stream");
    expect(Number(res.headers.get("content-length"))).toBe(manifest.artifacts[0]!.bytes);
    await res.arrayBuffer();
    await download(sbx, manifest, store);
  });

  it("holds no secrets and no host files (archives extracted, bundle objects unpacked)", () => {
    const out = tempDir("alpine-ckpt-scan-");
    execFileSync("tar", ["-xzf", join(store, "opencode-data.tar.gz"), "-C", out]);
    const names = readdirSync(out, { recursive: true }).filter(
      (n) => !String(n).startsWith("snapshot/leakdir/"),
    ) as string[];
    expect(names).toEqual(expect.arrayContaining(["opencode.db", "opencode.db-wal"]));
    expect(names.some((n) => n.endsWith("auth.json"))).toBe(false);
    expect(names.some((n) => n === "log" || n.startsWith("log/"))).toBe(false);
    expect(readlinkSync(join(out, "leak"))).toBe("/etc/passwd");
    expect(readlinkSync(join(out, "snapshot", "leakdir"))).toBe("/etc");
    const repo = join(out, "bundle.git");
    git(out, "clone", "--quiet", "--mirror", join(store, "workspace.bundle"), repo);
    git(repo, "fsck", "--no-progress");
    expect(git(repo, "for-each-ref", "--format=%(refname)").trim().split("\n").sort()).toEqual([
      "refs/alpine/checkpoints/ckpt_1",
      "refs/heads/alpine/demo",
    ]);
    expect(git(repo, "rev-parse", "refs/alpine/checkpoints/ckpt_1^{tree}").trim()).toBe(manifest.tree_hash);
    expect(git(repo, "rev-parse", "refs/heads/alpine/demo").trim()).toBe(manifest.head_commit);
    // Links are links in the checkpoint's tree (mode 120000), holding only their target.
    const tree = git(repo, "ls-tree", "-r", manifest.checkpoint_commit);
    expect(tree).toMatch(/^120000 blob \S+\tlink-out$/m);
    expect(tree).toMatch(/^120000 blob \S+\tdir-out$/m);
    expect(tree).toMatch(/^100755 blob \S+\tdeep\/er\/run\.sh$/m);
    expect(tree).not.toContain("ignored/");
    expect(tree).not.toContain("gone.txt");
    const objects = execFileSync("git", ["-C", repo, "cat-file", "--batch-all-objects", "--batch"], {
      maxBuffer: 64 * 1024 * 1024,
    });
    writeFileSync(join(out, "objects.txt"), objects);
    const passwd = readFileSync("/etc/passwd", "latin1").split("\n")[0]!;
    expect(filesContaining(out, [API_KEY, TOKEN, passwd])).toEqual([]);
  });

  it("runs while the agent is busy; a second one at the same time is operation_in_progress", async () => {
    await sbx.client.task({ prompt: "SLEEP 4000 WRITE busy.md written while checkpointing" });
    await waitFor(async () => (await sbx.client.status()).agent.state === "busy", 20_000, 50);
    const at = new Date().toISOString();
    const [a, b] = await Promise.allSettled([
      sbx.client.checkpoint({ checkpoint_id: "ckpt_busy", created_at: at }),
      sbx.client.checkpoint({ checkpoint_id: "ckpt_busy2", created_at: at }),
    ]);
    const ok = [a, b].filter((r) => r.status === "fulfilled");
    const refused = [a, b].filter((r) => r.status === "rejected") as PromiseRejectedResult[];
    expect(ok).toHaveLength(1);
    expect((refused[0]!.reason as AlpineError).reason).toBe("operation_in_progress");
    await waitTask(sbx.client);
    const busy = (
      a.status === "fulfilled" ? a.value : (b as PromiseFulfilledResult<CheckpointManifestData>).value
    )!;
    const dir = tempDir("alpine-busy-");
    await download(sbx, busy, dir);
    // The session database copied while the agent wrote to it opens as one consistent database.
    if (existsSync("/usr/bin/sqlite3")) {
      execFileSync("tar", ["-xzf", join(dir, "opencode-data.tar.gz"), "-C", dir]);
      const check = execFileSync(
        "sqlite3",
        [join(dir, "opencode.db"), "pragma integrity_check; select count(*) > 0 from session;"],
        {
          encoding: "utf8",
        },
      );
      expect(check.trim().split("\n")).toEqual(["ok", "1"]);
    }
    await sbx.client.deleteCheckpoint(busy.checkpoint_id);
    // Put the workspace back as it was checkpointed.
    rmSync(join(ws(), "busy.md"), { force: true });
    expect(treeDigest(ws(), ["ignored"])).toEqual(before);
  });

  it("artifact routes refuse unknown names and path traversal; delete is idempotent", async () => {
    writeFileSync(join(sbx.dirs.root, "secret.txt"), "outside the checkpoint dir\n");
    for (const path of [
      "/v1/checkpoints/ckpt_1/artifacts/manifest.json",
      "/v1/checkpoints/ckpt_1/artifacts/..%2f..%2fsecret.txt",
      "/v1/checkpoints/ckpt_1/artifacts/..%2F..%2Fworkspace%2FREADME.md",
      "/v1/checkpoints/..%2f..%2fworkspace/artifacts/README.md",
      "/v1/checkpoints/..%2f/artifacts/secret.txt",
      "/v1/checkpoints/%2e%2e/artifacts/secret.txt", // resolved by the URL parser: /v1/artifacts/…
      "/v1/checkpoints/.restore/artifacts/workspace.bundle",
      "/v1/checkpoints/ckpt_1%2f..%2f..%2f/artifacts/secret.txt",
      "/v1/checkpoints/nope/artifacts/workspace.bundle",
      "/v1/checkpoints/ckpt_1/artifacts/%00",
    ]) {
      const r = await raw(sbx, "GET", path);
      expect(r.status, path).toBe(404);
      expect(r.body, path).not.toContain("outside the checkpoint dir");
      if (path.startsWith("/v1/checkpoints/ckpt_1/") || path.includes("nope") || path.includes("%2f"))
        expect(JSON.parse(r.body).reason_code, path).toBe("checkpoint_missing");
    }
    // Literal ".." is resolved by the URL parser: it never reaches a checkpoint path.
    for (const path of [
      "/v1/checkpoints/../../secret.txt",
      "/v1/checkpoints/ckpt_1/artifacts/../../../secret.txt",
    ]) {
      const r = await raw(sbx, "GET", path);
      expect(r.status, path).not.toBe(200);
      expect(r.body).not.toContain("outside the checkpoint dir");
    }
    const put = await raw(sbx, "PUT", "/v1/restore/artifacts/..%2f..%2fsecret.txt");
    expect(put.status).toBe(400);
    const del = await raw(sbx, "DELETE", "/v1/checkpoints/..%2f..%2fworkspace");
    expect(del.status).toBe(404);
    expect(existsSync(join(ws(), "README.md"))).toBe(true);
    expect(existsSync(join(sbx.dirs.root, "secret.txt"))).toBe(true);

    await sbx.client.deleteCheckpoint("ckpt_1");
    await sbx.client.deleteCheckpoint("ckpt_1");
    await expect(sbx.client.checkpointArtifact("ckpt_1", "workspace.bundle")).rejects.toMatchObject({
      reason: "checkpoint_missing",
    });
    // Only sandboxd's private repo of checkpoint commits stays (the next checkpoint builds on it).
    expect(readdirSync(join(sbx.dirs.root, "checkpoints"))).toEqual([".snapshot-git"]);
  });

  it("restore into a fresh sandboxd at the same paths is byte for byte, with branch, commits and sessions", async () => {
    const dirs = sbx.dirs;
    await sbx.kill();
    for (const d of [dirs.workspace, dirs.home, dirs.tmp, join(dirs.root, "checkpoints")]) {
      rmSync(d, { recursive: true, force: true });
    }
    // As the local provider starts it for a restore: OpenCode boots on the checkpoint's data (a
    // file of the host's store) before the artifacts are staged; the restore keeps that OpenCode.
    const data = manifest.artifacts.find((a) => a.name === "opencode-data.tar.gz")!;
    const sandboxdLogBefore = readLog(dirs.log);
    sbx = await start(dirs, {
      prestart_restore: {
        opencode_data: { path: join(store, data.name), sha256: data.sha256, bytes: data.bytes },
      },
    });
    expect((await sbx.client.health()).phase).toBe("booting");
    const t0 = Date.now();
    for (const a of manifest.artifacts) {
      expect(await upload(sbx, store, a.name)).toEqual(a);
    }
    const phases: string[] = [];
    const restored = await sbx.client.restore({ manifest, repo: repoUrl, branch: "alpine/demo" }, (p) =>
      phases.push(p),
    );
    timings.restore = Date.now() - t0;
    expect(phases).toEqual(["restoring", "starting_agent"]);
    expect(restored.phase).toBe("ready");
    expect(restored.workspace).toMatchObject({
      branch: "alpine/demo",
      base_commit: manifest.base_commit,
      head: manifest.head_commit,
      tree_hash: manifest.tree_hash,
      ahead: 1,
      dirty: true,
    });

    const w = ws();
    expect(treeDigest(w, ["ignored"])).toEqual(before);
    expect(existsSync(join(w, "ignored"))).toBe(false);
    expect(existsSync(join(w, "gone.txt"))).toBe(false);
    expect(lstatSync(join(w, "link-out")).isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(w, "dir-out"))).toBe("/etc");
    expect(lstatSync(join(w, "deep/er/run.sh")).mode & 0o777).toBe(0o755);
    expect(git(w, "rev-parse", "--abbrev-ref", "HEAD").trim()).toBe("alpine/demo");
    expect(git(w, "log", "--format=%H %s")).toBe(logBefore);
    // The index is HEAD again: what was staged is untracked, modifications are unstaged.
    const lines = (text: string) => text.split("\n").filter(Boolean).sort();
    expect(lines(status(w))).toEqual(lines(statusBefore.replace("A  NOTES.md", "?? NOTES.md")));
    expect(status(w)).toContain(" M src/main.txt");
    expect(status(w)).toContain(" D gone.txt");
    expect(git(w, "for-each-ref", "--format=%(refname)").trim()).toBe("refs/heads/alpine/demo");
    const remotes = git(w, "remote", "-v");
    expect(remotes).toContain(repoUrl);
    expect(remotes).not.toContain(TOKEN);
    expect(existsSync(join(sbx.dirs.home, ".local/share/opencode/auth.json"))).toBe(true);
    expect(await sessions(sbx)).toEqual(sessionsBefore);
    // The UI's own query (by directory) finds them too: same absolute workspace path.
    expect((await sessions(sbx, `?directory=${encodeURIComponent(w)}`)).length).toBe(sessionsBefore.length);
    // Staged artifacts are gone once restored.
    expect(existsSync(join(sbx.dirs.root, "checkpoints", ".restore"))).toBe(false);
    // The OpenCode that answers is the one started at boot, on the data just compared.
    const log = readLog(sbx.dirs.log);
    expect(log.slice(sandboxdLogBefore.length)).toContain(
      "opencode was started at boot on the checkpoint's data",
    );
    // Started once by this sandboxd (at its boot), not again by the restore.
    expect(log.slice(sandboxdLogBefore.length).match(/"starting opencode"/g)?.length).toBe(1);
  });

  it("a restored sandbox takes new tasks in the old session and refuses another restore", async () => {
    await sbx.client.task({ prompt: "WRITE after.md after the restore" });
    const s = await waitTask(sbx.client);
    expect(s.task!.state).toBe("completed");
    // The restored sandbox continues the newest session (the one the first task used).
    expect(sessionsBefore.map((x) => x.split(" ")[0])).toContain(s.task!.session_id);
    rmSync(join(ws(), "after.md"));
    await expect(upload(sbx, store, "workspace.bundle")).rejects.toMatchObject({
      reason: "sandbox_identity_conflict",
    });
  });

  it.skipIf(!existsSync(CHROMIUM))(
    "a login lands on this workspace's session page, which renders in Chromium",
    async () => {
      const { code } = await sbx.client.login();
      const res = await fetch(`${sbx.baseUrl}/auth/${code}`, { redirect: "manual" });
      const dir = Buffer.from(ws()).toString("base64url");
      const session = (await sbx.client.status()).agent.session_id;
      expect(res.headers.get("location")).toBe(`/${dir}/session/${session}`);

      const browser = await launchChromium();
      try {
        const page = await browser.newPage();
        const login = await sbx.client.login();
        await page.goto(`${sbx.baseUrl}/auth/${login.code}`);
        await page.waitForSelector('[data-component="prompt-input"]', { timeout: 60_000 });
        // The app then rewrites the address to its own form (/server/<base64url(origin)>/session/<id>).
        expect(new URL(page.url()).pathname).toMatch(new RegExp(`/session/${session}$`));
        await page.getByText("Wrote NOTES.md.").first().waitFor({ timeout: 30_000 });
      } finally {
        await browser.close();
      }
    },
  );
});

describe("restore refusals", () => {
  beforeAll(async () => {
    spare = await start();
  });

  it("a staged artifact with one corrupted byte is checkpoint_checksum_mismatch naming it; nothing is restored", async () => {
    const bundle = readFileSync(join(store, "workspace.bundle"));
    bundle[Math.floor(bundle.length / 2)]! ^= 0xff;
    await upload(spare, store, "workspace.bundle", bundle);
    await upload(spare, store, "opencode-data.tar.gz");
    const err = (await spare.client
      .restore({ manifest, repo: repoUrl, branch: "alpine/demo" })
      .catch((e: unknown) => e)) as AlpineError;
    expect(err.reason).toBe("checkpoint_checksum_mismatch");
    expect(err.details.artifact).toBe("workspace.bundle");
    expect(err.message).toContain("workspace.bundle");
    expect(readdirSync(spare.dirs.workspace)).toEqual([]);
    expect(existsSync(join(spare.dirs.home, ".local/share/opencode/opencode.db"))).toBe(false);
    expect((await spare.client.health()).phase).toBe("booting");
  });

  it("a truncated data archive is refused the same way; a missing one is checkpoint_missing", async () => {
    await upload(spare, store, "workspace.bundle");
    const data = readFileSync(join(store, "opencode-data.tar.gz"));
    await upload(spare, store, "opencode-data.tar.gz", data.subarray(0, data.length - 1));
    await expect(
      spare.client.restore({ manifest, repo: repoUrl, branch: "alpine/demo" }),
    ).rejects.toMatchObject({
      reason: "checkpoint_checksum_mismatch",
      details: { artifact: "opencode-data.tar.gz" },
    });
    // The mismatching upload was dropped.
    await expect(
      spare.client.restore({ manifest, repo: repoUrl, branch: "alpine/demo" }),
    ).rejects.toMatchObject({
      reason: "checkpoint_missing",
      details: { artifact: "opencode-data.tar.gz" },
    });
    const bad = await raw(spare, "PUT", "/v1/restore/artifacts/manifest.json");
    expect(bad.status).toBe(400);
    expect(readdirSync(spare.dirs.workspace)).toEqual([]);
  });

  it("checkpoint and export need a ready sandbox; an oversized upload is 413", async () => {
    await expect(
      spare.client.checkpoint({ checkpoint_id: "ckpt_x", created_at: new Date().toISOString() }),
    ).rejects.toMatchObject({ reason: "sandbox_not_running" });
    await expect(
      spare.client.export({ branch: "x", message: "m", author: { name: "A", email: "a@x" }, push: false }),
    ).rejects.toMatchObject({ reason: "sandbox_not_running" });
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(
        {
          host: "127.0.0.1",
          port: spare.port,
          method: "PUT",
          path: "/v1/restore/artifacts/workspace.bundle",
          headers: { authorization: `Bearer ${spare.token}`, "content-length": String(21 * 1024 ** 3) },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on("error", reject);
      req.write("x".repeat(1024));
    });
    expect(status).toBe(413);
  });

  it("bad branch and repo are refused before anything runs", async () => {
    await expect(
      spare.client.restore({ manifest, repo: repoUrl, branch: "refs/heads/x" }),
    ).rejects.toMatchObject({
      reason: "branch_invalid",
    });
    await expect(
      spare.client.restore({ manifest, repo: "-oops", branch: "alpine/demo" }),
    ).rejects.toMatchObject({
      reason: "repo_resolution_failed",
    });
  });
});

describe("export", () => {
  it("commits everything onto the branch and pushes it; the token is nowhere", async () => {
    const w = ws();
    const base = manifest.base_commit;
    const { result: out, seen } = await watchProcesses(() =>
      sbx.client.export({
        branch: "alpine/demo",
        message: "Agent work\n\nExported by alpine.",
        author: { name: "Ada Lovelace", email: "ada@example.com" },
        push: true,
        credentials: { username: USER, password: TOKEN },
      }),
    );
    expect(seen).toBe("");
    expect(out).toMatchObject({ branch: "alpine/demo", base_commit: base, pushed: true, remote: repoUrl });
    expect(await server.readRef("app", "refs/heads/alpine/demo")).toBe(out.commit);
    const files = await server.listFiles("app", out.commit);
    expect(files).toEqual(
      expect.arrayContaining([
        "NOTES.md",
        "deep/er/run.sh",
        "blob.bin",
        "link-out",
        "README.md",
        ".gitignore",
      ]),
    );
    expect(files).not.toContain("gone.txt");
    expect(files.some((f) => f.startsWith("ignored/"))).toBe(false);
    expect(await server.readFile("app", out.commit, "src/main.txt")).toBe(
      "hello, changed again (unstaged)\n",
    );
    const bare = server.repoPath("app");
    expect(git(bare, "ls-tree", out.commit, "deep/er/run.sh")).toMatch(/^100755 /);
    expect(git(bare, "ls-tree", out.commit, "link-out")).toMatch(/^120000 /);
    expect(git(bare, "log", "-1", "--format=%an <%ae>|%cn <%ce>|%s", out.commit).trim()).toBe(
      "Ada Lovelace <ada@example.com>|Ada Lovelace <ada@example.com>|Agent work",
    );
    expect(git(bare, "rev-parse", `${out.commit}^`).trim()).toBe(manifest.head_commit);
    expect(git(bare, "rev-parse", `${out.commit}^{tree}`).trim()).toBe(out.tree_hash);
    // Counts = git diff --numstat base commit (the binary file is a file with 0/0 lines).
    const numstat = git(bare, "diff", "--numstat", base, out.commit).trim().split("\n");
    expect(out.files_changed).toBe(numstat.length);
    expect(numstat).toContain("-\t-\tblob.bin");
    expect(out.insertions).toBe(numstat.reduce((n, l) => n + (Number(l.split("\t")[0]) || 0), 0));
    expect(out.deletions).toBe(numstat.reduce((n, l) => n + (Number(l.split("\t")[1]) || 0), 0));
    // The workspace's branch moved to the commit and its index matches: nothing left to commit.
    expect(git(w, "rev-parse", "HEAD").trim()).toBe(out.commit);
    expect(status(w)).toBe("");
    const st = await sbx.client.status();
    expect(st.workspace).toMatchObject({
      head: out.commit,
      dirty: false,
      tree_hash: out.tree_hash,
      ahead: 2,
    });
    // The token was never written anywhere.
    expect(readFileSync(join(w, ".git/config"), "utf8")).not.toContain(TOKEN);
    expect(git(w, "remote", "-v")).not.toContain(TOKEN);
    expect(readLog(sbx.dirs.log)).not.toContain(TOKEN);
    expect(filesContaining(join(w, ".git"), [TOKEN])).toEqual([]);
  });

  it("again without changes: the same commit (already on the remote)", async () => {
    const head = git(ws(), "rev-parse", "HEAD").trim();
    const out = await sbx.client.export({
      branch: "alpine/demo",
      message: "again",
      author: { name: "Ada", email: "ada@example.com" },
      push: true,
      credentials: { username: USER, password: TOKEN },
    });
    expect(out.commit).toBe(head);
  });

  it("a non-fast-forward push is push_rejected with git's message; wrong credentials are repo_unreachable", async () => {
    const other = tempDir("alpine-other-");
    const env = { ...gitAuthEnv(), GIT_AUTHOR_NAME: "Bob", GIT_AUTHOR_EMAIL: "b@x" };
    // Async: the git server runs in this process, a synchronous push would wait for itself.
    const run = (...args: string[]) =>
      promisify(execFile)("git", args, { cwd: other, env: { ...process.env, ...env } });
    await run("init", "-q", "-b", "taken");
    writeFileSync(join(other, "x.txt"), "someone else\n");
    await run("add", ".");
    await run("-c", "user.name=Bob", "-c", "user.email=b@x", "commit", "-qm", "unrelated");
    await run("push", "-q", repoUrl, "taken:refs/heads/taken");
    const err = (await sbx.client
      .export({
        branch: "taken",
        message: "m",
        author: { name: "A", email: "a@x" },
        push: true,
        credentials: { username: USER, password: TOKEN },
      })
      .catch((e: unknown) => e)) as AlpineError;
    expect(err.reason).toBe("push_rejected");
    expect(String(err.details.git)).toMatch(/rejected|fetch first|non-fast-forward/);
    expect(JSON.stringify(err.details)).not.toContain(TOKEN);
    const unreachable = (await sbx.client
      .export({
        branch: "alpine/other",
        message: "m",
        author: { name: "A", email: "a@x" },
        push: true,
        credentials: { username: USER, password: "wrong" },
      })
      .catch((e: unknown) => e)) as AlpineError;
    expect(unreachable.reason).toBe("repo_unreachable");
    expect(unreachable.retryable).toBe(true);
  });

  it("branch names are checked before anything runs", async () => {
    for (const branch of ["refs/heads/x", "-x", "a..b", "x.lock", "a b", "HEAD", "x~1", "--force"]) {
      await expect(
        sbx.client.export({ branch, message: "m", author: { name: "A", email: "a@x" }, push: false }),
        branch,
      ).rejects.toMatchObject({ reason: "branch_invalid" });
    }
  });

  it("nothing to export on an untouched clone is nothing_to_export (409)", async () => {
    plain = await startSandboxd({ isolation: "none", opencode });
    await plain.client.init({
      repo: repoUrl,
      branch: "alpine/plain",
      credentials: { username: USER, password: TOKEN },
    });
    const res = await fetch(`${plain.baseUrl}/v1/export`, {
      method: "POST",
      headers: { authorization: `Bearer ${plain.token}`, "content-type": "application/json" },
      body: JSON.stringify({
        branch: "alpine/plain",
        message: "m",
        author: { name: "A", email: "a@x" },
        push: true,
      }),
    });
    expect(res.status).toBe(409);
    expect(await res.json()).toMatchObject({ reason_code: "nothing_to_export", exit_code: 1 });
    expect(await server.readRef("app", "refs/heads/alpine/plain")).toBeNull();
    await plain.kill();
    plain = undefined;
  });
});

function gitAuthEnv(): Record<string, string> {
  const auth = Buffer.from(`${USER}:${TOKEN}`).toString("base64");
  return {
    GIT_CONFIG_COUNT: "1",
    GIT_CONFIG_KEY_0: "http.extraHeader",
    GIT_CONFIG_VALUE_0: `Authorization: Basic ${auth}`,
  };
}

describe("a hostile workspace git config", () => {
  it("is never executed by checkpoint, export (push) or restore", async () => {
    const root = sbx.dirs.root;
    const evil = join(root, "evil");
    const hooks = join(evil, "hooks");
    mkdirSync(hooks, { recursive: true });
    mkdirSync(join(ws(), ".git/hooks"), { recursive: true });
    const script = (name: string) => {
      const p = join(evil, name);
      writeFileSync(p, `#!/bin/sh\ntouch '${join(root, `ran-${name}`)}'\nexit 0\n`);
      chmodSync(p, 0o755);
      return p;
    };
    const hookNames = [
      "pre-commit",
      "commit-msg",
      "post-commit",
      "reference-transaction",
      "pre-push",
      "post-checkout",
      "post-index-change",
      "pre-auto-gc",
      "fsmonitor-watchman",
    ];
    for (const h of hookNames) {
      const p = join(hooks, h);
      writeFileSync(p, `#!/bin/sh\ntouch '${join(root, `ran-hook-${h}`)}'\nexit 0\n`);
      chmodSync(p, 0o755);
      writeFileSync(join(ws(), ".git/hooks", h), readFileSync(p));
      chmodSync(join(ws(), ".git/hooks", h), 0o755);
    }
    const config = join(ws(), ".git/config");
    const saved = readFileSync(config, "utf8");
    writeFileSync(
      config,
      `${saved}[core]\n\tfsmonitor = ${script("fsmonitor")}\n\thooksPath = ${hooks}\n\tsshCommand = ${script("ssh")}\n` +
        `[filter "evil"]\n\tclean = ${script("clean")}\n\tsmudge = ${script("smudge")}\n\tprocess = ${script("process")}\n\trequired = true\n` +
        `[diff "evil"]\n\ttextconv = ${script("textconv")}\n[diff]\n\texternal = ${script("extdiff")}\n` +
        `[commit]\n\tgpgSign = true\n[gpg]\n\tprogram = ${script("gpg")}\n` +
        // Redirections of the push: they must not apply (the push uses the sandbox's recorded repo).
        `[remote "origin"]\n\tpushurl = http://127.0.0.1:1/evil.git\n` +
        `[url "http://127.0.0.1:1/"]\n\tinsteadOf = ${server.baseURL}/\n[http]\n\tproxy = http://127.0.0.1:1\n`,
    );
    writeFileSync(join(ws(), ".gitattributes"), "* filter=evil diff=evil\n");
    writeFileSync(join(ws(), "src/main.txt"), "changed under a hostile config\n");
    const marks = () => readdirSync(root).filter((n) => n.startsWith("ran-"));
    try {
      const m = await sbx.client.checkpoint({
        checkpoint_id: "ckpt_2",
        created_at: new Date().toISOString(),
      });
      expect(marks()).toEqual([]);
      const out = await sbx.client.export({
        branch: "alpine/hostile",
        message: "hostile",
        author: { name: "A", email: "a@x" },
        push: true,
        credentials: { username: USER, password: TOKEN },
      });
      expect(marks()).toEqual([]);
      expect(await server.readRef("app", "refs/heads/alpine/hostile")).toBe(out.commit);
      expect(await server.readFile("app", out.commit, "src/main.txt")).toBe(
        "changed under a hostile config\n",
      );
      // Restore it into the spare sandboxd (its earlier restores were refused).
      const dir = join(store, "ckpt_2");
      await download(sbx, m, dir);
      for (const a of m.artifacts) await upload(spare, dir, a.name);
      const restored = await spare.client.restore({ manifest: m, repo: repoUrl, branch: "alpine/demo" });
      expect(restored.phase).toBe("ready");
      expect(marks()).toEqual([]);
      expect(readdirSync(spare.dirs.root).filter((n) => n.startsWith("ran-"))).toEqual([]);
      expect(readFileSync(join(spare.dirs.workspace, "src/main.txt"), "utf8")).toBe(
        "changed under a hostile config\n",
      );
      expect(readFileSync(join(spare.dirs.workspace, ".gitattributes"), "utf8")).toBe(
        "* filter=evil diff=evil\n",
      );
      // The restored repo's config is sandboxd's, not the hostile one.
      expect(readFileSync(join(spare.dirs.workspace, ".git/config"), "utf8")).not.toContain("evil");
    } finally {
      writeFileSync(config, saved);
      for (const h of hookNames) rmSync(join(ws(), ".git/hooks", h), { force: true });
    }
  });
});

describe("checkpoint building blocks", () => {
  it("checkpoint_dir must be sandboxd's own: not inside or around the workspace, home or tmp", () => {
    const base = {
      sandbox_id: "sbx_1",
      name: "demo",
      token: "x".repeat(20),
      host: "127.0.0.1",
      port: 0,
      workspace_dir: "/s/workspace",
      home_dir: "/s/home",
      tmp_dir: "/s/tmp",
      log_file: "/s/log",
      isolation: "none" as const,
      mask_paths: [],
      read_only_paths: [],
      opencode_bin: "/bin/true",
      opencode: { providers: [] },
      egress: "open" as const,
      branch_prefix: "alpine",
    };
    expect(checkpointDirOf(base)).toBe("/s/checkpoints");
    for (const bad of ["/s/workspace/.ckpt", "/s/home/x", "/s/tmp", "/s", "/"]) {
      expect(() => checkpointDirOf({ ...base, checkpoint_dir: bad }), bad).toThrow(/checkpoint_dir/);
    }
    expect(checkpointDirOf({ ...base, checkpoint_dir: "/var/ckpt" })).toBe("/var/ckpt");
  });

  it("ids and names are single safe path segments", () => {
    for (const ok of ["ckpt_1", "ckpt_01J0ABC", "a.b-c_d"]) expect(isCheckpointId(ok), ok).toBe(true);
    for (const bad of ["", ".", "..", ".restore", ".work-x", "a/b", "a..b", "-x", "a\0b", "x".repeat(129)]) {
      expect(isCheckpointId(bad), bad).toBe(false);
    }
    expect(isArtifactName("workspace.bundle")).toBe(true);
    expect(isArtifactName("manifest.json")).toBe(false);
  });

  it("OpenCode's data dir behind a symlink is refused, not followed", async () => {
    const home = tempDir("alpine-home-");
    const elsewhere = tempDir("alpine-elsewhere-");
    mkdirSync(join(elsewhere, "share", "opencode"), { recursive: true });
    writeFileSync(join(elsewhere, "share", "opencode", "opencode.db"), "host data");
    symlinkSync(elsewhere, join(home, ".local"));
    const out = tempDir("alpine-pack-");
    await expect(
      packOpencodeData(home, join(out, "staging"), join(out, "data.tar.gz")),
    ).rejects.toMatchObject({
      reason: "checkpoint_failed",
    });
    expect(existsSync(join(out, "staging", "opencode.db"))).toBe(false);
  });

  it("an archive round trip keeps files, modes and links and drops auth.json and log/", async () => {
    const home = tempDir("alpine-home-");
    const data = join(home, ".local/share/opencode");
    mkdirSync(join(data, "log"), { recursive: true });
    mkdirSync(join(data, "snapshot/p"), { recursive: true });
    writeFileSync(join(data, "auth.json"), '{"k":"secret"}');
    writeFileSync(join(data, "log/opencode.log"), "log");
    writeFileSync(join(data, "opencode.db"), "db");
    writeFileSync(join(data, "opencode.db-wal"), "wal");
    writeFileSync(join(data, "snapshot/p/run"), "x");
    chmodSync(join(data, "snapshot/p/run"), 0o755);
    writeFileSync(join(data, "snapshot/p/auth.json"), "nested");
    symlinkSync("/etc/passwd", join(data, "snapshot/p/link"));
    const out = tempDir("alpine-pack-");
    const packed = await packOpencodeData(home, join(out, "staging"), join(out, "data.tar.gz"));
    expect(packed.bytes).toBe(readFileSync(join(out, "data.tar.gz")).length);
    const target = tempDir("alpine-home-");
    mkdirSync(join(target, ".local/share/opencode"), { recursive: true });
    writeFileSync(join(target, ".local/share/opencode/auth.json"), "kept");
    writeFileSync(join(target, ".local/share/opencode/opencode.db-shm"), "stale");
    await unpackOpencodeData(target, join(out, "data.tar.gz"));
    expect(treeDigest(join(target, ".local/share/opencode"))).toEqual({
      "auth.json": treeDigest(join(target, ".local/share/opencode"))["auth.json"],
      "opencode.db": `-:${createHash("sha256").update("db").digest("hex")}`,
      "opencode.db-wal": `-:${createHash("sha256").update("wal").digest("hex")}`,
      "snapshot/p/link": "link:/etc/passwd",
      "snapshot/p/run": `x:${createHash("sha256").update("x").digest("hex")}`,
    });
    expect(readFileSync(join(target, ".local/share/opencode/auth.json"), "utf8")).toBe("kept");
  });
});
