// Builds the console into dist/ (served by `fileorg serve` on CONSOLE_ADDR, see
// src/console.rs). Relative asset URLs so the build works under any path.
import { defineConfig } from "vite";

export default defineConfig({
  base: "./",
  build: { outDir: "dist", emptyOutDir: true, target: "es2022", sourcemap: true },
  server: { port: 5173, strictPort: true },
});
