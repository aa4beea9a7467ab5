/** The control plane's few HTML pages (the web UI's "not signed in" and "not running" answers). */

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function htmlPage(status: number, title: string, text: string): Response {
  return new Response(
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>alpine: ${escapeHtml(title)}</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40em; margin: 4em auto"><h1>${escapeHtml(title)}</h1><p>${escapeHtml(text)}</p></body></html>
`,
    { status, headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" } },
  );
}
