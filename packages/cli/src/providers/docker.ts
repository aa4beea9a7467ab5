import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type {
  Provider,
  ProviderCapabilities,
  RuntimeEndpoint,
  RuntimeHandle,
  RuntimeSpec,
} from "@alpine/core";
import {
  AlpineError,
  declaredCapabilities,
  idleSuspendConfig,
  imageSandboxdConfig,
  requireHandle,
  SANDBOX_IMAGE,
  sandboxdNotify,
} from "@alpine/core";
import { passThroughEnv } from "@alpine/core/sandbox-env";
import type { Context } from "../context.ts";
import { sandboxDir } from "../paths.ts";
import { docker, dockerObjectExists, firstLine } from "./docker-cli.ts";
import { sandboxSeccompProfile } from "./docker-seccomp.ts";
import { awaitListeningLine } from "./sandboxd-start.ts";
import { ensureToken, readToken, tokenIfAny } from "./token-file.ts";

/** Where the image keeps everything of a sandbox; the named volume is mounted here. */
const SANDBOX_ROOT = SANDBOX_IMAGE.root;
/** The named volume holding every prepared environment of this Docker host. */
export const ENVIRONMENTS_VOLUME = "alpine-environments";
/** sandboxd's port inside the container when it has its own network. */
const CONTAINER_PORT = 7000;
/** The image pulls nothing at start, but a cold Docker host can take a while to create the first container. */
const START_TIMEOUT_MS = 60_000;

interface DockerHandle {
  /** Container and volume are both named after the sandbox id: `alpine-<id>`. */
  container: string;
  volume: string;
  image: string;
  network: "bridge" | "host";
  /**
   * How sandboxd confines OpenCode inside the container, decided when the
   * container is created: `bubblewrap` when the image says it has it (and the
   * container got the seccomp profile that lets it work); absent on handles
   * made before this existed, which mean `none`.
   */
  isolation?: "bubblewrap" | "none";
  /** Host dir with the sandbox token (mode 0600), as for the local provider. */
  dir: string;
  url?: string;
  port?: number;
}

const asDocker = (handle: RuntimeHandle) =>
  requireHandle<DockerHandle>("docker", handle, ["container", "volume", "dir"]);

const resourceName = (sandboxId: string) => `alpine-${sandboxId}`;

/** What the image's `alpine.isolation` label promises (image/Dockerfile); an image without it: none. */
async function imageIsolation(image: string): Promise<"bubblewrap" | "none"> {
  const r = await docker(
    ["image", "inspect", "--format", '{{ index .Config.Labels "alpine.isolation" }}', image],
    {
      reject: false,
    },
  );
  return r.exitCode === 0 && r.stdout.trim() === "bubblewrap" ? "bubblewrap" : "none";
}

/**
 * One container per sandbox from the image profile's image, running sandboxd
 * as a non-root user. The workspace, OpenCode's data, checkpoints and logs live
 * in a named volume, so a stopped, killed or even removed container loses
 * nothing: the next start mounts the same volume. sandboxd's port is published
 * on 127.0.0.1 only (or, with docker.network: host, sandboxd binds 127.0.0.1
 * in the host's network). Config and secrets reach sandboxd on its stdin
 * through `docker start --attach`, never through `-e`, argv or the container's
 * stored config.
 */
export class DockerProvider implements Provider {
  readonly kind = "docker" as const;

  constructor(private readonly ctx: Context) {}

  async capabilities(): Promise<ProviderCapabilities> {
    await docker(["version", "--format", "{{.Server.Version}}"]);
    return declaredCapabilities("docker");
  }

  async preflight(input: { image: string; image_profile: string }): Promise<void> {
    await this.requireImage(input.image, input.image_profile);
  }

  private async requireImage(image: string, profile?: string): Promise<void> {
    if (await dockerObjectExists("image", image)) return;
    throw new AlpineError("image_not_found", `the sandbox image '${image}' is not on the Docker host`, {
      image,
      ...(profile ? { image_profile: profile } : {}),
    });
  }

  async create(spec: RuntimeSpec): Promise<RuntimeHandle> {
    await this.requireImage(spec.image);
    const name = resourceName(spec.sandbox_id);
    const network = this.ctx.config.docker.network;
    const dir = sandboxDir(this.ctx.home, spec.sandbox_id);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    ensureToken(dir);
    const labels = ["--label", `alpine.sandbox_id=${spec.sandbox_id}`, "--label", `alpine.name=${spec.name}`];
    if (!(await dockerObjectExists("volume", name))) {
      await docker(["volume", "create", ...labels, name]);
    }
    if (!(await dockerObjectExists("volume", ENVIRONMENTS_VOLUME))) {
      await docker(["volume", "create", "--label", "alpine.environments=1", ENVIRONMENTS_VOLUME], {
        reject: false,
      });
    }
    const handle: DockerHandle = {
      container: name,
      volume: name,
      image: spec.image,
      network,
      dir,
      isolation: await imageIsolation(spec.image),
    };
    if (!(await dockerObjectExists("container", name))) await this.createContainer(handle, labels);
    return { ...handle };
  }

