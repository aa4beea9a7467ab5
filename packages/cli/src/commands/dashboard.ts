import { defineCommand } from "./define.ts";

export default defineCommand({
  name: "dashboard",
  summary: "serve a web dashboard of your sandboxes on 127.0.0.1",
  description:
    "Serve a dashboard of every sandbox (local, docker, and the control plane's when sandbox.provider is cloudflare) on http://127.0.0.1: the list with state, agent state and why, repo and branch, last activity, what each spent, changed files and overlaps; a page per sandbox with its diff per file, task history and checkpoints, and buttons to open its web UI, send a task, checkpoint, export (branch or pull request) and tear down. The buttons run the same operations as the CLI, with the same gates: a teardown that would lose work is refused and the page asks before forcing it. Prints a one-time login link (valid 60 s, usable once; it sets an HttpOnly session cookie); press Enter for another. Runs until Ctrl-C. See docs/dashboard.md.",
  flags: {
    port: {
      type: "number",
      value: "port",
      default: 0,
      description: "the port to listen on; 0 picks any free port",
      parse: (raw: string) => {
        const n = Number(raw);
        if (!/^\d+$/.test(raw) || n > 65535) throw new Error("must be a port number from 0 to 65535");
        return n;
      },
    },
  },
  examples: [
    "alpine dashboard",
    "alpine dashboard --port 4477",
    "alpine dashboard --json   # {url, login_url, expires_at}",
  ],
  output: "dashboard",
  handler: () => import("./dashboard-run.ts").then((m) => m.dashboardCommand),
});
