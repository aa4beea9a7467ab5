import { AlpineError } from "@alpine/core";
import { execa } from "execa";

/**
 * The Docker CLI, run through execa. alpine talks to Docker through its CLI
 * rather than the Engine API directly so DOCKER_HOST, contexts, TLS and ssh://
 * hosts work exactly as they do for the user's own `docker` commands (see
 * docs/dependencies.md). No secret ever goes on its command line.
 */
export interface DockerResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

const UNREACHABLE = /Cannot connect to the Docker daemon|error during connect|Is the docker daemon running/i;

export async function docker(
  args: string[],
  opts: { input?: string; reject?: boolean; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<DockerResult> {
  let result: DockerResult;
  try {
    const r = await execa("docker", args, {
      input: opts.input,
      reject: false,
      timeout: opts.timeoutMs ?? 60_000,
      env: opts.env,
      stripFinalNewline: true,
    });
    if (r.failed && r.exitCode === undefined) throw r;
    result = { stdout: String(r.stdout), stderr: String(r.stderr), exitCode: r.exitCode ?? 1 };
  } catch (err) {
    const e = err as { code?: string; timedOut?: boolean; message?: string };
    if (e.code === "ENOENT")
      throw new AlpineError(
        "provider_unavailable",
        "the docker CLI is not installed (apt-get install docker.io)",
        {
          provider: "docker",
        },
      );
    if (e.timedOut)
      throw new AlpineError("provider_unavailable", `docker ${args[0]} did not answer in time`, {
        provider: "docker",
      });
    throw new AlpineError("provider_unavailable", `docker ${args[0]} failed: ${e.message ?? String(err)}`, {
      provider: "docker",
    });
  }
  if (UNREACHABLE.test(result.stderr)) {
    throw new AlpineError(
      "provider_unavailable",
      `the Docker daemon is not reachable${process.env.DOCKER_HOST ? ` at DOCKER_HOST=${process.env.DOCKER_HOST}` : ""}`,
      { provider: "docker", docker: firstLine(result.stderr) },
    );
  }
  if (result.exitCode !== 0 && opts.reject !== false) {
    throw new AlpineError("provider_unavailable", `docker ${args[0]} failed: ${firstLine(result.stderr)}`, {
      provider: "docker",
    });
  }
  return result;
}

export function firstLine(text: string): string {
  return text.trim().split("\n")[0]?.slice(0, 500) ?? "";
}

/** Whether `docker <kind> inspect` finds the object. */
export async function dockerObjectExists(
  kind: "container" | "volume" | "image",
  name: string,
): Promise<boolean> {
  const r = await docker([kind, "inspect", "--format", "ok", name], { reject: false });
  return r.exitCode === 0;
}
