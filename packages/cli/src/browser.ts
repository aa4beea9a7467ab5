import { spawn } from "node:child_process";

/** Opens a URL with the desktop's opener; false when there is none (e.g. over SSH). */
export async function openBrowser(url: string): Promise<boolean> {
  const opener =
    process.env.BROWSER ||
    (process.platform === "darwin" ? "open" : process.platform === "win32" ? "explorer" : "xdg-open");
  return new Promise((resolve) => {
    try {
      const child = spawn(opener, [url], { stdio: "ignore", detached: true });
      child.once("error", () => resolve(false));
      child.once("spawn", () => {
        child.unref();
        resolve(true);
      });
    } catch {
      resolve(false);
    }
  });
}
