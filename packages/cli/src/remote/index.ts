export { ControlPlaneClient, type ControlPlaneOptions } from "./client.ts";
export { controlPlaneFrom } from "./config.ts";
export { type RemoteLocalSide, RemoteSandboxService } from "./service.ts";
