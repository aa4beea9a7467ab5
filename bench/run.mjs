// `npm run bench`: alpine against its floor, every figure a ratio measured side by side in
// the same run (absolute times vary from machine to machine and with load). Not part of
// `npm test`. Prints a table and writes bench/results.json (see docs/performance.md).
//
//   launch-to-ready   `alpine launch` (command start → OpenCode answers, agent idle, command exits)
//                     on a cold repo cache, a warm repo cache and with a warm pool, against the
//                     floor: `git clone` of the same repo + `opencode serve` until healthy;
//                     repos of three sizes generated here, served over authenticated smart HTTP
//   parallel          10 launches at once: total time against one launch; zero failures
//   checkpoint        `alpine checkpoint` / resume of a workspace with 200 MB of changes, against
//                     raw `git add`+`commit`+`git bundle create` + `tar` (and clone + untar)
//   environment       launch of a repo whose setup (devcontainer postCreateCommand) takes ≈3 s:
//                     with its prepared environment cached, against a launch of the same repo
//                     without setup (--skip-setup); and the first, uncached launch less its setup
//                     time against that same launch (docs/environments.md)
//   memory            RSS of an idle sandbox: sandboxd's own beside OpenCode's
//   cli latency       `list --json` / `status --json` with 1, 100, 1000 records, against `node -e 0`
//
// BENCH_QUICK=1   a smoke run (tiny repo, 3 runs, 4 parallel, 20 MB), about 2 minutes
// BENCH_RUNS=N    runs per launch figure (default 5; quick 3)
// BENCH_LARGE_MB=N    history of the large repo in MB (default 500, the issue's ~500 MB; 60 commits of new binary data)
// BENCH_LARGE_FILES=N  instead: a large repo of N files in one commit (e.g. 50000)
// BENCH_SUSPEND=1 then also bench/suspend.mjs: 30 sandboxes, 29 suspended (≈ 4 more minutes)
// BENCH_ONLY=checkpoints  only the incremental checkpoint and resume figures (issue 18);
//                      BENCH_ONLY=checkpoint only the checkpoint figures, BENCH_ONLY=resume only resume's
// BENCH_ONLY=environment  only the environment figures (issue 16)
// BENCH_HISTORY_MB=N   history of the incremental-checkpoint repo (default 120), generated once and
//                      kept in BENCH_CACHE (default /var/tmp/alpine-bench-cache) between runs
// BENCH_DUMP_LOGS=<dir>  keep each measured launch's sandboxd log there (its profile's source)
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const opencode = join(dirname(require.resolve("opencode-ai/package.json")), "bin", "opencode.exe");
const QUICK = Boolean(process.env.BENCH_QUICK);
const RUNS = Number(process.env.BENCH_RUNS ?? (QUICK ? 3 : 5));
const PARALLEL = QUICK ? 4 : 10;
const CHANGES_MB = QUICK ? 20 : 200;
const LARGE_MB = Number(process.env.BENCH_LARGE_MB ?? 500);
const LARGE_FILES = Number(process.env.BENCH_LARGE_FILES ?? 0);
const work = mkdtempSync(join(tmpdir(), "alpine-bench-"));
const ONLY = process.env.BENCH_ONLY ?? "";
const HISTORY_MB = Number(process.env.BENCH_HISTORY_MB ?? 120);
const BENCH_CACHE = process.env.BENCH_CACHE ?? "/var/tmp/alpine-bench-cache";

// The built CLI and sandboxd, copied aside first: a rebuild in the tree (npm run build wipes
// dist/) during a 10-minute run must not pull them away. Externals resolve to the real ones.
function snapshotBuild() {
  const tree = join(work, "build");
  for (const [pkg, parts] of [
    ["cli", ["bin", "dist", "package.json"]],
    ["sandboxd", ["dist", "package.json"]],
  ]) {
    for (const part of parts)
      cpSync(join(root, "packages", pkg, part), join(tree, "packages", pkg, part), { recursive: true });
  }
  const modules = join(tree, "node_modules");
  mkdirSync(join(modules, "@alpine"), { recursive: true });
  symlinkSync(join(tree, "packages", "sandboxd"), join(modules, "@alpine", "sandboxd"));
  for (const dep of ["better-sqlite3", "opencode-ai", "playwright-core"])
    symlinkSync(join(root, "node_modules", dep), join(modules, dep));
  return join(tree, "packages", "cli", "bin", "alpine.js");
}
const cli = snapshotBuild();
const benchStart = Date.now();
const load = [loadavg()[0]];

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const p95 = (xs) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil(xs.length * 0.95) - 1)];
const now = () => performance.now();
const say = (msg) => process.stderr.write(`[${((Date.now() - benchStart) / 1000).toFixed(0)}s] ${msg}\n`);

// ---------------------------------------------------------------------------
// A user's machine: HOME with a git credential store for the git server, alpine's home.

const USER = "bench";
const PASSWORD = `bench-${randomBytes(8).toString("hex")}`;
const home = join(work, "home");
mkdirSync(home, { recursive: true });
const alpineHome = join(work, "alpine-home");
const env = {
  PATH: process.env.PATH,
  LANG: process.env.LANG ?? "C.UTF-8",
  HOME: home,
  ALPINE_HOME: alpineHome,
  XDG_CONFIG_HOME: join(home, ".config"),
  XDG_DATA_HOME: join(home, ".local", "share"),
  XDG_STATE_HOME: join(home, ".local", "state"),
  GIT_CONFIG_NOSYSTEM: "1",
  NO_COLOR: "1",
  // OpenCode would install a plugin from the registry at every start; keep everything local.
  npm_config_registry: "http://127.0.0.1:9/",
};

