import type { Provider } from "@alpine/core";

/**
 * A Provider of the control plane also says how to send HTTP to the sandboxd
 * it started: through a Container's TCP port in production, plain fetch to
 * 127.0.0.1 under `alpine cloud dev`.
 */
export interface ControlPlaneProvider extends Provider {
  fetchFor(url: string): typeof fetch;
}
