import { execFileSync, spawn } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { CLI } from "../helpers/cli.ts";

/**
 * Brings up what the docker-provider tests need, once per `vitest run`:
 * a Docker daemon (the user's, via DOCKER_HOST or the default socket; else, as
 * root, a private `dockerd --bridge=none --iptables=false` on its own socket),
 * a Debian base image made offline with debootstrap + docker import, and the
 * sandbox image built from the current sources by `alpine image build`.
 *
 * The private daemon keeps its data root between runs, so the base image and
 * the build's layers are a cache on machines that keep their disk.
 *
 * Without Docker the docker tests are skipped with the reason — except in CI
 * (CI=true), where that is a failure: CI must prove the docker provider.
 */
const PRIVATE_ROOT = "/run/alpine-test-docker";
const PRIVATE_SOCKET = `unix://${PRIVATE_ROOT}/docker.sock`;
const DATA_ROOT = "/var/lib/alpine-test-docker";
const BASE_IMAGE = "alpine-test-base:bookworm";
export const E2E_IMAGE = "alpine-e2e-sandbox:test";

export interface DockerTestEnv {
  /** DOCKER_HOST for the tests' alpine processes; null when docker tests cannot run. */
  host: string | null;
  image: string;
  skipReason: string | null;
}

declare module "vitest" {
  export interface ProvidedContext {
    docker: DockerTestEnv;
  }
}

function dockerAnswers(host: string | undefined): boolean {
  try {
    execFileSync("docker", ["version", "--format", "{{.Server.Version}}"], {
      env: { ...process.env, ...(host ? { DOCKER_HOST: host } : {}) },
      stdio: "pipe",
      timeout: 10_000,
    });
    return true;
  } catch {
    return false;
  }
}

const which = (cmd: string) => {
  try {
    execFileSync("sh", ["-c", `command -v ${cmd}`], { stdio: "pipe" });
    return true;
  } catch {
    return false;
  }
};

/** The Debian mirror apt uses here, so debootstrap reaches what this machine reaches. */
function debianMirror(): string {
  for (const f of ["/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"]) {
    if (!existsSync(f)) continue;
    const text = readFileSync(f, "utf8");
    const m =
      /^URIs:\s*(\S+\/debian)\s*$/m.exec(text) ?? /^deb\s+(?:\[[^\]]*\]\s+)?(\S+\/debian)\s/m.exec(text);
    if (m?.[1]) return m[1];
  }
  return "http://deb.debian.org/debian";
}

async function startPrivateDaemon(): Promise<void> {
  mkdirSync(PRIVATE_ROOT, { recursive: true });
  const log = join(PRIVATE_ROOT, "dockerd.log");
  const child = spawn(
    "sh",
    [
      "-c",
      `exec dockerd --bridge=none --iptables=false --ip6tables=false --host ${PRIVATE_SOCKET} --data-root ${DATA_ROOT} --exec-root ${PRIVATE_ROOT}/exec --pidfile ${PRIVATE_ROOT}/docker.pid >${log} 2>&1`,
    ],
    { detached: true, stdio: "ignore" },
  );
  child.unref();
  const deadline = Date.now() + 60_000;
  while (!dockerAnswers(PRIVATE_SOCKET)) {
    if (Date.now() > deadline || child.exitCode !== null)
      throw new Error(
        `dockerd did not start; see ${log}:\n${existsSync(log) ? readFileSync(log, "utf8").slice(-2000) : ""}`,
      );
    await new Promise((r) => setTimeout(r, 300));
  }
}

