import type { SandboxRecord } from "@alpine/core";
import { LIVE_STATES } from "./alarm-policy.ts";
import { htmlPage } from "./html.ts";
import { forwardedInit } from "./http.ts";
import type { ControlPlaneProvider } from "./providers/types.ts";

/** Headers of the Worker's own routing and of the caller that sandboxd must not see. */
const STRIPPED = ["x-alpine-name", "x-alpine-origin", "cf-connecting-ip", "x-forwarded-for", "authorization"];

/**
 * The web UI, proxied to sandboxd (which checks its own login cookie). The
 * Worker strips its routing cookie before the request gets here; `path` is
 * the path on sandboxd.
 */
export async function proxyUi(
  request: Request,
  record: SandboxRecord | null,
  name: string,
  provider: ControlPlaneProvider,
  path: string,
  search: string,
): Promise<Response> {
  if (!record?.runtime || !LIVE_STATES.has(record.state)) {
    return htmlPage(
      404,
      "Sandbox not running",
      `Sandbox '${name}' is ${record?.state ?? "unknown"}. Run \`alpine launch ${name}\`, then \`alpine open ${name}\`.`,
    );
  }
  let endpoint: { url: string } | null = null;
  try {
    endpoint = await provider.endpoint(record.runtime.handle);
  } catch (err) {
    console.warn("alpine: the sandbox's endpoint is unknown", { name, error: String(err) });
  }
  if (!endpoint) return htmlPage(503, "Sandbox unavailable", `Sandbox '${name}' does not answer right now.`);
  // Set the path on sandboxd's URL rather than resolving it against it: a path like
  // `//other.host/x` must stay a path on sandboxd, never become another host.
  const target = new URL(endpoint.url);
  target.pathname = path;
  target.search = search;
  const headers = new Headers(request.headers);
  for (const h of STRIPPED) headers.delete(h);
  return provider.fetchFor(endpoint.url)(target.toString(), forwardedInit(request, headers));
}
