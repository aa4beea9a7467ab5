import { type AlpineConfig, AlpineError } from "@alpine/core";
import { alpineHome } from "../paths.ts";
import type { ControlPlaneOptions } from "./client.ts";
import { readSession } from "./session.ts";

/** The control plane's address and token, or a clear error saying what is missing. */
export function controlPlaneFrom(
  config: AlpineConfig,
  env: NodeJS.ProcessEnv = process.env,
): ControlPlaneOptions {
  const url = config.sandbox.control_plane_url;
  if (!url) {
    throw new AlpineError(
      "config_invalid",
      "sandbox.provider is cloudflare but sandbox.control_plane_url is not set",
      {
        key: "sandbox.control_plane_url",
        allowed: "the URL of your control plane (alpine cloud deploy prints it)",
      },
    );
  }
  // `alpine login`'s CLI token, while it lasts, names who you are; the shared token is automation's.
  const token = readSession(alpineHome(env), url)?.token ?? env.ALPINE_CONTROL_PLANE_TOKEN;
  if (!token) {
    throw new AlpineError(
      "config_invalid",
      "the cloudflare provider needs `alpine login` (or ALPINE_CONTROL_PLANE_TOKEN in the environment)",
      {
        key: "ALPINE_CONTROL_PLANE_TOKEN",
        allowed: "sign in with `alpine login`, or the token set on the control plane (alpine cloud deploy)",
      },
    );
  }
  return { url, token };
}