// The git smart-HTTP server of the tests, bundled from TypeScript for plain node and run in a
// process of its own: this script waits in synchronous child processes that talk to it.
const { build } = await import("esbuild");
const cacheDir = join(root, "node_modules", ".cache", "alpine-bench");
const fixture = join(cacheDir, "git-server.mjs");
// Seeded records take core's own initial shape (records.ts has no dependencies).
const recordsModule = join(cacheDir, "records.mjs");
await build({
  entryPoints: {
    "git-server": join(root, "test", "e2e", "fixtures", "git-server.ts"),
    records: join(root, "packages", "core", "src", "records.ts"),
  },
  outdir: cacheDir,
  outExtension: { ".js": ".mjs" },
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node22",
  logLevel: "error",
});
const { newSandboxRecord } = await import(recordsModule);
const runner = join(cacheDir, "git-server-run.mjs");
writeFileSync(
  runner,
  `import { startGitServer } from ${JSON.stringify(fixture)};
const s = await startGitServer({ username: process.env.U, password: process.env.P, root: process.env.R });
process.stdout.write(JSON.stringify({ port: s.port }) + "\\n");
process.stdin.resume();
process.stdin.on("end", () => s.close().then(() => process.exit(0)));
`,
);
const served = join(work, "served");
mkdirSync(served, { recursive: true });
const serverProc = spawn(process.execPath, [runner], {
  env: { ...process.env, U: USER, P: PASSWORD, R: served },
  stdio: ["pipe", "pipe", "inherit"],
});
const server = await new Promise((resolve, reject) => {
  serverProc.stdout.once("data", (d) => {
    const { port } = JSON.parse(String(d));
    resolve({
      port,
      root: served,
      url: (name) => `http://127.0.0.1:${port}/${name}.git`,
      close: () =>
        new Promise((r) => {
          serverProc.once("exit", r);
          serverProc.stdin.end();
        }),
    });
  });
  serverProc.once("exit", (code) => reject(new Error(`the git server exited with ${code}`)));
});
writeFileSync(
  join(home, ".gitconfig"),
  "[credential]\n\thelper = store\n[user]\n\tname = B\n\temail = b@x\n",
);
writeFileSync(join(home, ".git-credentials"), `http://${USER}:${PASSWORD}@127.0.0.1:${server.port}\n`, {
  mode: 0o600,
});

/** A repo of `files` files (≈1 KB each, 50 per dir) pushed into the git server; returns its URL. */
function makeRepo(name, files, historyMb = 0) {
  const dir = join(work, `${name}-src`);
  mkdirSync(dir, { recursive: true });
  const git = (...args) =>
    execFileSync("git", args, { cwd: dir, stdio: "pipe", env: { ...env, GIT_INDEX_FILE: undefined } });
  git("init", "-q", "-b", "main");
  for (let i = 0; i < files; i++) {
    const sub = join(dir, `d${Math.floor(i / 50)}`);
    if (i % 50 === 0) mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, `f${i}.txt`), `file ${i} ${randomBytes(12).toString("hex")}\n`.repeat(20));
  }
  writeFileSync(join(dir, "README.md"), `# ${name}\n`);
  git("add", "-A");
  git("-c", "user.name=bench", "-c", "user.email=b@x", "commit", "-qm", "init");
  // History: commits that each add `historyMb / 60` MB of incompressible data.
  const commits = historyMb > 0 ? 60 : 0;
  for (let c = 0; c < commits; c++) {
    writeFileSync(join(dir, `blob-${c % 10}.bin`), randomBytes(Math.round((historyMb * 2 ** 20) / commits)));
    git("add", "-A");
    git("-c", "user.name=bench", "-c", "user.email=b@x", "commit", "-qm", `history ${c}`);
  }
  const bare = join(server.root, `${name}.git`);
  execFileSync("git", ["clone", "-q", "--bare", dir, bare], { env });
  // Served packed, as any real server does (not thousands of loose objects).
  execFileSync("git", ["--git-dir", bare, "repack", "-adq"], { env });
  rmSync(dir, { recursive: true, force: true });
  return server.url(name);
}

function alpine(args, extraEnv = {}) {
  const r = spawnSync(process.execPath, [cli, ...args], {
    env: { ...env, ...extraEnv },
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.status !== 0) throw new Error(`alpine ${args.join(" ")} failed: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

function alpineAsync(args, extraEnv = {}) {
  return new Promise((resolve) => {
    const start = now();
    const child = spawn(process.execPath, [cli, ...args], {
      env: { ...env, ...extraEnv },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    child.on("exit", (code) => resolve({ code, out, ms: now() - start }));
  });
}

const teardown = (name) => alpine(["teardown", name, "--force", "--json"]);

/** A repo of the given files (path → content) pushed into the git server; returns its URL. */
function makeFilesRepo(name, files) {
  const dir = join(work, `${name}-src`);
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  const git = (...args) => execFileSync("git", args, { cwd: dir, stdio: "pipe", env });
  git("init", "-q", "-b", "main");
  git("add", "-A");
  git("-c", "user.name=bench", "-c", "user.email=b@x", "commit", "-qm", "init");
  execFileSync("git", ["clone", "-q", "--bare", dir, join(server.root, `${name}.git`)], { env });
  rmSync(dir, { recursive: true, force: true });
  return server.url(name);
}

// ---------------------------------------------------------------------------
// The floor: a plain clone plus OpenCode until it answers, nothing else.

const ocEnv = (h) => ({
  ...env,
  HOME: h,
  XDG_DATA_HOME: join(h, "d"),
  XDG_CONFIG_HOME: join(h, "c"),
  XDG_STATE_HOME: join(h, "s"),
  XDG_CACHE_HOME: join(h, "k"),
  OPENCODE_SERVER_PASSWORD: "bench",
  OPENCODE_DISABLE_AUTOUPDATE: "1",
  OPENCODE_DISABLE_MODELS_FETCH: "1",
  OPENCODE_DISABLE_LSP_DOWNLOAD: "1",
});

async function floorOnce(url, tag) {
  const dir = join(work, `floor-${tag}`);
  const h = join(dir, "home");
  mkdirSync(h, { recursive: true });
  const start = now();
  // The host's credential store answers git, as it answers alpine.
  execFileSync("git", ["clone", "-q", url, join(dir, "ws")], { env });
  const cloned = now();
  const port = 20000 + Math.floor(Math.random() * 20000);
  const child = spawn(opencode, ["serve", "--hostname", "127.0.0.1", "--port", String(port)], {
    cwd: join(dir, "ws"),
    env: ocEnv(h),
    stdio: ["ignore", "pipe", "ignore"],
  });
  await new Promise((resolve) =>
    child.stdout.on("data", (d) => String(d).includes("listening") && resolve()),
  );
  const listening = now();
  const auth = `Basic ${Buffer.from("opencode:bench").toString("base64")}`;
  for (;;) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/global/health`, {
        headers: { authorization: auth },
        signal: AbortSignal.timeout(300),
      });
      if (r.ok) break;
    } catch {}
  }
  const end = now();
  // Not part of the floor: the first request about the project (OpenCode opens its instance
  // for the directory), which anything that reports the agent's state has to make.
  const ac = new AbortController();
  const ev = await fetch(`http://127.0.0.1:${port}/event`, {
    headers: { authorization: auth },
    signal: ac.signal,
  });
  await ev.body.getReader().read();
  const instance = now() - end;
  ac.abort();
  child.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
  return {
    ms: end - start,
    clone: cloned - start,
    opencode: listening - cloned,
    health: end - listening,
    instance_after_floor: instance,
  };
}

