import { defineCommand } from "./define.ts";

export default defineCommand({
  name: "open",
  args: [{ name: "name", description: "sandbox name" }],
  summary: "open the sandbox's OpenCode web UI in a browser",
  description:
    "Mint a one-time login link to the sandbox's OpenCode web UI (valid 60 s, usable once) and open it in your browser. The link sets a session cookie; OpenCode's own password never leaves the sandbox.",
  flags: {
    print: { type: "boolean", description: "print the link instead of opening a browser" },
  },
  examples: ["alpine open fix-login", "alpine open fix-login --print"],
  output: "open",
  handler: () => import("./open-run.ts").then((m) => m.openCommand),
});
