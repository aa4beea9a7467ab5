/**
 * The dashboard's one stylesheet and one script, served as files (so the pages' CSP allows no
 * inline script or style). No web fonts, no framework: system fonts, a few hundred bytes of
 * layout that reflows to one column on a phone.
 */

export const DASHBOARD_CSS = `:root{color-scheme:light dark;--fg:#1b1f24;--bg:#fff;--mut:#5b6470;--line:#d0d7de;--acc:#0b5fff;--bad:#b3261e;--ok:#1a7f37;--warn:#9a6700}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--bg:#0d1117;--mut:#9aa4ae;--line:#30363d;--acc:#6ea8ff;--bad:#ff7b72;--ok:#56d364;--warn:#e3b341}}
*{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
a{color:var(--acc)}.skip{position:absolute;left:-999px}.skip:focus{left:8px;top:8px;background:var(--bg);padding:4px}
header{border-bottom:1px solid var(--line);padding:.5rem 1rem}header a{font-weight:600;text-decoration:none}
main{padding:1rem;max-width:72rem;margin:auto}h1{font-size:1.3rem;margin:.2rem 0 1rem}h2{font-size:1.05rem;margin:1.5rem 0 .5rem}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.4rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
th{font-weight:600;color:var(--mut);font-size:.85rem}.mut{color:var(--mut)}.bad{color:var(--bad)}.ok{color:var(--ok)}.warn{color:var(--warn)}
.state{font-weight:600}code,pre{font:13px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace}
pre{overflow-x:auto;padding:.5rem;border:1px solid var(--line);margin:0}
.add{color:var(--ok)}.del{color:var(--bad)}.hunk{color:var(--mut)}
details{border:1px solid var(--line);margin:.5rem 0}summary{padding:.4rem .5rem;cursor:pointer}
.actions{display:flex;flex-wrap:wrap;gap:.5rem;align-items:flex-end}.actions form{display:flex;gap:.4rem;align-items:flex-end;flex-wrap:wrap}
button,input,textarea{font:inherit;color:inherit;background:var(--bg);border:1px solid var(--line);border-radius:4px;padding:.35rem .6rem}
button{cursor:pointer}button:focus-visible,a:focus-visible,input:focus-visible,textarea:focus-visible,summary:focus-visible{outline:2px solid var(--acc);outline-offset:2px}
button.danger{border-color:var(--bad);color:var(--bad)}label{display:flex;flex-direction:column;font-size:.85rem;gap:.15rem}label.inline{flex-direction:row;align-items:center;gap:.3rem}
textarea{width:min(36rem,100%);min-height:4rem}#result{min-height:1.5rem;margin:.5rem 0}dialog{max-width:32rem;border:1px solid var(--line);color:var(--fg);background:var(--bg)}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:0}dt{color:var(--mut)}dd{margin:0}
@media (max-width:40rem){table.list thead{display:none}table.list tr{display:block;border-bottom:1px solid var(--line);padding:.4rem 0}table.list td{display:block;border:0;padding:.1rem .3rem}table.list td[data-label]::before{content:attr(data-label) ": ";color:var(--mut)}}
`;

/**
 * Live updates and the actions. Live: every few seconds the page asks its JSON endpoint
 * (`data-poll`) for its sections as HTML and replaces those that changed, so no reload and no
 * lost focus in the forms (they are outside the sections). Actions: each form posts with the
 * CSRF token (in the form and in a header) and shows the answer in the result region; a refused
 * teardown opens a dialog asking to force it, as the CLI asks for --force.
 */
export const DASHBOARD_JS = `(() => {
  "use strict";
  const body = document.body;
  const csrf = body.dataset.csrf || "";
  const result = document.getElementById("result");
  const say = (text, cls) => { if (!result) return; result.textContent = text; result.className = cls || ""; };
  async function poll() {
    const url = body.dataset.poll;
    if (!url) return;
    try {
      const res = await fetch(url, { headers: { accept: "application/json" }, credentials: "same-origin" });
      if (res.ok) {
        const data = await res.json();
        for (const [id, html] of Object.entries(data.sections || {})) {
          const el = document.getElementById(id);
          if (el && el.dataset.html !== html) { el.innerHTML = html; el.dataset.html = html; }
        }
        const stamp = document.getElementById("updated");
        if (stamp) stamp.textContent = "updated " + new Date().toLocaleTimeString();
      } else if (res.status === 401) { say("Signed out: open a new link from the CLI.", "bad"); return; }
    } catch (err) { /* a failed poll is retried at the next tick */ }
    setTimeout(poll, Number(body.dataset.interval || 2500));
  }
  for (const el of document.querySelectorAll("[data-live]")) el.dataset.html = el.innerHTML;
  setTimeout(poll, Number(body.dataset.interval || 2500));

  async function post(form, extra) {
    const data = new URLSearchParams(new FormData(form));
    for (const [k, v] of Object.entries(extra || {})) data.set(k, v);
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => (b.disabled = true));
    say((form.dataset.busy || "working") + "…", "mut");
    try {
      const res = await fetch(form.action, {
        method: "POST",
        body: data,
        credentials: "same-origin",
        headers: { accept: "application/json", "x-alpine-csrf": csrf },
      });
      const out = await res.json().catch(() => ({ error: "the dashboard answered " + res.status }));
      return { ok: res.ok, out };
    } finally { buttons.forEach((b) => (b.disabled = false)); }
  }
  const dialog = document.getElementById("force-dialog");
  for (const form of document.querySelectorAll("form[data-action]")) {
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const { ok, out } = await post(form);
      if (ok) {
        say(out.message || "done", "ok");
        if (out.web_url) { const a = document.createElement("a"); a.href = out.web_url; a.target = "_blank"; a.rel = "noopener"; a.textContent = " Open it (link valid 60 s, usable once)"; result.append(a); }
        if (out.gone) setTimeout(() => location.assign("/"), 1500);
        return;
      }
      if (form.dataset.action === "teardown" && out.can_force && dialog) {
        say(out.error, "bad");
        dialog.querySelector("[data-message]").textContent = out.error;
        dialog.showModal();
        return;
      }
      say(out.error || "failed", "bad");
    });
  }
  if (dialog) {
    dialog.addEventListener("close", async () => {
      if (dialog.returnValue !== "force") { say("Teardown cancelled; nothing was removed.", "mut"); return; }
      const form = document.querySelector('form[data-action="teardown"]');
      const { ok, out } = await post(form, { force: "1" });
      say(ok ? out.message : out.error || "failed", ok ? "ok" : "bad");
      if (ok) setTimeout(() => location.assign("/"), 1500);
    });
  }
})();
`;