// ---------------------------------------------------------------------------
// One launch, with its phases read from sandboxd's log.

function sandboxDirOf(id) {
  return join(alpineHome, "sandboxes", id);
}

function phasesOf(id, startedAt, exitedAt) {
  let lines = [];
  try {
    lines = readFileSync(join(sandboxDirOf(id), "logs", "sandboxd.log"), "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l));
  } catch {
    return null;
  }
  // BENCH_DUMP_LOGS=<dir>: each measured launch's sandboxd log kept there (the profile's source).
  if (process.env.BENCH_DUMP_LOGS) {
    cpSync(join(sandboxDirOf(id), "logs"), join(process.env.BENCH_DUMP_LOGS, `${id}-${startedAt}`), {
      recursive: true,
    });
  }
  const at = (pred) => {
    const l = lines.findLast ? lines.findLast(pred) : lines.filter(pred).at(-1);
    return l ? Date.parse(l.ts) - startedAt : null;
  };
  return {
    sandboxd_listening: at((l) => l.msg === "listening"),
    adopted: at((l) => l.msg === "adopted"),
    opencode_spawned: at((l) => l.msg === "starting opencode"),
    cache_ready: at((l) => l.msg === "repo cache is fresh" || l.msg === "repo cache fetched"),
    from_spare: at((l) => l.msg === "workspace made from the spare checkout"),
    checked_out: at((l) => l.msg === "workspace checked out"),
    opencode_listening: at((l) => l.msg === "opencode listening"),
    // A resume's: its artifacts staged (the last one), its workspace rebuilt from the chain.
    restore_staged: at((l) => l.msg === "restore artifact staged"),
    workspace_restored: at((l) => l.msg === "workspace restored"),
    agent_starting: at((l) => l.msg === "phase" && l.phase === "starting_agent"),
    ready: at((l) => l.msg === "phase" && l.phase === "ready"),
    exited: exitedAt - startedAt,
  };
}

/**
 * A launch of a repo with many files prepares the repo's spare checkout after it is ready
 * (sandboxd/src/spare-checkout.ts), off the measured path. Its writes must neither overlap
 * the next measurement nor be cut short by the teardown that follows (which stops it).
 */
async function spareSettled(id) {
  // sandboxd logs (synchronously) that it started one before the launch's answer leaves it.
  const log = join(sandboxDirOf(id), "logs", "sandboxd.log");
  const deadline = Date.now() + 120_000;
  for (;;) {
    const text = readFileSync(log, "utf8");
    if (!text.includes('"preparing a spare checkout"') || /"spare checkout (not )?prepared"/.test(text))
      return;
    if (Date.now() > deadline) throw new Error(`the spare checkout of ${id} did not settle within 120 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

let launchSeq = 0;
async function launchOnce(url, extraEnv = {}) {
  const name = `bench-${++launchSeq}`;
  const startedAt = Date.now();
  const r = await alpineAsync(["launch", name, "--repo", url, "--json"], extraEnv);
  const exitedAt = Date.now();
  if (r.code !== 0) throw new Error(`launch failed: ${r.out}`);
  const out = JSON.parse(r.out.slice(r.out.indexOf("{")));
  if (out.state !== "running") throw new Error(`unexpected state ${out.state}`);
  const phases = phasesOf(out.id, startedAt, exitedAt);
  await spareSettled(out.id);
  teardown(name);
  return { ms: r.ms, phases };
}

const POOL = { ALPINE_SANDBOX_WARM_POOL: "1" };

/** CPU time (ms) one launch uses, by process: the CLI, sandboxd (with its git), OpenCode. */
function launchCpu(url) {
  const name = "bench-cpu";
  const timed = spawnSync(
    "/usr/bin/time",
    ["-f", "%U %S", process.execPath, cli, "launch", name, "--repo", url, "--json"],
    {
      env,
      encoding: "utf8",
    },
  );
  const [u, sy] = timed.stderr.trim().split("\n").at(-1).split(" ").map(Number);
  const out = JSON.parse(timed.stdout);
  const ticks = (pid) => {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
    return ((Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) * 1000) / 100;
  };
  const sandboxd = Number(readFileSync(join(sandboxDirOf(out.id), "sandboxd.pid"), "utf8"));
  const ps = spawnSync("ps", ["-eo", "pid=,ppid=,args="], { encoding: "utf8" })
    .stdout.trim()
    .split("\n")
    .map((l) => l.trim().split(/\s+/, 3))
    .map(([p, pp, args]) => ({ pid: Number(p), ppid: Number(pp), args }));
  const below = (p) => ps.filter((r) => r.ppid === p).flatMap((r) => [r, ...below(r.pid)]);
  const oc = below(sandboxd).filter((r) => r.args.includes("opencode.exe") && !r.args.startsWith("bwrap"));
  const result = {
    cli: Math.round((u + sy) * 1000),
    sandboxd: Math.round(ticks(sandboxd)),
    opencode: Math.round(oc.reduce((sum, r) => sum + ticks(r.pid), 0)),
  };
  teardown(name);
  return { ...result, total: result.cli + result.sandboxd + result.opencode };
}

/** Waits until the pool has a runtime whose OpenCode answers (what a warm pool is for). */
async function poolReady() {
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    try {
      for (const n of readdirSync(join(alpineHome, "pool")).filter((x) => x.endsWith(".json"))) {
        const entry = JSON.parse(readFileSync(join(alpineHome, "pool", n), "utf8"));
        const line = readFileSync(join(entry.dir, "sandboxd.out"), "utf8").split("\n")[0];
        if (!line) continue;
        const { port } = JSON.parse(line);
        const token = readFileSync(join(entry.dir, "token"), "utf8");
        const s = await (
          await fetch(`http://127.0.0.1:${port}/v1/status`, { headers: { authorization: `Bearer ${token}` } })
        ).json();
        if (s.opencode.ready) return;
      }
    } catch {}
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error("the warm pool did not fill within 120 s");
}