  private async createContainer(h: DockerHandle, labels: string[]): Promise<void> {
    const { cpus, memory } = this.ctx.config.docker;
    const args = [
      "create",
      // stdin stays open until sandboxd has read its config, then closes (one attach).
      "--interactive",
      "--name",
      h.container,
      ...labels,
      // A small init reaps OpenCode's children; sandboxd handles SIGTERM itself.
      "--init",
      "--volume",
      `${h.volume}:${SANDBOX_ROOT}`,
      // Prepared environments, shared by the sandboxes of this Docker host (docs/environments.md).
      "--volume",
      `${ENVIRONMENTS_VOLUME}:${SANDBOX_IMAGE.environments}`,
      "--security-opt",
      "no-new-privileges",
      "--cap-drop",
      "ALL",
    ];
    if (h.network === "host") args.push("--network", "host");
    else args.push("--publish", `127.0.0.1::${CONTAINER_PORT}`);
    if (cpus !== undefined) args.push("--cpus", String(cpus));
    if (memory !== undefined) args.push("--memory", memory);
    if (h.isolation !== "bubblewrap") {
      args.push(h.image);
      await docker(args);
      return;
    }
    // The docker CLI reads the profile from a file and sends its text with the create call.
    const profileDir = mkdtempSync(join(h.dir, ".seccomp-"));
    try {
      const profile = join(profileDir, "profile.json");
      writeFileSync(profile, sandboxSeccompProfile(), { mode: 0o600 });
      // bubblewrap mounts a fresh /proc for the agent's pid namespace, which the kernel refuses
      // while Docker masks parts of the container's /proc (kcore, sysrq-trigger, …): unmasked, they
      // stay closed to the container's user (uid 1000, no capability, no-new-privileges).
      args.push("--security-opt", `seccomp=${profile}`, "--security-opt", "systempaths=unconfined", h.image);
      await docker(args);
    } finally {
      rmSync(profileDir, { recursive: true, force: true });
    }
  }

