import { defineCommand } from "./define.ts";

export default defineCommand({
  name: "open",
  args: [{ name: "name", description: "sandbox name" }],
  summary: "open the sandbox's OpenCode web UI (or a preview of a port) in a browser",
  description:
    "Mint a one-time login link to the sandbox's OpenCode web UI (valid 60 s, usable once) and open it in your browser. The link sets a session cookie; OpenCode's own password never leaves the sandbox. With --port, the link opens a preview of what the agent serves on that port inside the sandbox, on its own origin (local, docker: http://<port>-<name>.localhost:<sandboxd port>; cloudflare: https://<name>--p<port>.<ALPINE_UI_HOST>), HTTP, WebSocket and event streams included; `alpine status` lists the ports.",
  flags: {
    print: { type: "boolean", description: "print the link instead of opening a browser" },
    port: {
      type: "number",
      value: "port",
      description: "preview the app the sandbox serves on this port (1-65535) instead of the UI",
      parse: (raw: string) => {
        const n = Number(raw);
        if (!/^\d+$/.test(raw) || n < 1 || n > 65535)
          throw new Error("must be a port number from 1 to 65535");
        return n;
      },
    },
  },
  examples: ["alpine open fix-login", "alpine open fix-login --print", "alpine open fix-login --port 3000"],
  output: "open",
  handler: () => import("./open-run.ts").then((m) => m.openCommand),
});