const summary = (xs) => ({ median: median(xs), p95: p95(xs), runs: xs.map((x) => Math.round(x)) });
const medianPhases = (ps) => {
  const keys = Object.keys(ps[0] ?? {});
  return Object.fromEntries(
    keys.map((k) => {
      const vals = ps.map((p) => p?.[k]).filter((v) => typeof v === "number");
      return [k, vals.length ? Math.round(median(vals)) : null];
    }),
  );
};

async function benchLaunch(label, url, { pool = true } = {}) {
  const floors = [];
  const cold = [];
  const warm = [];
  const pooled = [];
  say(`launch-to-ready: ${label}`);
  // gc with the pool on starts it (later pooled launches refill it when they are done).
  if (pool) {
    alpine(["gc", "--json"], POOL);
    await poolReady();
  }
  for (let i = 0; i < RUNS; i++) {
    // Interleaved, so every variant sees the same machine load.
    floors.push(await floorOnce(url, `${label}-${i}`));
    rmSync(join(alpineHome, "cache"), { recursive: true, force: true });
    cold.push(await launchOnce(url));
    warm.push(await launchOnce(url));
    if (pool) {
      pooled.push(await launchOnce(url, POOL));
      // The refill's OpenCode boots now: wait for it, so it does not load the next measurements.
      await poolReady();
    }
  }
  const floor = summary(floors.map((f) => f.ms));
  const row = (variant, runs, goal) => ({
    name: `launch ${label}, ${variant}`,
    alpine_ms: summary(runs.map((r) => r.ms)),
    floor_ms: floor,
    ratio: median(runs.map((r) => r.ms)) / floor.median,
    goal,
    profile: medianPhases(runs.map((r) => r.phases)),
  });
  const rows = [
    row("cold repo cache", cold, label === "tiny" || label === "5k files" ? 1.2 : null),
    row("warm repo cache", warm, 0.6),
  ];
  if (pool) rows.push(row("warm pool", pooled, 0.3));
  rows[0].floor_profile = medianPhases(floors.map(({ ms, ...parts }) => parts));
  return rows;
}

// ---------------------------------------------------------------------------
// Incremental checkpoints and resume (issue 18, docs/performance.md).

/**
 * A repo with HISTORY_MB of incompressible history (12 commits), generated once into BENCH_CACHE
 * (outside the repo, kept between bench runs) and served from a copy.
 */
function historyRepo() {
  const name = `history-${HISTORY_MB}mb`;
  const cached = join(BENCH_CACHE, `${name}.git`);
  if (!existsSync(join(cached, "alpine-bench-complete"))) {
    say(`generating ${name} into ${BENCH_CACHE} (once)`);
    rmSync(cached, { recursive: true, force: true });
    const dir = join(work, `${name}-src`);
    mkdirSync(dir, { recursive: true });
    const git = (...args) => execFileSync("git", args, { cwd: dir, stdio: "pipe", env });
    git("init", "-q", "-b", "main");
    for (let i = 0; i < 200; i++) writeFileSync(join(dir, `f${i}.txt`), `file ${i}\n`.repeat(20));
    for (let c = 0; c < 12; c++) {
      writeFileSync(join(dir, `blob-${c % 4}.bin`), randomBytes(Math.round((HISTORY_MB * 2 ** 20) / 12)));
      git("add", "-A");
      git("-c", "user.name=bench", "-c", "user.email=b@x", "commit", "-qm", `history ${c}`);
    }
    mkdirSync(BENCH_CACHE, { recursive: true });
    execFileSync("git", ["clone", "-q", "--bare", dir, cached], { env });
    execFileSync("git", ["--git-dir", cached, "repack", "-adq"], { env });
    writeFileSync(join(cached, "alpine-bench-complete"), "");
    rmSync(dir, { recursive: true, force: true });
  }
  cpSync(cached, join(server.root, `${name}.git`), { recursive: true });
  return server.url(name);
}

/** Bytes of a sandbox's checkpoint store (content-addressed objects: what is new shows as growth). */
function storedBytes(id) {
  const dir = join(alpineHome, "checkpoints", id, "objects");
  if (!existsSync(dir)) return 0;
  return readdirSync(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0);
}

const gitIn = (cwd, ...args) =>
  execFileSync("git", args, {
    cwd,
    stdio: "pipe",
    env: {
      ...env,
      GIT_AUTHOR_NAME: "b",
      GIT_AUTHOR_EMAIL: "b@x",
      GIT_COMMITTER_NAME: "b",
      GIT_COMMITTER_EMAIL: "b@x",
    },
  })
    .toString()
    .trim();

/**
 * Where a checkpoint's time went (ms since the command started, medians in results.json): the
 * request reaching sandboxd, each step of its snapshot (the `phases` of its "checkpoint written"
 * line: ms since the request began), and the command's exit.
 */