function ensureBaseImage(host: string): void {
  const env = { ...process.env, DOCKER_HOST: host };
  try {
    execFileSync("docker", ["image", "inspect", BASE_IMAGE], { env, stdio: "pipe" });
    return;
  } catch {
    // build it below
  }
  if (!which("debootstrap"))
    throw new Error("debootstrap is not installed (scripts/install-deps.sh --with-test-deps)");
  const dir = mkdtempSync(join(tmpdir(), "alpine-base-"));
  try {
    process.stderr.write(`[docker tests] debootstrap bookworm (minbase) into ${dir}\n`);
    execFileSync("debootstrap", ["--variant=minbase", "bookworm", dir, debianMirror()], { stdio: "pipe" });
    execFileSync("sh", ["-c", `tar -C "$1" -c . | docker import - "$2"`, "sh", dir, BASE_IMAGE], {
      env,
      stdio: "pipe",
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function buildSandboxImage(host: string): void {
  process.stderr.write(`[docker tests] alpine image build → ${E2E_IMAGE}\n`);
  const home = mkdtempSync(join(tmpdir(), "alpine-image-home-"));
  try {
    execFileSync(process.execPath, [CLI, "image", "build", "--base-image", BASE_IMAGE, "--json"], {
      env: {
        ...process.env,
        DOCKER_HOST: host,
        ALPINE_HOME: home,
        ALPINE_CONFIG: "/dev/null",
        ALPINE_SANDBOX_IMAGE_PROFILES: JSON.stringify({ default: E2E_IMAGE }),
      },
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 15 * 60_000,
    });
  } catch (err) {
    const e = err as { stdout?: Buffer; stderr?: Buffer };
    throw new Error(`alpine image build failed:\n${e.stdout ?? ""}\n${e.stderr ?? ""}`);
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

/** File filters given to `vitest run` (none: the whole suite). */
function fileFilters(): string[] {
  const i = process.argv.findIndex((a) => a === "run" || a.endsWith("vitest.mjs") || a.endsWith("/vitest"));
  return process.argv.slice(i + 1).filter((a) => a !== "run" && !a.startsWith("-"));
}

export default async function setup(project: TestProject) {
  // A run of chosen files that holds no docker test need not start a daemon or build an image.
  const filters = fileFilters();
  if (filters.length > 0 && !filters.some((f) => f.includes("docker"))) {
    project.provide("docker", { host: null, image: E2E_IMAGE, skipReason: "no docker test selected" });
    return;
  }
  const unavailable = (reason: string) => {
    if (process.env.CI === "true") throw new Error(`docker tests cannot run in CI: ${reason}`);
    process.stderr.write(`[docker tests] skipped: ${reason}\n`);
    project.provide("docker", { host: null, image: E2E_IMAGE, skipReason: reason });
  };
  if (process.env.ALPINE_TEST_DOCKER === "0" && process.env.CI !== "true") {
    return unavailable("ALPINE_TEST_DOCKER=0");
  }
  if (!which("docker")) return unavailable("the docker CLI is not installed");

  let host: string | null = null;
  if (process.env.DOCKER_HOST && dockerAnswers(process.env.DOCKER_HOST)) host = process.env.DOCKER_HOST;
  else if (dockerAnswers(PRIVATE_SOCKET))
    host = PRIVATE_SOCKET; // left by an earlier or a concurrent run: share it
  else if (!process.env.DOCKER_HOST && dockerAnswers(undefined)) host = "unix:///var/run/docker.sock";
  else if (process.getuid?.() === 0 && which("dockerd")) {
    await startPrivateDaemon();
    host = PRIVATE_SOCKET;
  } else {
    return unavailable("no Docker daemon answers and this user cannot start one (needs root and dockerd)");
  }
  const leave = host === PRIVATE_SOCKET ? joinPrivateDaemon() : async () => {};
  ensureBaseImage(host);
  buildSandboxImage(host);
  project.provide("docker", { host, image: E2E_IMAGE, skipReason: null });
  return leave;
}

const USERS = join(PRIVATE_ROOT, "users");

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/**
 * Several test runs (checkouts) on one machine share the private daemon. Each
 * registers itself; the last one to leave stops the daemon, so no run pulls it
 * away from another and none is left running after the last.
 */
function joinPrivateDaemon(): () => Promise<void> {
  mkdirSync(USERS, { recursive: true });
  const me = join(USERS, String(process.pid));
  writeFileSync(me, "");
  return async () => {
    rmSync(me, { force: true });
    const others = readdirSync(USERS).filter((f) => alive(Number(f)));
    if (others.length > 0) return;
    const pidFile = join(PRIVATE_ROOT, "docker.pid");
    const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, "utf8").trim()) : 0;
    // A stale pid file may name a reused pid: only a dockerd is stopped.
    const comm =
      pid && existsSync(`/proc/${pid}/comm`) ? readFileSync(`/proc/${pid}/comm`, "utf8").trim() : "";
    if (comm !== "dockerd") return;
    process.kill(pid, "SIGTERM");
    const until = Date.now() + 20_000;
    while (Date.now() < until && alive(pid)) await new Promise((r) => setTimeout(r, 200));
  };
}
