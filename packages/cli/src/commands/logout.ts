import { defineCommand } from "./define.ts";

export default defineCommand({
  name: "logout",
  summary: "sign out of the Cloudflare control plane (revokes the CLI token of `alpine login`)",
  description:
    "Revokes the CLI token `alpine login` stored for sandbox.control_plane_url on the control plane and deletes the local copy. Without a stored token it does nothing (the shared ALPINE_CONTROL_PLANE_TOKEN is not a session).",
  examples: ["alpine logout"],
  output: "logout",
  handler: () => import("./login-run.ts").then((m) => m.logoutCommand),
});
