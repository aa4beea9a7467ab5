import { AlpineError } from "@alpine/core";
import { docker } from "../providers/docker-cli.ts";
import type { DevDocker } from "./dev-runtime.ts";
import type { WranglerConfig } from "./wrangler-config.ts";

/**
 * Container class → sandbox image, for `cloud dev --containers docker`: each class serves the
 * image profile CONTAINER_PROFILES maps to its binding, and that profile's image is the one
 * `alpine image build` tags (`sandbox.image_profiles`). A profile without an image of its own
 * (`large`, by default) gets the `default` profile's: in wrangler.jsonc every class builds the
 * same Dockerfile, and only the instance type differs.
 */
export function containerImages(
  config: WranglerConfig,
  imageProfiles: Record<string, string>,
): Record<string, string> {
  const classOf = new Map((config.durable_objects?.bindings ?? []).map((b) => [b.name, b.class_name]));
  let profiles: Record<string, string>;
  try {
    profiles = JSON.parse(config.vars?.CONTAINER_PROFILES ?? '{"default":"SANDBOX_CONTAINER"}');
  } catch {
    throw new AlpineError("config_invalid", "vars.CONTAINER_PROFILES in wrangler.jsonc is not JSON");
  }
  const images: Record<string, string> = {};
  for (const [profile, binding] of Object.entries(profiles)) {
    const cls = classOf.get(binding);
    const image = imageProfiles[profile] ?? imageProfiles.default;
    if (cls && image) images[cls] = image;
  }
  return images;
}

/** workerd talks to the Docker Engine API on a unix socket: DOCKER_HOST's, or the default one. */
export function dockerSocket(env: NodeJS.ProcessEnv = process.env): string {
  const host = env.DOCKER_HOST;
  if (!host) return "unix:///var/run/docker.sock";
  if (host.startsWith("unix://")) return host;
  throw new AlpineError(
    "provider_unavailable",
    `cloud dev --containers docker needs a Docker daemon on a unix socket; DOCKER_HOST is ${host}`,
    { docker_host: host },
  );
}

/**
 * Checks, before workerd starts, what its local container support needs from the daemon, so a
 * missing piece is one clear error here rather than a failed launch later:
 * - every class's sandbox image exists (workerd does not build or pull it: `alpine image build`);
 * - the daemon has its default `bridge` network: workerd puts a networking sidecar on it,
 *   publishes the sidecar's ingress port on the host and reaches every container port through
 *   it (a daemon run with `--bridge=none` cannot host workerd's containers).
 */
export async function devDocker(
  config: WranglerConfig,
  imageProfiles: Record<string, string>,
): Promise<DevDocker> {
  const socketPath = dockerSocket();
  const env = { ...process.env, DOCKER_HOST: socketPath };
  const images = containerImages(config, imageProfiles);
  if (Object.keys(images).length === 0) {
    throw new AlpineError(
      "image_profile_unknown",
      "no container class has a sandbox image (sandbox.image_profiles)",
    );
  }
  for (const image of new Set(Object.values(images))) {
    const r = await docker(["image", "inspect", "--format", "{{.Id}}", image], { env, reject: false });
    if (r.exitCode !== 0) {
      throw new AlpineError(
        "image_not_found",
        `the sandbox image ${image} is not on this Docker daemon; run \`alpine image build\``,
        {
          image,
        },
      );
    }
  }
  const bridge = await docker(
    ["network", "inspect", "--format", "{{range .IPAM.Config}}{{.Subnet}} {{end}}", "bridge"],
    {
      env,
      reject: false,
    },
  );
  if (bridge.exitCode !== 0 || bridge.stdout.trim() === "") {
    throw new AlpineError(
      "provider_unavailable",
      "this Docker daemon has no default bridge network (started with --bridge=none?): workerd's containers need it for their networking sidecar",
      { docker_host: socketPath },
    );
  }
  return { socketPath, images, egressImage: process.env.MINIFLARE_CONTAINER_EGRESS_IMAGE };
}

/**
 * The containers (and their networking sidecars) workerd made for this Worker: it names them
 * `workerd-<worker>-<class>-<id>` (`-proxy` for the sidecar). Listed for the tests' and the
 * user's `docker ps`, and removed when `cloud dev` stops, since a killed workerd cannot.
 */
export async function devContainers(socketPath: string, workerName: string, all = true): Promise<string[]> {
  const r = await docker(
    ["ps", ...(all ? ["-a"] : []), "--filter", `name=^workerd-${workerName}-`, "--format", "{{.Names}}"],
    { env: { ...process.env, DOCKER_HOST: socketPath }, reject: false },
  );
  return r.exitCode === 0 ? r.stdout.split("\n").filter(Boolean) : [];
}

export async function removeDevContainers(socketPath: string, workerName: string): Promise<void> {
  const names = await devContainers(socketPath, workerName);
  if (names.length === 0) return;
  await docker(["rm", "-f", ...names], { env: { ...process.env, DOCKER_HOST: socketPath }, reject: false });
}
