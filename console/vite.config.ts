// Builds the console into dist/ (served by `fileorg serve` on CONSOLE_ADDR, see
// src/infra/console.rs). Relative asset URLs so the build works under any path.
import { copyFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
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

// The REST API's docs page (public/api-docs/, served by Envoy at /api/v1/docs/, see
// docs/api-docs.md): Swagger UI's files are vendored from the swagger-ui-dist package and the
// OpenAPI document from sdk/openapi/ at build time, so the page loads nothing from elsewhere.
const apiDocs: Plugin = {
  name: "fileorg-api-docs",
  apply: "build",
  closeBundle() {
    const here = dirname(fileURLToPath(import.meta.url));
    const swagger = dirname(createRequire(import.meta.url).resolve("swagger-ui-dist/package.json"));
    const out = join(here, "dist", "api-docs");
    mkdirSync(out, { recursive: true });
    for (const file of ["swagger-ui-bundle.js", "swagger-ui.css"]) {
      copyFileSync(join(swagger, file), join(out, file));
    }
    copyFileSync(join(here, "..", "sdk", "openapi", "openapi.json"), join(out, "openapi.json"));
  },
};

export default defineConfig({
  base: "./",
  plugins: [devConfig, apiDocs],
  build: { outDir: "dist", emptyOutDir: true, target: "es2022", sourcemap: true },
  server: { port: 5173, strictPort: true },
});
