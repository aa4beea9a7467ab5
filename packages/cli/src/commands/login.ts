import { defineCommand } from "./define.ts";

export default defineCommand({
  name: "login",
  summary: "sign in to the Cloudflare control plane with GitHub (device flow)",
  description:
    "Signs you in to sandbox.control_plane_url with GitHub's device flow: open the URL it prints, enter the code, and the control plane hands back a CLI token of its own (24 h; GitHub's token never leaves the control plane). It is kept mode 0600 under $ALPINE_HOME/control-plane/ and used instead of ALPINE_CONTROL_PLANE_TOKEN. Your GitHub login must be on the control plane's allow-list (docs/cloudflare.md).",
  examples: ["alpine login", "alpine login --json | jq .principal.id"],
  output: "login",
  handler: () => import("./login-run.ts").then((m) => m.loginCommand),
});
