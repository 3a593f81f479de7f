// Builds the console into dist/ (served by `fileorg serve` on CONSOLE_ADDR, see
// src/infra/console.rs). Relative asset URLs so the build works under any path.
import { defineConfig, type Plugin } from "vite";

// The API origin reaches the page in config.json, which `fileorg serve` answers from its own
// configuration (CONSOLE_API_URL). The dev server (`npm run dev`) has no such server, so it
// answers config.json itself, from the same variable; nothing of it goes into dist/.
const devConfig: Plugin = {
  name: "fileorg-dev-config",
  apply: "serve",
  configureServer(server) {
    const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env ?? {};
    const apiUrl = env.CONSOLE_API_URL ?? "http://127.0.0.1:50051";
    server.middlewares.use("/config.json", (_req, res) => {
      res.setHeader("content-type", "application/json");
      res.setHeader("cache-control", "no-store");
      res.end(JSON.stringify({ apiUrl }));
    });
  },
};

export default defineConfig({
  base: "./",
  plugins: [devConfig],
  build: { outDir: "dist", emptyOutDir: true, target: "es2022", sourcemap: true },
  server: { port: 5173, strictPort: true },
});
