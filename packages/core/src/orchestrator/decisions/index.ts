export * from "./checkpoints.ts";
export * from "./exit-checkpoint.ts";
export * from "./export.ts";
export * from "./gc.ts";
export * from "./launch.ts";
export * from "./reconcile.ts";
export * from "./safety.ts";
export * from "./settlement.ts";
