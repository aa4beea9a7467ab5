import { type AlpineConfig, AlpineError } from "@alpine/core";
import type { ControlPlaneOptions } from "./client.ts";

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
  const token = env.ALPINE_CONTROL_PLANE_TOKEN;
  if (!token) {
    throw new AlpineError(
      "config_invalid",
      "the cloudflare provider needs ALPINE_CONTROL_PLANE_TOKEN in the environment",
      {
        key: "ALPINE_CONTROL_PLANE_TOKEN",
        allowed: "the token set on the control plane (alpine cloud deploy)",
      },
    );
  }
  return { url, token };
}
