import { spawn } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { AlpineError } from "@alpine/core";
import type { Context } from "../context.ts";
import { printJson, stderrProgress } from "../output.ts";
import { docker } from "../providers/docker-cli.ts";
import { imageDir, sandboxdEntry } from "../runtime-paths.ts";

/** Where Debian's update-ca-certificates takes locally added CAs from. */
const HOST_CA_DIR = "/usr/local/share/ca-certificates";

function hostCaCerts(dir = HOST_CA_DIR): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...hostCaCerts(p));
    else if (name.endsWith(".crt")) out.push(p);
  }
  return out;
}

/** A build context with only what the Dockerfile copies: no repo, no node_modules, no secrets. */
function assembleContext(caCerts: string[]): string {
  const dockerfile = join(imageDir(), "Dockerfile");
  if (!existsSync(dockerfile))
    throw new AlpineError("provider_unavailable", `the sandbox image's Dockerfile is missing: ${dockerfile}`);
  const sandboxdDist = join(sandboxdEntry(), "..");
  if (!existsSync(sandboxdEntry()))
    throw new AlpineError("provider_unavailable", "sandboxd is not built; run `npm run build`");
  const dir = mkdtempSync(join(tmpdir(), "alpine-image-"));
  copyFileSync(dockerfile, join(dir, "Dockerfile"));
  mkdirSync(join(dir, "sandboxd"));
  for (const f of readdirSync(sandboxdDist).filter((f) => f.endsWith(".js")))
    copyFileSync(join(sandboxdDist, f), join(dir, "sandboxd", f));
  mkdirSync(join(dir, "certs"));
  caCerts.forEach((cert, i) => {
    if (!existsSync(cert)) throw new AlpineError("usage_invalid", `--ca-cert: no such file: ${cert}`);
    copyFileSync(cert, join(dir, "certs", `${i}-${basename(cert).replace(/\.(pem|crt)$/, "")}.crt`));
  });
  return dir;
}

export interface ImageBuildOptions {
  profile?: string;
  baseImage: string;
  network: string;
  caCert?: string[];
  hostCa: boolean;
}

export async function imageBuildCommand(ctx: Context, opts: ImageBuildOptions): Promise<void> {
  const started = Date.now();
  const progress = stderrProgress(ctx.globals);
  const profile = opts.profile ?? ctx.config.sandbox.image_profile;
  const image = ctx.config.sandbox.image_profiles[profile];
  if (!image) {
    throw new AlpineError("image_profile_unknown", `image profile '${profile}' is not configured`, {
      image_profile: profile,
      known: Object.keys(ctx.config.sandbox.image_profiles),
    });
  }
  await docker(["version", "--format", "{{.Server.Version}}"]);
  const caCerts = [...(opts.hostCa ? hostCaCerts() : []), ...(opts.caCert ?? [])];
  progress.step(
    `building ${image} (profile ${profile}) from ${opts.baseImage}` +
      (caCerts.length ? `, trusting ${caCerts.length} extra CA certificate(s)` : ""),
  );
  const context = assembleContext(caCerts);
  const tail: string[] = [];
  try {
    const args = [
      "build",
      "--network",
      opts.network,
      "--build-arg",
      `BASE_IMAGE=${opts.baseImage}`,
      "--label",
      `alpine.image_profile=${profile}`,
      "--tag",
      image,
      context,
    ];
    // The classic builder needs no buildx plugin and works against old daemons; BuildKit when asked for.
    const env = { ...process.env, DOCKER_BUILDKIT: process.env.DOCKER_BUILDKIT ?? "0" };
    const echo = Boolean(process.stderr.isTTY) || Boolean(ctx.globals.verbose);
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn("docker", args, { env, stdio: ["ignore", "pipe", "pipe"] });
      const onData = (d: Buffer) => {
        const text = d.toString();
        for (const line of text.split("\n")) {
          if (!line.trim()) continue;
          tail.push(line);
          if (tail.length > 40) tail.shift();
          if (echo) process.stderr.write(`  ${line}\n`);
          else if (/^Step \d+\/\d+ :/.test(line)) progress.step(line.slice(0, 100));
        }
      };
      child.stdout.on("data", onData);
      child.stderr.on("data", onData);
      child.once("error", (err) =>
        reject(
          (err as NodeJS.ErrnoException).code === "ENOENT"
            ? new AlpineError(
                "provider_unavailable",
                "the docker CLI is not installed (apt-get install docker.io)",
              )
            : err,
        ),
      );
      child.once("exit", resolve);
    });
    if (code !== 0) {
      throw new AlpineError("provider_unavailable", `docker build of ${image} failed (exit ${code})`, {
        image,
        base_image: opts.baseImage,
        output_tail: tail.slice(-15),
      });
    }
  } finally {
    rmSync(context, { recursive: true, force: true });
  }
  const id = (await docker(["image", "inspect", "--format", "{{.Id}}", image])).stdout.trim();
  const result = {
    profile,
    image,
    image_id: id,
    base_image: opts.baseImage,
    ca_certificates: caCerts.length,
    duration_ms: Date.now() - started,
  };
  if (ctx.globals.json) return printJson(result);
  process.stdout.write(`built ${image} (${id.slice(0, 19)}) for profile ${profile}\n`);
}
