import type { SandboxRecord } from "@alpine/core";
import { PREVIEW_PORT_HEADER } from "@alpine/core/sandboxd-api";
import { LIVE_STATES } from "./alarm-policy.ts";
import { htmlPage } from "./html.ts";
import { forwardedInit } from "./http.ts";
import type { ControlPlaneProvider } from "./providers/types.ts";

/**
 * The web UI connections open through this object (event streams): the alarm
 * counts them as activity, since a person watching the UI makes no new requests.
 */
export class UiConnections {
  open = 0;
  /** When the last one closed (0: none yet): the idle time starts there. */
  lastClosedAt = 0;

  /** The body of a long-lived response, counted as open until it ends or the browser goes away. */
  track(body: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
    this.open++;
    let counted = true;
    const done = () => {
      if (!counted) return;
      counted = false;
      this.open--;
      this.lastClosedAt = Date.now();
    };
    const reader = body.getReader();
    return new ReadableStream<Uint8Array>({
      async pull(controller) {
        try {
          const { done: ended, value } = await reader.read();
          if (ended) {
            done();
            controller.close();
          } else controller.enqueue(value);
        } catch (err) {
          done();
          controller.error(err);
        }
      },
      cancel(reason) {
        done();
        return reader.cancel(reason);
      },
    });
  }
}

/**
 * The Set-Cookie lines of a proxied UI response the browser may keep: none
 * named like alpine's own cookies (`alpine_…`), except sandboxd's session
 * cookie on its login answer (`/auth/<code>`; on a preview, its preview cookie on
 * `/__alpine/auth/<code>`: `loginCookie`), and none with a `Domain`
 * attribute (a cookie for a parent domain would reach every sandbox's origin).
 * So nothing a sandbox serves can set the routing cookie or a session, and
 * drive another sandbox with this browser. sandboxd filters the same; this is
 * the control plane's own guarantee.
 */
export function uiSetCookies(
  lines: readonly string[],
  login: boolean,
  loginCookie: "alpine_session_" | "alpine_preview_" = "alpine_session_",
): string[] {
  return lines.filter((line) => {
    const [pair = "", ...attrs] = line.split(";");
    const name = pair.split("=")[0]!.trim().toLowerCase();
    if (name.startsWith("alpine_") && !(login && name.startsWith(loginCookie))) return false;
    return !attrs.some((a) => a.trim().toLowerCase().startsWith("domain"));
  });
}

function filtered(
  response: Response,
  login: boolean,
  connections: UiConnections | null,
  preview: boolean,
): Response {
  const cookies = response.headers.getSetCookie();
  const kept = uiSetCookies(cookies, login, preview ? "alpine_preview_" : "alpine_session_");
  const stream =
    connections &&
    response.body &&
    (response.headers.get("content-type") ?? "").includes("text/event-stream");
  if (kept.length === cookies.length && !stream) return response;
  const headers = new Headers(response.headers);
  headers.delete("set-cookie");
  for (const c of kept) headers.append("set-cookie", c);
  if (response.status === 101)
    return new Response(null, { status: 101, headers, webSocket: response.webSocket });
  return new Response(stream ? connections.track(response.body) : response.body, {
    status: response.status,
    statusText: response.statusText,
    headers,
  });
}

/** sandboxd's login path on a preview origin (an app's own `/auth/…` stays the app's). */
const PREVIEW_AUTH_PATH = "/__alpine/auth/";

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
  connections: UiConnections | null = null,
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
  // A preview (the Worker named its port): the app's own Authorization passes, as locally.
  const preview = headers.has(PREVIEW_PORT_HEADER);
  for (const h of STRIPPED) if (!(preview && h === "authorization")) headers.delete(h);
  const response = await provider.fetchFor(endpoint.url)(target.toString(), forwardedInit(request, headers));
  const login = preview ? path.startsWith(PREVIEW_AUTH_PATH) : path.startsWith("/auth/");
  return filtered(response, login, connections, preview);
}