function checkpointPhases(id, startedAt, exitedAt) {
  const lines = readFileSync(join(sandboxDirOf(id), "logs", "sandboxd.log"), "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l))
    .filter((l) => Date.parse(l.ts) >= startedAt);
  const written = lines.find((l) => l.msg === "checkpoint written");
  if (!written) return null;
  const writtenAt = Date.parse(written.ts) - startedAt;
  const requestAt = writtenAt - written.ms;
  const phases = { sandboxd_request: requestAt };
  for (const [k, v] of Object.entries(written.phases ?? {}))
    if (typeof v === "number") phases[`sandboxd_${k.replace(/_ms$/, "")}`] = requestAt + v;
  phases.sandboxd_written = writtenAt;
  const dropped = lines.find((l) => l.msg === "checkpoint deleted");
  if (dropped) phases.stored_and_verified = Date.parse(dropped.ts) - startedAt;
  phases.exited = exitedAt - startedAt;
  return phases;
}

/**
 * The floor of a checkpoint: `git bundle create` of what is new only (`revs`, e.g. the new commits
 * `HEAD --not HEAD~1`), with the worktree's changes committed first when `worktree` (in an index of
 * its own, so the workspace is not touched). Returns ms and bytes.
 */
function bundleFloor(ws, worktree, exclude) {
  const file = join(work, "floor.bundle");
  const index = join(work, "floor-index");
  const start = now();
  let tip = "HEAD";
  if (worktree) {
    const e = { ...env, GIT_INDEX_FILE: index };
    const g = (...args) => execFileSync("git", args, { cwd: ws, stdio: "pipe", env: e }).toString().trim();
    g("read-tree", "HEAD");
    g("add", "-A");
    const tree = g("write-tree");
    tip = gitIn(ws, "commit-tree", tree, "-p", "HEAD", "-m", "floor");
  }
  gitIn(ws, "update-ref", "refs/bench/floor", tip);
  gitIn(ws, "bundle", "create", "-q", file, "refs/bench/floor", "--not", exclude);
  const ms = now() - start;
  const bytes = statSync(file).size;
  gitIn(ws, "update-ref", "-d", "refs/bench/floor");
  rmSync(file, { force: true });
  rmSync(index, { force: true });
  return { ms, bytes };
}

async function benchCheckpoints(resumeRepos) {
  const rows = [];
  if (ONLY !== "resume") rows.push(...(await benchIncremental()));
  if (ONLY !== "checkpoint") rows.push(...(await benchResume(resumeRepos)));
  return rows;
}

/** The incremental checkpoint figures on a repo with HISTORY_MB of history. */
async function benchIncremental() {
  const rows = [];
  say(`incremental checkpoints on a repo with ${HISTORY_MB} MB of history`);
  const url = historyRepo();
  const name = "bench-incr";
  const out = JSON.parse(alpine(["launch", name, "--repo", url, "--json"]));
  const ws = join(sandboxDirOf(out.id), "workspace");
  // First checkpoint of a fresh clone of a durable upstream: one small file changed in the worktree.
  writeFileSync(join(ws, "f1.txt"), "changed before the first checkpoint\n");
  let start = now();
  alpine(["checkpoint", name, "--json"]);
  const firstMs = now() - start;
  const firstBytes = storedBytes(out.id);
  const firstFloor = bundleFloor(ws, true, "refs/remotes/origin/main");
  rows.push(
    {
      name: "first checkpoint of a fresh clone, time",
      alpine_ms: { median: firstMs },
      floor_ms: { median: firstFloor.ms, note: "git bundle create of the worktree's changes only" },
      ratio: firstMs / firstFloor.ms,
      goal: null,
    },
    {
      name: "first checkpoint of a fresh clone, bytes",
      unit: "B",
      alpine_ms: { median: firstBytes },
      floor_ms: { median: firstFloor.bytes, note: "its bundle's bytes" },
      ratio: firstBytes / firstFloor.bytes,
      goal: null,
      note: "alpine's bytes include OpenCode's data (a tarball of its sessions database)",
    },
  );
  // Then one file changed and committed, checkpointed again (median of RUNS).
  const ms = [];
  const bytes = [];
  const floors = [];
  const profiles = [];
  for (let i = 0; i < RUNS; i++) {
    writeFileSync(join(ws, "f2.txt"), `change ${i} ${randomBytes(8).toString("hex")}\n`);
    gitIn(ws, "commit", "-qam", `one-file change ${i}`);
    const before = storedBytes(out.id);
    start = now();
    const wall = Date.now();
    alpine(["checkpoint", name, "--json"]);
    ms.push(now() - start);
    profiles.push(checkpointPhases(out.id, wall, Date.now()));
    bytes.push(storedBytes(out.id) - before);
    floors.push(bundleFloor(ws, false, "HEAD~1"));
  }
  rows.push(
    {
      name: `checkpoint after a one-file change (${HISTORY_MB} MB history), time`,
      alpine_ms: summary(ms),
      floor_ms: { median: median(floors.map((f) => f.ms)), note: "git bundle create of the new commit only" },
      ratio: median(ms) / median(floors.map((f) => f.ms)),
      goal: null,
      goal_absolute: "≤ 1000 ms",
      absolute_met: median(ms) <= 1000,
      profile: medianPhases(profiles),
    },
    {
      name: `checkpoint after a one-file change (${HISTORY_MB} MB history), new bytes`,
      unit: "B",
      alpine_ms: { median: median(bytes) },
      floor_ms: { median: median(floors.map((f) => f.bytes)), note: "its bundle's bytes" },
      ratio: median(bytes) / median(floors.map((f) => f.bytes)),
      goal: null,
      goal_absolute: "≤ 1 MB",
      absolute_met: median(bytes) <= 2 ** 20,
    },
  );
  teardown(name);
  return rows;
}

/** Resume against the launch floor (git clone + opencode serve healthy), interleaved. */
async function benchResume(resumeRepos) {
  const rows = [];
  for (const [label, repo] of resumeRepos) {
    say(`resume: ${label}`);
    const rname = `bench-resume-${label.replace(/\W+/g, "")}`;
    const launched = JSON.parse(alpine(["launch", rname, "--repo", repo, "--json"]));
    writeFileSync(join(sandboxDirOf(launched.id), "workspace", "resume-note.txt"), "saved\n");
    alpine(["checkpoint", rname, "--json"]);
    alpine(["teardown", rname, "--json"]);
    const resumes = [];
    const floorRuns = [];
    const profiles = [];
    // For reference, in the same rounds: a fresh launch of the same repo (its cache warm), which
    // shares the resume's fixed costs (the CLI, sandboxd, OpenCode's boot) but restores nothing.
    const launches = [];
    const launchProfiles = [];
    for (let i = 0; i < RUNS; i++) {
      floorRuns.push((await floorOnce(repo, `resume-${label}-${i}`)).ms);
      const startedAt = Date.now();
      const r = await alpineAsync(["launch", rname, "--json"]);
      if (r.code !== 0 || !r.out.includes('"resumed": true')) throw new Error(`resume failed: ${r.out}`);
      resumes.push(r.ms);
      profiles.push(phasesOf(launched.id, startedAt, Date.now()));
      alpine(["teardown", rname, "--json"]);
      const fresh = `${rname}-fresh`;
      const freshAt = Date.now();
      const f = await alpineAsync(["launch", fresh, "--repo", repo, "--json"]);
      if (f.code !== 0) throw new Error(`launch failed: ${f.out}`);
      launches.push(f.ms);
      launchProfiles.push(phasesOf(JSON.parse(f.out).id, freshAt, Date.now()));
      alpine(["teardown", fresh, "--force", "--json"]);
    }
    rows.push({
      name: `resume ${label}`,
      alpine_ms: summary(resumes),
      floor_ms: summary(floorRuns),
      ratio: median(resumes) / median(floorRuns),
      goal: 1.2,
      profile: medianPhases(profiles),
    });
    rows.push({
      name: `  (fresh launch ${label}, same rounds)`,
      alpine_ms: summary(launches),
      floor_ms: summary(floorRuns),
      ratio: median(launches) / median(floorRuns),
      profile: medianPhases(launchProfiles),
    });
  }
  return rows;
}

// ---------------------------------------------------------------------------

const results = [];
const repos = {};
try {
  say("generating repos");
  repos.tiny = makeRepo("tiny", 5);
  // A first launch warms the page cache for OpenCode's binary and sandboxd: not measured.
  await floorOnce(repos.tiny, "warmup");
  await launchOnce(repos.tiny);
  if (ONLY === "checkpoints" || ONLY === "checkpoint" || ONLY === "resume") {
    repos["5k"] = QUICK || ONLY === "checkpoint" ? null : makeRepo("5k", 5000);
    const resumeRepos = [["tiny", repos.tiny], ...(repos["5k"] ? [["5k files", repos["5k"]]] : [])];
    results.push(...(await benchCheckpoints(resumeRepos)));
  }
  if (!ONLY) results.push(...(await benchLaunch("tiny", repos.tiny)));
  if (!QUICK && !ONLY) {
    repos["5k"] = makeRepo("5k", 5000);
    results.push(...(await benchLaunch("5k files", repos["5k"])));
    const large = LARGE_FILES ? `${LARGE_FILES} files` : `${LARGE_MB} MB history`;
    say(`generating a large repo (${large})`);
    repos.large = LARGE_FILES ? makeRepo("large", LARGE_FILES) : makeRepo("large", 100, LARGE_MB);
    results.push(...(await benchLaunch(large, repos.large)));
  }
  // The pool is not wanted from here on.
  alpine(["gc", "--json"], { ALPINE_SANDBOX_WARM_POOL: "0" });
  if (!ONLY) {
    const resumeRepos = [["tiny", repos.tiny], ...(repos["5k"] ? [["5k files", repos["5k"]]] : [])];
    results.push(...(await benchCheckpoints(resumeRepos)));
  }

  // Parallel launches of one repo (its cache warm, as after any first launch).
  say(`${PARALLEL} parallel launches`);
  if (!ONLY) {
    const single = [];
    for (let i = 0; i < 3; i++) single.push((await launchOnce(repos.tiny)).ms);
    // What one launch costs in CPU (CLI, sandboxd and its git, OpenCode): on 2 cores, N launches
    // at once cannot take less than N × that / 2, whatever alpine does.
    const cpu = launchCpu(repos.tiny);
    const names = Array.from({ length: PARALLEL }, (_, i) => `par-${i}`);
    const start = now();
    const runs = await Promise.all(
      names.map((n) => alpineAsync(["launch", n, "--repo", repos.tiny, "--json"])),
    );
    const total = now() - start;
    const failures = runs.filter((r) => r.code !== 0 || !r.out.includes('"state": "running"'));
    for (const n of names) {
      try {
        teardown(n);
      } catch {}
    }
    results.push({
      name: `${PARALLEL} parallel launches (total)`,
      alpine_ms: { median: total, slowest: Math.max(...runs.map((r) => r.ms)), failures: failures.length },
      floor_ms: { median: median(single), note: "one launch, same run" },
      ratio: total / median(single),
      goal: 6,
      failures: failures.length,
      errors: failures.map((f) => f.out.slice(0, 300)),
      cpu_per_launch_ms: cpu,
      cpu_bound_ratio: (PARALLEL * cpu.total) / cpus().length / median(single),
    });
  }

  // Checkpoint and resume of a workspace holding CHANGES_MB of new files.
  say(`checkpoint/resume with ${CHANGES_MB} MB of changes`);
  if (!ONLY) {
    const name = "bench-ckpt";
    const out = JSON.parse(alpine(["launch", name, "--repo", repos.tiny, "--json"]));
    const dir = sandboxDirOf(out.id);
    const ws = join(dir, "workspace");
    mkdirSync(join(ws, "data"), { recursive: true });
    for (let i = 0; i < CHANGES_MB; i++)
      writeFileSync(join(ws, "data", `blob-${i}.bin`), randomBytes(1024 * 1024));
    // The floor works on a copy of the same data, outside alpine.
    const copy = join(work, "ckpt-floor");
    cpSync(ws, join(copy, "ws"), { recursive: true });
    cpSync(join(dir, "home", ".local", "share", "opencode"), join(copy, "data"), { recursive: true });

    let start = now();
    alpine(["checkpoint", name, "--json"]);
    const checkpointMs = now() - start;
    teardown(name);
    const resumeStartedAt = Date.now();
    start = now();
    const resumed = JSON.parse(alpine(["launch", name, "--json"]));
    const resumeMs = now() - start;
    if (!resumed.resumed) throw new Error("the sandbox was not resumed from its checkpoint");
    // sandboxd's own restore step (unpack, unbundle, checkout, verify), apart from OpenCode's start.
    const log = readFileSync(join(sandboxDirOf(out.id), "logs", "sandboxd.log"), "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    const at = (pred) => Date.parse(log.find(pred)?.ts ?? "") - resumeStartedAt;
    const resumeProfile = {
      restoring: at((l) => l.msg === "phase" && l.phase === "restoring"),
      starting_agent: at((l) => l.msg === "phase" && l.phase === "starting_agent"),
      opencode_listening: at((l) => l.msg === "opencode listening"),
      ready: at((l) => l.msg === "phase" && l.phase === "ready"),
    };
    teardown(name);

    const g = (...args) =>
      execFileSync("git", args, {
        cwd: join(copy, "ws"),
        stdio: "pipe",
        env: {
          ...env,
          GIT_AUTHOR_NAME: "b",
          GIT_AUTHOR_EMAIL: "b@x",
          GIT_COMMITTER_NAME: "b",
          GIT_COMMITTER_EMAIL: "b@x",
        },
      });
    start = now();
    g("add", "-A");
    g("commit", "-qm", "checkpoint");
    g("bundle", "create", join(copy, "ws.bundle"), "--all");
    execFileSync("tar", ["-czf", join(copy, "data.tgz"), "-C", copy, "data"]);
    const floorCheckpoint = now() - start;
    start = now();
    execFileSync("git", ["clone", "-q", join(copy, "ws.bundle"), join(copy, "restored")], { env });
    mkdirSync(join(copy, "restored-data"));
    execFileSync("tar", ["-xzf", join(copy, "data.tgz"), "-C", join(copy, "restored-data")]);
    const floorResume = now() - start;
    rmSync(copy, { recursive: true, force: true });
    results.push({
      name: `checkpoint, ${CHANGES_MB} MB of changes`,
      alpine_ms: { median: checkpointMs },
      floor_ms: { median: floorCheckpoint, note: "git add+commit+bundle create, tar" },
      ratio: checkpointMs / floorCheckpoint,
      goal: null,
    });
    results.push({
      name: `resume, ${CHANGES_MB} MB of changes`,
      alpine_ms: { median: resumeMs },
      floor_ms: { median: floorResume, note: "git clone of the bundle, untar" },
      ratio: resumeMs / floorResume,
      goal: null,
      profile: resumeProfile,
    });
    const restoreStep = resumeProfile.starting_agent - resumeProfile.restoring;
    results.push({
      name: "resume, sandboxd's restore step only",
      alpine_ms: { median: restoreStep },
      floor_ms: { median: floorResume, note: "git clone of the bundle, untar" },
      ratio: restoreStep / floorResume,
      goal: null,
    });
  }

  // Memory of one idle sandbox: sandboxd's own RSS apart from OpenCode's (Linux /proc).
  // A repo's environment: cached preparation vs no setup; first launch vs setup + launch.
  if (!ONLY || ONLY === "environment") {
    say("environment");
    const url = makeFilesRepo("envbench", {
      ".gitignore": "build/\n",
      "package-lock.json": '{ "lockfileVersion": 3 }\n',
      ".devcontainer/devcontainer.json": '{ "postCreateCommand": "sh setup.sh" }\n',
      // ≈3 s and a few MB of ignored output, like a small dependency install.
      "setup.sh": "mkdir -p build && sleep 3 && head -c 4000000 /dev/urandom > build/tool.bin\n",
    });
    let seq = 0;
    const launchEnv = async (flags) => {
      const name = `bench-env-${++seq}`;
      const r = await alpineAsync(["launch", name, "--repo", url, "--json", ...flags]);
      if (r.code !== 0) throw new Error(`launch failed: ${r.out}`);
      const st = JSON.parse(alpine(["status", name, "--json"])).runtime.environment?.setup;
      teardown(name);
      return { ms: r.ms, setup: st };
    };
    const bare = [];
    const cached = [];
    const firsts = [];
    for (let i = 0; i < RUNS; i++) {
      // Interleaved, so the three see the same load.
      bare.push((await launchEnv(["--skip-setup"])).ms);
      alpine(["env", "rm", "--all", "--json"]);
      const first = await launchEnv([]);
      if (first.setup?.state !== "ran") throw new Error(`setup did not run: ${JSON.stringify(first.setup)}`);
      firsts.push(first);
      const again = await launchEnv([]);
      if (again.setup?.state !== "restored") throw new Error(`not restored: ${JSON.stringify(again.setup)}`);
      cached.push(again.ms);
    }
    const floor = median(bare);
    results.push({
      name: "launch, prepared environment cached",
      alpine_ms: { median: median(cached) },
      floor_ms: { median: floor },
      ratio: median(cached) / floor,
      goal: 1.3,
      note: "floor: the same repo launched with --skip-setup",
    });
    const firstLessSetup = firsts.map((f) => f.ms - f.setup.ms);
    results.push({
      name: "first launch less its setup time",
      alpine_ms: { median: median(firstLessSetup) },
      floor_ms: { median: floor },
      ratio: median(firstLessSetup) / floor,
      goal: 1.2,
      note: `setup took ${Math.round(median(firsts.map((f) => f.setup.ms)))} ms (median); floor as above`,
    });
  }

  say("memory");
  if (!ONLY) {
    const rssMiB = (pid) => {
      try {
        return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) / 1024;
      } catch {
        return 0;
      }
    };
    const out = JSON.parse(alpine(["launch", "bench-memory", "--repo", repos.tiny, "--json"]));
    await new Promise((r) => setTimeout(r, 3000));
    const pid = Number(readFileSync(join(sandboxDirOf(out.id), "sandboxd.pid"), "utf8"));
    const ps = spawnSync("ps", ["-eo", "pid=,ppid=,args="], { encoding: "utf8" })
      .stdout.trim()
      .split("\n")
      .map((l) => l.trim().split(/\s+/, 3))
      .map(([p, pp, args]) => ({ pid: Number(p), ppid: Number(pp), args }));
    const descendants = (p) => ps.filter((r) => r.ppid === p).flatMap((r) => [r, ...descendants(r.pid)]);
    const oc = descendants(pid)
      .filter((r) => r.args.includes("opencode.exe") && !r.args.startsWith("bwrap"))
      .reduce((sum, r) => sum + rssMiB(r.pid), 0);
    const own = rssMiB(pid);
    results.push({
      name: "memory of an idle sandbox (MiB)",
      alpine_ms: { median: own },
      floor_ms: { median: oc },
      ratio: own / Math.max(1, oc),
      unit: "MiB",
      goal: null,
      note: "alpine column: sandboxd RSS; floor column: OpenCode RSS",
    });
    teardown("bench-memory");
  }

  // CLI latency with seeded records (no sandbox is contacted for destroyed ones).
  say("cli latency");
  if (!ONLY) {
    // A home of its own: exactly `count` records.
    const cliEnv = { ...env, ALPINE_HOME: join(work, "cli-home") };
    const timeCommand = (cmd, args, n = QUICK ? 7 : 15) => {
      const times = [];
      for (let i = 0; i < n; i++) {
        const start = now();
        spawnSync(cmd, args, { env: cliEnv, stdio: "ignore" });
        times.push(now() - start);
      }
      return median(times);
    };
    const seed = (count) => {
      const Database = require("better-sqlite3");
      alpine(["list", "--json"], { ALPINE_HOME: cliEnv.ALPINE_HOME }); // creates the schema
      const db = new Database(join(cliEnv.ALPINE_HOME, "state.db"));
      db.prepare("DELETE FROM sandboxes WHERE name LIKE 'seed-%'").run();
      const insert = db.prepare(
        "INSERT INTO sandboxes (name, id, version, state, record) VALUES (?, ?, 1, 'destroyed', ?)",
      );
      const at = new Date().toISOString();
      db.transaction(() => {
        for (let i = 0; i < count; i++) {
          const name = `seed-${String(i).padStart(4, "0")}`;
          const fields = { id: `sbx_seed${i}`, name, provider: "local", repo: "/tmp/x", ref: null };
          const rec = {
            ...newSandboxRecord({ ...fields, branch: `alpine/${name}`, image_profile: "default" }, at),
            state: "destroyed",
          };
          insert.run(name, rec.id, JSON.stringify(rec));
        }
      })();
      db.close();
    };
    for (const count of [1, 100, 1000]) {
      seed(count);
      // Interleaved, so the three see the same load (each a median of its runs).
      const runs = { node: [], list: [], status: [] };
      for (let i = 0; i < (QUICK ? 7 : 21); i++) {
        runs.node.push(timeCommand(process.execPath, ["-e", "0"], 1));
        runs.list.push(timeCommand(process.execPath, [cli, "list", "--json"], 1));
        runs.status.push(timeCommand(process.execPath, [cli, "status", "seed-0000", "--json"], 1));
      }
      const nodeFloor = median(runs.node);
      const list = median(runs.list);
      const status = median(runs.status);
      results.push({
        name: `list --json (${count} records)`,
        alpine_ms: { median: list },
        floor_ms: { median: nodeFloor },
        ratio: list / nodeFloor,
        goal: count === 1000 ? 2 : null,
      });
      results.push({
        name: `status --json (${count} records)`,
        alpine_ms: { median: status },
        floor_ms: { median: nodeFloor },
        ratio: status / nodeFloor,
        goal: null,
      });
    }
  }
} finally {
  // Nothing may outlive the bench: the pool and every sandbox go, then the git server.
  try {
    alpine(["gc", "--json"], { ALPINE_SANDBOX_WARM_POOL: "0" });
    const left = JSON.parse(alpine(["list", "--json"])).filter((s) => s.state !== "destroyed");
    for (const s of left) teardown(s.name);
  } catch (err) {
    process.stderr.write(`cleanup: ${err}\n`);
  }
  await server.close();
}

load.push(loadavg()[0]);
const machine = {
  cpus: cpus().length,
  cpu: cpus()[0]?.model,
  memory_gib: Math.round(totalmem() / 2 ** 30),
  node: process.version,
  load_average_1m: { start: load[0], end: load[1] },
};
const met = (r) => (r.goal == null ? "" : r.ratio <= r.goal && !r.failures ? "yes" : "NO");
writeFileSync(
  join(root, "bench", "results.json"),
  `${JSON.stringify(
    {
      at: new Date().toISOString(),
      quick: QUICK,
      runs: RUNS,
      duration_s: Math.round((Date.now() - benchStart) / 1000),
      machine,
      results: results.map((r) => ({ ...r, goal_met: r.goal == null ? null : met(r) === "yes" })),
    },
    null,
    2,
  )}\n`,
);
console.log(
  `machine: ${machine.cpus} cores, ${machine.memory_gib} GiB, ${machine.cpu}, node ${machine.node}, load ${load[0].toFixed(1)}→${load[1].toFixed(1)}${QUICK ? " (BENCH_QUICK)" : ""}`,
);
console.log(
  [
    "benchmark".padEnd(40),
    "alpine med".padStart(11),
    "p95".padStart(8),
    "floor med".padStart(11),
    "ratio".padStart(6),
    "goal".padStart(6),
    "met".padStart(4),
  ].join(" "),
);
for (const r of results) {
  const u = r.unit ?? "ms";
  console.log(
    [
      r.name.padEnd(40),
      `${r.alpine_ms.median.toFixed(0)} ${u}`.padStart(11),
      (r.alpine_ms.p95 !== undefined ? `${r.alpine_ms.p95.toFixed(0)}` : "").padStart(8),
      `${r.floor_ms.median.toFixed(0)} ${u}`.padStart(11),
      r.ratio.toFixed(2).padStart(6),
      (r.goal == null ? "" : `≤${r.goal}`).padStart(6),
      met(r).padStart(4),
    ].join(" "),
  );
}
rmSync(work, { recursive: true, force: true });
if (process.env.BENCH_SUSPEND) {
  const r = spawnSync(process.execPath, [join(root, "bench", "suspend.mjs")], { stdio: "inherit" });
  if (r.status !== 0) process.exitCode = r.status ?? 1;
}
