/** The dashboard (docs/dashboard.md): pages, sign-in and the request handler, shared by the CLI and the Worker. */
export * from "./handler.ts";
export * from "./pages.ts";
export * from "./session.ts";
