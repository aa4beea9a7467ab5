export * from "./changes.ts";
export * from "./context.ts";
export * from "./reads.ts";
export * from "./routes.ts";
export * from "./wait.ts";
