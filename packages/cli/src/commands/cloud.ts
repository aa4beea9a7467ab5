import { defineCommand, defineGroup } from "./define.ts";

function port(raw: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error("a TCP port, 1-65535");
  return n;
}

export default defineGroup({
  name: "cloud",
  summary: "deploy or run locally the Cloudflare control plane",
  description:
    "The Cloudflare control plane (packages/worker): a Worker, a Durable Object per sandbox running the same orchestrator as this CLI, Containers and R2. Use it with `sandbox.provider: cloudflare` and `sandbox.control_plane_url`. See docs/cloudflare.md.",
  commands: [
    defineCommand({
      name: "dev",
      summary: "run the control plane locally in workerd, with sandboxd processes or Docker containers",
      description:
        "Run the control plane on 127.0.0.1 in workerd (the Worker bundle through Miniflare, offline, local Durable Objects and R2 under $ALPINE_HOME/cloud-dev). With --containers processes (the default) a small authenticated container host on 127.0.0.1 runs each sandbox as a sandboxd process (the local provider's code) where production runs a Container; with --containers docker workerd starts the sandbox image (`alpine image build`) as a real container on the Docker daemon, so the Worker's production container code runs. Reads ALPINE_CONTROL_PLANE_TOKEN from the environment. Runs until interrupted.",
      flags: {
        port: {
          type: "number",
          value: "port",
          description: "port of the control plane on 127.0.0.1",
          default: 8787,
          parse: port,
        },
        containers: {
          type: "string",
          value: "engine",
          description:
            "processes (sandboxd processes through a container host) or docker (workerd starts the sandbox image as real containers on the Docker daemon)",
          default: "processes",
          choices: ["processes", "docker"] as const,
        },
        var: {
          type: "strings",
          value: "NAME=VALUE",
          description:
            "override a var of wrangler.jsonc for this run (e.g. ALARM_INTERVAL_SECONDS=5), as `wrangler dev --var` does; only vars wrangler.jsonc declares",
        },
      },
      examples: [
        "export ALPINE_CONTROL_PLANE_TOKEN=$(openssl rand -hex 24)",
        "alpine cloud dev --port 8787",
        "alpine cloud dev --var ALARM_INTERVAL_SECONDS=5   # a quicker alarm, e.g. for tests",
        "alpine cloud dev --containers docker   # needs `alpine image build` and a Docker daemon with its bridge network",
        "# elsewhere, with sandbox.provider: cloudflare and sandbox.control_plane_url: http://127.0.0.1:8787",
        "alpine launch demo --repo https://github.com/acme/app.git",
      ],
      output: "cloud-dev",
      handler: () => import("./cloud-run.ts").then((m) => m.cloudDevCommand),
    }),
    defineCommand({
      name: "deploy",
      summary: "deploy the control plane to Cloudflare (wrangler deploy + secrets)",
      description:
        "Check packages/worker/wrangler.jsonc, assemble the sandbox image's build context, then run `wrangler deploy` (which builds and pushes the image with Docker), create the R2 bucket if it is missing, and set ALPINE_CONTROL_PLANE_TOKEN as a Worker secret (`wrangler secret put`, value on stdin). Needs wrangler's login (CLOUDFLARE_API_TOKEN). --dry-run checks everything that can be checked offline and says what it could not check.",
      flags: {
        dryRun: { type: "boolean", description: "validate and bundle offline; deploy nothing" },
      },
      examples: ["alpine cloud deploy --dry-run", "alpine cloud deploy --json"],
      output: "cloud-deploy",
      handler: () => import("./cloud-run.ts").then((m) => m.cloudDeployCommand),
    }),
  ],
});
