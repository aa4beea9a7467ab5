import type { Command } from "commander";
import { action } from "../run.ts";

export function register(program: Command): void {
  const image = program
    .command("image")
    .summary("build the sandbox image for the docker provider")
    .description(
      "Manage the sandbox image (sandboxd + OpenCode) that docker sandboxes and Cloudflare Containers run.",
    );
  const build = image
    .command("build")
    .summary("build and tag the sandbox image of an image profile")
    .description(
      "Build image/Dockerfile with the current sandboxd and tag it as the image of the profile (sandbox.image_profiles). Node and OpenCode are fetched from the npm registry at the project's pinned versions and checked against their integrity. CA certificates this host added (/usr/local/share/ca-certificates) are trusted inside the build and the sandbox, so a TLS-inspecting proxy keeps working. Progress goes to stderr.",
    )
    .option("--profile <profile>", "image profile to build (default: sandbox.image_profile)")
    .option(
      "--base-image <image>",
      "Debian (glibc) base image, e.g. one imported offline with debootstrap + docker import",
      "debian:bookworm-slim",
    )
    .option("--network <mode>", "network of the build's RUN steps", "host")
    .option("--ca-cert <file...>", "more CA certificates (PEM) to trust")
    .option("--no-host-ca", "do not add the CA certificates this host added")
    .addHelpText(
      "after",
      `
Examples:
  alpine image build
  alpine image build --profile big --json
  # offline: a base made with debootstrap, then imported
  debootstrap --variant=minbase bookworm /tmp/base http://deb.debian.org/debian
  tar -C /tmp/base -c . | docker import - debian-local:bookworm
  alpine image build --base-image debian-local:bookworm`,
    );
  build.action(
    action(build, async (ctx, opts: ImageBuildOptions) => {
      const { imageBuildCommand } = await import("./image-run.ts");
      await imageBuildCommand(ctx, opts);
    }),
  );
}

export interface ImageBuildOptions {
  profile?: string;
  baseImage: string;
  network: string;
  caCert?: string[];
  hostCa: boolean;
}
