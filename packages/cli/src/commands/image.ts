import { defineCommand, defineGroup } from "./define.ts";

export default defineGroup({
  name: "image",
  summary: "build the sandbox image for the docker provider",
  description:
    "Manage the sandbox image (sandboxd + OpenCode) that docker sandboxes and Cloudflare Containers run.",
  commands: [
    defineCommand({
      name: "build",
      summary: "build and tag the sandbox image of an image profile",
      description:
        "Build image/Dockerfile with the current sandboxd and tag it as the image of the profile (sandbox.image_profiles). Node and OpenCode are fetched from the npm registry at the project's pinned versions and checked against their integrity. CA certificates this host added (/usr/local/share/ca-certificates) are trusted inside the build and the sandbox, so a TLS-inspecting proxy keeps working. Progress goes to stderr.",
      flags: {
        profile: {
          type: "string",
          value: "profile",
          description: "image profile to build (default: sandbox.image_profile)",
        },
        baseImage: {
          type: "string",
          value: "image",
          description:
            "Debian (glibc) base image, e.g. one imported offline with debootstrap + docker import",
          default: "debian:bookworm-slim",
        },
        network: {
          type: "string",
          value: "mode",
          description: "network of the build's RUN steps",
          default: "host",
        },
        caCert: { type: "strings", value: "file", description: "more CA certificates (PEM) to trust" },
        hostCa: { type: "negated", description: "do not add the CA certificates this host added" },
      },
      examples: [
        "alpine image build",
        "alpine image build --profile big --json",
        "# offline: a base made with debootstrap, then imported",
        "debootstrap --variant=minbase bookworm /tmp/base http://deb.debian.org/debian",
        "tar -C /tmp/base -c . | docker import - debian-local:bookworm",
        "alpine image build --base-image debian-local:bookworm",
      ],
      output: "image-build",
      handler: () => import("./image-run.ts").then((m) => m.imageBuildCommand),
    }),
  ],
});