  async start(handle: RuntimeHandle, spec: RuntimeSpec): Promise<RuntimeHandle> {
    const h = asDocker(handle);
    // Removed behind alpine's back: the volume (and so the work) is still there.
    if (!(await dockerObjectExists("container", h.container))) {
      // The image may have changed since the handle was made: the new container follows it.
      h.isolation = await imageIsolation(h.image);
      await this.createContainer(h, [
        "--label",
        `alpine.sandbox_id=${spec.sandbox_id}`,
        "--label",
        `alpine.name=${spec.name}`,
      ]);
    }
    if (await this.isRunning(h)) await this.stop(handle);
    const env = passThroughEnv(process.env);
    const config = imageSandboxdConfig({
      sandbox: spec,
      isolation: h.isolation ?? "none",
      token: readToken(h.dir),
      // With its own network the container is the boundary and the token guards the port;
      // in the host's network sandboxd must stay on loopback.
      listen:
        h.network === "host" ? { host: "127.0.0.1", port: 0 } : { host: "0.0.0.0", port: CONTAINER_PORT },
      auth: spec.auth,
      preparedDir: SANDBOX_IMAGE.environments,
      secrets: spec.secrets,
      // Notifications: sent from the container (no desktop there); the ledger stays in its volume.
      extra: { env, ...dockerNotify(spec.config), idle_suspend: idleSuspendConfig(spec.config) },
    });
    // `docker start --attach --interactive` hands our stdin to sandboxd; once it has printed
    // its first line we drop the attachment with SIGKILL, which docker cannot forward: the container runs on.
    const attach = spawn("docker", ["start", "--attach", "--interactive", h.container], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stderr = "";
    attach.stderr.on("data", (d) => {
      stderr += d;
    });
    const exited = new Promise<number | null>((resolve) => attach.once("exit", (code) => resolve(code)));
    // A docker binary that cannot be run was already reported by create(); should it vanish
    // since, awaitListeningLine reports the start as failed (its exit, or its timeout).
    attach.once("error", () => {});
    attach.stdin.end(JSON.stringify(config));
    let listening: { port: number; pid: number };
    try {
      listening = await awaitListeningLine(attach.stdout, {
        timeoutMs: START_TIMEOUT_MS,
        where: `container ${h.container} (alpine logs ${spec.name})`,
        onTimeout: () => attach.kill("SIGKILL"),
        exited,
      });
    } catch (err) {
      attach.kill("SIGKILL");
      // Docker's own complaint (exit 125: the container could not start) says more than our exit code.
      const said = firstLine(stderr);
      if (said && err instanceof AlpineError)
        throw new AlpineError(err.reason, `${err.message}: ${said}`, { ...err.details, docker: said });
      throw err;
    }
    attach.stdout.destroy();
    attach.kill("SIGKILL");
    const url =
      h.network === "host" ? `http://127.0.0.1:${listening.port}` : await this.publishedUrl(h.container);
    return { ...h, url, port: Number(new URL(url).port) } satisfies DockerHandle;
  }

  /** The 127.0.0.1 host port Docker picked for sandboxd's port. */
  private async publishedUrl(container: string): Promise<string> {
    const r = await docker(["port", container, `${CONTAINER_PORT}/tcp`]);
    const line = r.stdout.split("\n").find((l) => l.startsWith("127.0.0.1:"));
    if (!line)
      throw new AlpineError("agent_start_failed", `docker published no 127.0.0.1 port for ${container}`);
    return `http://${line.trim()}`;
  }

  private async isRunning(h: DockerHandle): Promise<boolean> {
    const r = await docker(["container", "inspect", "--format", "{{.State.Running}}", h.container], {
      reject: false,
    });
    return r.exitCode === 0 && r.stdout.trim() === "true";
  }

  async endpoint(handle: RuntimeHandle): Promise<RuntimeEndpoint | null> {
    const h = asDocker(handle);
    if (!h.url) return null;
    const token = tokenIfAny(h.dir);
    if (token === null) return null;
    let running: boolean;
    try {
      running = await this.isRunning(h);
    } catch {
      return null; // daemon unreachable: the sandbox is unavailable, not an error of this command
    }
    if (!running) return null;
    return { url: h.url, token };
  }

  async stop(handle: RuntimeHandle): Promise<void> {
    const h = asDocker(handle);
    // sandboxd stops OpenCode on SIGTERM; Docker kills whatever is left after the grace period.
    await docker(["stop", "--time", "10", h.container], { reject: false });
  }

  /**
   * Runs one command of the sandbox image over the sandbox's volume, read-only and offline, with the
   * container itself stopped or gone. Works for remote Docker hosts too (no host path involved).
   */
  private inVolume(h: DockerHandle, command: string, args: string[]) {
    return docker(
      [
        "run",
        "--rm",
        "--network",
        "none",
        "--volume",
        `${h.volume}:${SANDBOX_ROOT}:ro`,
        "--entrypoint",
        command,
        h.image,
        ...args,
      ],
      { reject: false },
    );
  }

  async hasWorkspace(handle: RuntimeHandle): Promise<boolean> {
    const h = asDocker(handle);
    if (!(await dockerObjectExists("volume", h.volume))) return false;
    // sandboxd writes .git/alpine.json once a clone or restore has finished (as for local sandboxes):
    // a half-restored workspace is restored again, not taken for the real one.
    return (
      (await this.inVolume(h, "test", ["-e", `${SANDBOX_ROOT}/workspace/.git/alpine.json`])).exitCode === 0
    );
  }

  async destroy(handle: RuntimeHandle): Promise<void> {
    const h = asDocker(handle);
    await docker(["rm", "--force", "--volumes", h.container], { reject: false });
    const v = await docker(["volume", "rm", "--force", h.volume], { reject: false });
    if (v.exitCode !== 0 && (await dockerObjectExists("volume", h.volume))) {
      throw new AlpineError(
        "provider_unavailable",
        `could not remove volume ${h.volume}: ${firstLine(v.stderr)}`,
        {
          provider: "docker",
        },
      );
    }
    rmSync(h.dir, { recursive: true, force: true });
  }

  async logs(handle: RuntimeHandle, opts: { tail?: number } = {}): Promise<string[]> {
    const h = asDocker(handle);
    const tail = String(opts.tail ?? 200);
    const file = `${SANDBOX_ROOT}/logs/sandboxd.log`;
    // A daemon that does not answer `inspect` may still run the read from the volume.
    const r = (await this.isRunning(h).catch(() => false))
      ? await docker(["exec", h.container, "tail", "-n", tail, file], { reject: false })
      : await this.inVolume(h, "tail", ["-n", tail, file]);
    return r.exitCode === 0 ? r.stdout.split("\n").filter(Boolean) : [];
  }
}

function dockerNotify(config: RuntimeSpec["config"]) {
  const notify = sandboxdNotify({ ...config.notify, desktop: false }, process.env);
  return notify ? { notify } : {};
}
