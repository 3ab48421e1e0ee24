import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// Relative asset paths: the built dist/ is served from any static host or sub-path.
export default defineConfig({
  base: "./",
  plugins: [react()],
});
