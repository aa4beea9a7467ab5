/**
 * Which OpenCode session a request through the UI proxy shows the person using
 * (docs/opencode.md, "One conversation"): a prompt, command or shell sent to a
 * session, or a page of a session loaded in the browser (a full load: `alpine
 * open`'s landing, a reload, a link). Reads that the UI makes for other reasons
 * (its session list, the home page's previews, a session's title) say nothing
 * about which conversation the person is in, and are not counted.
 */

const SESSION_ID = /^ses_[A-Za-z0-9]+$/;
const PROMPTING = new Set(["message", "prompt_async", "command", "shell"]);

function decoded(segment: string | undefined): string | null {
  if (!segment) return null;
  try {
    const id = decodeURIComponent(segment);
    return SESSION_ID.test(id) ? id : null;
  } catch {
    // Malformed percent-encoding names no session.
    return null;
  }
}

export function sessionUsedBy(method: string, path: string, fetchDest: string | undefined): string | null {
  const parts = path.split("/");
  // POST /session/<id>/(message|prompt_async|command|shell)
  if (method === "POST" && parts.length === 4 && parts[1] === "session" && PROMPTING.has(parts[3]!)) {
    return decoded(parts[2]);
  }
  // A page load of /<dir>/session/<id> or /server/<key>/session/<id> (OpenCode's app routes).
  if (method === "GET" && fetchDest === "document") {
    const at = parts.lastIndexOf("session");
    if (at >= 2 && at === parts.length - 2) return decoded(parts[at + 1]);
  }
  return null;
}

/**
 * The page a browser gets on its first page load after a login, before OpenCode's app: it adds
 * the sandbox's workspace to the app's list of projects and loads the same address again.
 * OpenCode's home page lists the projects this browser opened (kept by the app in localStorage,
 * `opencode.global.dat:server` → `projects[<server URL>]`), not those the server knows, so a
 * browser that only ever followed `alpine open`'s deep link to a session saw an empty home page
 * ("Nothing here yet") and no way back to the workspace's sessions (docs/opencode.md).
 */
export function landingPage(workspaceDir: string, nonce: string): string {
  // JSON in a script: "<" escaped so no "</script>" can end it early.
  const dir = JSON.stringify(workspaceDir).replace(/</g, "\\u003c");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>OpenCode</title></head><body>
<script nonce="${nonce}">
(() => {
  const key = "opencode.global.dat:server";
  const dir = ${dir};
  let state = {};
  try { state = JSON.parse(localStorage.getItem(key) || "{}") || {}; } catch { state = {}; }
  const server = location.origin;
  state.list ??= [];
  state.projects ??= {};
  state.lastProject ??= {};
  const projects = state.projects[server] ?? [];
  if (!projects.some((p) => p && p.worktree === dir)) state.projects[server] = [{ worktree: dir, expanded: true }, ...projects];
  state.lastProject[server] ??= dir;
  try { localStorage.setItem(key, JSON.stringify(state)); } catch {}
  location.replace(location.href);
})();
</script>
</body></html>
`;
}
