import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// Relative asset paths: the built dist/ is served from any static host or sub-path.
export default defineConfig({
  base: "./",
  plugins: [react()],
  // The origin the README allows with CREDITGRAPH_CORS_ORIGINS; fail rather than move.
  server: { port: 5173, strictPort: true },
});
